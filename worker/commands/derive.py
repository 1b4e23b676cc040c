"""``balance-sink derive``: JSON lines in, BalanceEvent JSON lines out, streaming.

Operators dry-run a new fee schedule over a captured topic dump and diff the output,
so this reads and writes in large buffered chunks and never holds the input in memory.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from typing import BinaryIO, Final

import msgspec

from worker.core.deriver import Deriver
from worker.core.events import BalanceEvent
from worker.core.rejections import Rejection
from worker.exit_codes import EXIT_OK, EXIT_REJECTED, EXIT_USAGE

__all__ = ("EXIT_OK", "EXIT_REJECTED", "EXIT_USAGE", "derive_stream")


_JSON_WHITESPACE: Final = b" \t\r\n"
"""A blank line is empty or holds only JSON whitespace; anything else is parsed."""
_FLUSH_EVENTS: Final = 8192
"""Events encoded and written per chunk (about 2 MiB of output)."""


class RejectedLine(msgspec.Struct, frozen=True, gc=False):
    """One stderr record: which input line (from 1) was rejected, and why."""

    line: int
    reason: str
    detail: str


def derive_stream(deriver: Deriver, lines: Iterable[bytes], out: BinaryIO, err: BinaryIO) -> int:
    """Derive every non-blank line; return the number of rejected lines."""
    encoder = msgspec.json.Encoder()
    pending: list[BalanceEvent] = []
    errors = bytearray()
    rejected = 0
    derive = deriver.derive
    extend = pending.extend
    for number, line in enumerate(lines, 1):
        if not line.strip(_JSON_WHITESPACE):
            continue
        result = derive(line)
        if isinstance(result, Rejection):
            rejected += 1
            errors += encoder.encode(RejectedLine(number, result.reason, result.detail))
            errors += b"\n"
            continue
        extend(result)
        if len(pending) >= _FLUSH_EVENTS:
            out.write(_encode_lines(encoder, pending))
            pending.clear()
            if errors:
                err.write(errors)
                errors.clear()
    if pending:
        out.write(_encode_lines(encoder, pending))
    if errors:
        err.write(errors)
    out.flush()
    err.flush()
    return rejected


def _encode_lines(encoder: msgspec.json.Encoder, events: list[BalanceEvent]) -> bytes:
    try:
        return encoder.encode_lines(events)
    except ValueError:  # an integer of more than 4300 digits (only ts is unbounded)
        return b"".join(_encode_long(encoder, e) for e in events)


def _encode_long(encoder: msgspec.json.Encoder, event: BalanceEvent) -> bytes:
    try:
        return encoder.encode(event) + b"\n"
    except ValueError:
        ts_text = format(decimal.Decimal(event.ts), "f").encode()
        body = encoder.encode(msgspec.structs.replace(event, ts=0))
        return b'{"ts":' + ts_text + body[len(b'{"ts":0') :] + b"\n"
