"""Structured logging: JSON lines for machines, one readable line for people, secrets masked.

Modules log through ``logging.getLogger(__name__)`` and pass context as
``extra=log_context(topic=..., partition=..., offset=...)``; :func:`configure_logging`
installs one root handler that renders it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Final, Literal, TextIO
from urllib.parse import quote

from worker.errors import ConfigError

__all__ = ("configure_logging", "log_context")

_MASK: Final = "***"
_RESERVED: Final = frozenset({"ts", "level", "logger", "msg", "exc", "stack"})
"""JSON keys of the record itself; a context field of the same name gets a ``ctx_`` prefix."""
_LOCK: Final = threading.Lock()
_SEPARATORS: Final = (",", ":")


def log_context(**fields: object) -> dict[str, object]:
    """``extra=`` for a log call: ``logger.info("flushed", extra=log_context(rows=400))``."""
    return {"ctx": fields}


def configure_logging(
    *,
    fmt: Literal["json", "human"] = "json",
    level: str = "INFO",
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Send every log record to ``stream`` (default: stderr) in ``fmt``, masking ``secrets``.

    Parameters
    ----------
    fmt : {"json", "human"}
        ``json``: one object per line with ``ts``, ``level``, ``logger``, ``msg``, the
        context fields and ``exc`` (the traceback) when there is one. ``human``:
        ``2026-11-25T10:00:00.123Z INFO worker.engine.loop flushed rows=400 seconds=0.012``.
    level : str
        Root level name, any case (``DEBUG``, ``info``, ...).
    stream : TextIO, optional
        Where lines go; ``sys.stderr`` at call time when omitted.
    secrets : iterable of str
        Strings replaced by ``***`` wherever they appear: message, arguments, context,
        traceback, also in their ``repr`` and URL-encoded forms. Empty strings are ignored.

    Calling again replaces the handler installed before (never a second one) and keeps
    the secrets registered before, so a reconfiguration cannot unmask them.

    Raises
    ------
    ConfigError
        ``fmt`` or ``level`` is not a known value.
    """
    formatter: logging.Formatter
    if fmt == "json":
        formatter = _JsonFormatter()
    elif fmt == "human":
        formatter = _HumanFormatter()
    else:
        raise ConfigError("log format", f"{fmt!r} is not one of 'json', 'human'")
    levels = logging.getLevelNamesMapping()
    if level.upper() not in levels:
        raise ConfigError("log level", f"{level!r} is not one of {', '.join(sorted(levels))}")

    root = logging.getLogger()
    with _LOCK:
        previous = [h for h in root.handlers if isinstance(h, _Handler)]
        registered = {s for h in previous for s in h.masker.secrets}
        handler = _Handler(
            sys.stderr if stream is None else stream, _SecretMasker((*registered, *secrets))
        )
        handler.setFormatter(formatter)
        for old in previous:
            root.removeHandler(old)
        root.addHandler(handler)
        root.setLevel(levels[level.upper()])


class _Handler(logging.StreamHandler[TextIO]):
    """The one root handler :func:`configure_logging` owns (found again by type)."""

    def __init__(self, stream: TextIO, masker: _SecretMasker) -> None:
        super().__init__(stream)
        self.masker: Final = masker
        self.addFilter(masker)


_WHOLE_WORD_BELOW: Final = 8
"""Secrets shorter than this are masked only between non-word characters."""


class _SecretMasker(logging.Filter):
    """Replaces registered secrets in a record before any formatter renders it.

    The record is changed in place (message rendered, arguments dropped, traceback
    rendered), so handlers after this one see the masked text too.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets: Final = frozenset(s for s in secrets if s)
        forms = {f for s in self.secrets for f in (s, repr(s)[1:-1], quote(s, safe=""))}
        # Longest first, so a secret containing another is masked whole. A short one is
        # masked only where it stands alone (a password "x" must not garble "max_rows").
        alternatives = [
            re.escape(f) if len(f) >= _WHOLE_WORD_BELOW else rf"(?<!\w){re.escape(f)}(?!\w)"
            for f in sorted(forms, key=len, reverse=True)
        ]
        self._pattern = re.compile("|".join(alternatives)) if forms else None

    def mask(self, text: str) -> str:
        return self._pattern.sub(_MASK, text) if self._pattern else text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format call must not raise here nor print the arguments
            message = f"{record.msg} (unformattable arguments {record.args!r})"
        record.msg, record.args = self.mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _PLAIN.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        ctx = getattr(record, "ctx", None)
        if ctx is not None:
            try:
                masked = self._masked(ctx)  # a copy: the caller may reuse its dict
            except Exception:  # cyclic or unprintable: never fail the caller's log call
                masked = "<context not renderable>"
            record.__dict__["ctx"] = masked
        return True

    def _masked(self, value: object) -> object:
        if isinstance(value, str):
            return self.mask(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {self.mask(str(k)): self._masked(v) for k, v in value.items()}
        if type(value) is list:
            return [self._masked(v) for v in value]
        if type(value) is tuple:  # exactly: a namedtuple falls through to str()
            return tuple(self._masked(v) for v in value)
        return self.mask(str(value))


_PLAIN: Final = logging.Formatter()


def _timestamp(record: logging.LogRecord) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-11-25T10:00:00.123Z``."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _context(record: logging.LogRecord) -> Mapping[str, object]:
    ctx = getattr(record, "ctx", None)
    if ctx is None:
        return {}
    if isinstance(ctx, Mapping):
        return {str(k): v for k, v in ctx.items()}
    return {"ctx": ctx}


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return record.exc_text or None


class _JsonFormatter(logging.Formatter):
    """One JSON object per record; context fields at top level."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _context(record).items():
            entry[f"ctx_{key}" if key in _RESERVED else key] = value
        exc = _exception(self, record)
        if exc:
            entry["exc"] = exc
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        try:
            return json.dumps(
                entry, ensure_ascii=False, separators=_SEPARATORS, allow_nan=False, default=str
            )
        except (TypeError, ValueError, RecursionError):  # NaN, odd keys, cycles: keep the line
            safe = {k: v if isinstance(v, str) else str(v) for k, v in entry.items()}
            return json.dumps(safe, ensure_ascii=False, separators=_SEPARATORS)


class _HumanFormatter(logging.Formatter):
    """``<ts> <LEVEL> <logger> <msg> key=value ...``, then the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, record.name, record.getMessage()]
        parts.extend(f"{k}={_human_value(v)}" for k, v in _context(record).items())
        line = " ".join(parts)
        exc = _exception(self, record)
        if exc:
            line = f"{line}\n{exc}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


def _human_value(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text
