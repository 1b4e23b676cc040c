"""How the INSERT parser reads literals: numbers as ``strtod`` and ``round`` read them,
and the fast path's patterns and converters for the plain literals writers send.

A fast converter returns the value or raises :class:`FastMiss`, and the slow path of
:class:`~standins.tdengine_double.insert.InsertParser` then judges the literal (and
words its error) exactly as TDengine does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Final

from standins.tdengine_double.catalog import DataType
from standins.tdengine_double.lexer import RESERVED

__all__ = (
    "FAST_CONVERTERS",
    "FAST_HEADER",
    "FAST_ROW",
    "FAST_VALUE",
    "FastConvert",
    "FastMiss",
    "fast_name",
    "number",
    "rounded",
)

_DECIMAL: Final = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")
_INT64_SPAN: Final = 2.0**63
_BASED: Final = re.compile(r"\s*([-+]?)(0x[0-9a-f]+|0b[01]+)")


def number(text: str) -> int | float | None:
    """A (lowered) string as TDengine reads a number from it: decimal (``strtod``), or
    hex or binary with an optional sign (exactly, as an int); leading blanks allowed,
    nothing after. ``None`` when it is no number."""
    if _DECIMAL.fullmatch(text) is not None:
        return float(text)
    based = _BASED.fullmatch(text)
    if based is not None:
        magnitude = int(based.group(2), 0)
        return -magnitude if based.group(1) == "-" else magnitude
    return None


def rounded(text: str) -> int | None:
    """A literal for an integer column as TDengine reads it when it is no plain integer:
    a decimal is rounded half away from zero (``round``), a signed hex or binary string
    taken exactly; ``None`` when it is no number or a decimal outside int64. The range
    of the column type is checked after."""
    value = number(text)
    if value is None or isinstance(value, int):
        return value
    if not -_INT64_SPAN <= value < _INT64_SPAN:  # also inf (1e400)
        return None
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


_FAST_LITERAL: Final = r"(?:[-+]?\d+|'[^'\\\n]*'|true|false|null)"
FAST_ROW: Final = re.compile(rf"\s*\(\s*({_FAST_LITERAL}(?:\s*,\s*{_FAST_LITERAL})*)\s*\)")
FAST_VALUE: Final = re.compile(_FAST_LITERAL)
_FAST_NAME: Final = r"(`[^`.]+`|[a-z_][a-z0-9_]*)"
FAST_HEADER: Final = re.compile(
    rf"{_FAST_NAME}\.{_FAST_NAME}\s+using\s+{_FAST_NAME}\.{_FAST_NAME}\s+tags\s*"
    rf"\(\s*({_FAST_LITERAL}(?:\s*,\s*{_FAST_LITERAL})*)\s*\)\s*(?=values[\s(])"
)


def fast_name(text: str) -> str | None:
    if text[0] == "`":
        return text[1:-1]
    return None if text in RESERVED else text


class FastMiss(Exception):
    """The fast path declines a value; the slow path will judge it."""


FastConvert = Callable[[str], object]


def _fast_int(dtype: DataType) -> FastConvert:
    lo, hi = dtype.min_value, dtype.max_value

    def conv(text: str) -> object:
        if text == "null":
            return None
        if text[0] == "'" or text in ("true", "false"):
            raise FastMiss
        value = int(text)
        if not lo <= value <= hi:
            raise FastMiss
        return value

    return conv


def _fast_ts(dtype: DataType) -> FastConvert:
    def conv(text: str) -> object:
        if text[0] == "'" or text in ("true", "false", "null"):
            raise FastMiss
        value = int(text)
        if not -(2**63) <= value < 2**63:
            raise FastMiss
        return value

    return conv


def _fast_bool(dtype: DataType) -> FastConvert:
    def conv(text: str) -> object:
        if text == "true":
            return 1
        if text == "false":
            return 0
        if text == "null":
            return None
        if text[0] == "'":
            raise FastMiss
        return 0 if int(text) == 0 else 1

    return conv


def _fast_float(dtype: DataType) -> FastConvert:
    def conv(text: str) -> object:
        if text == "null":
            return None
        if text[0] == "'" or text in ("true", "false"):
            raise FastMiss
        value = float(text)
        if dtype.length == 4 and abs(value) > 3.4028234663852886e38:
            raise FastMiss
        return value

    return conv


def _fast_str(dtype: DataType) -> FastConvert:
    limit = dtype.length
    count_bytes = dtype.kind == "str"

    def conv(text: str) -> object:
        if text == "null":
            return None
        value = text[1:-1] if text[0] == "'" else text
        size = len(value.encode()) if count_bytes else len(value)
        if size > limit:
            raise FastMiss
        return value

    return conv


FAST_CONVERTERS: Final[dict[str, Callable[[DataType], FastConvert]]] = {
    "int": _fast_int,
    "ts": _fast_ts,
    "bool": _fast_bool,
    "float": _fast_float,
    "str": _fast_str,
    "nchar": _fast_str,
}
