"""Lexical layer of the stand-in's SQL: taosc's lower-casing, tokens, literals, keywords.

taosc lower-cases a statement outside quotes before parsing it, so every error message
quotes the lower-cased text; :func:`lower_outside_quotes` does the same here.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

__all__ = (
    "RESERVED",
    "TOKEN_RE",
    "Token",
    "lower_outside_quotes",
    "tokenize",
    "unquote_string",
)

_QUOTED: Final = re.compile(
    r"""('(?:[^'\\]|\\.|'')*(?:'|$)|"(?:[^"\\]|\\.|"")*(?:"|$)|`[^`]*(?:`|$))""", re.S
)


def lower_outside_quotes(sql: str) -> str:
    """Lower-case ``sql`` except inside '...', "..." and `...` (taosc's ``strntolower``)."""
    parts = _QUOTED.split(sql)
    return "".join(p if i % 2 else p.lower() for i, p in enumerate(parts))


class Token(NamedTuple):
    """One lexical token; ``pos``/``end`` index into the lower-cased statement."""

    kind: str
    """id, qid (backquoted), str, int, float, hex, bin, dur, op, bad, eof."""
    text: str
    pos: int
    end: int


TOKEN_RE: Final = re.compile(
    r"""(?P<ws>\s+)
    |(?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    |(?P<qid>`[^`]*`)
    |(?P<hex>0x[0-9a-f]+(?![0-9a-z_]))
    |(?P<bin>0b[01]+(?![0-9a-z_]))
    |(?P<float>(?:\d+\.\d*|\.\d+)(?:e[+-]?\d+)?|\d+e[+-]?\d+)
    |(?P<dur>\d+[a-z](?![0-9a-z_]))
    |(?P<int>\d+)
    |(?P<id>[a-z_][a-z0-9_]*)
    |(?P<op><=|>=|<>|!=|==|[(),.*=<>+\-;/%])
    |(?P<bad>.)""",
    re.X | re.S,
)


def tokenize(lowered: str) -> list[Token]:
    """Split a lower-cased statement into tokens, ending with an ``eof`` token."""
    out: list[Token] = []
    append = out.append
    for m in TOKEN_RE.finditer(lowered):
        kind = m.lastgroup
        if kind == "ws" or kind is None:
            continue
        append(Token(kind, m.group(), m.start(), m.end()))
    append(Token("eof", "", len(lowered), len(lowered)))
    return out


_ESCAPES: Final[dict[str, str]] = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


def unquote_string(text: str) -> str:
    """The content of a quoted literal, with escapes resolved as TDengine's ``trimString``."""
    delim = text[0]
    body = text[1:-1]
    if "\\" not in body and delim * 2 not in body:
        return body
    out: list[str] = []
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        if ch == delim and i + 1 < n and body[i + 1] == delim:
            out.append(delim)
            i += 2
            continue
        if ch == "\\" and i + 1 < n:
            nxt = body[i + 1]
            if nxt in "%_x":
                out.append(ch + nxt)
            else:
                out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


RESERVED: Final = frozenset(
    (
        "all",
        "and",
        "as",
        "asc",
        "between",
        "bigint",
        "binary",
        "bool",
        "by",
        "cast",
        "composite",
        "count",
        "create",
        "database",
        "databases",
        "delete",
        "desc",
        "describe",
        "distinct",
        "double",
        "drop",
        "duration",
        "exists",
        "float",
        "from",
        "group",
        "if",
        "in",
        "insert",
        "int",
        "into",
        "is",
        "keep",
        "key",
        "like",
        "limit",
        "max",
        "min",
        "nchar",
        "not",
        "now",
        "null",
        "offset",
        "or",
        "order",
        "partition",
        "precision",
        "primary",
        "select",
        "show",
        "smallint",
        "stable",
        "stables",
        "sum",
        "table",
        "tables",
        "tag",
        "tags",
        "timestamp",
        "tinyint",
        "today",
        "union",
        "unsigned",
        "use",
        "user",
        "using",
        "value",
        "values",
        "varchar",
        "where",
    )
)
"""Keywords that cannot be used as bare identifiers (a subset of TDengine's list)."""
