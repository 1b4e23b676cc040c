"""One flush's writes: the rows to the sink, then the dead letters, acknowledged."""

from __future__ import annotations

import logging

from worker.engine.batch import Batch
from worker.engine.dead_letters import SINK_REJECTED, DeadLetter, DeadLetters, dead_letter_of
from worker.engine.sink import MessageRows, PreparingSink, Sink
from worker.ops.logs import log_context

__all__ = ("store_batch",)

logger = logging.getLogger(__name__)


def store_batch(
    batch: Batch, sink: Sink, dead_letters: DeadLetters, dead_letter_timeout_s: float
) -> tuple[int, list[DeadLetter]]:
    """Write the rows (send them, if prepared), dead-letter what cannot be stored, wait
    for the acknowledgements.

    Returns the rows written and every message dead-lettered: the batch's own, then
    those whose rows the store refused. Raises what the sink raises before anything is
    dead-lettered, and ``DeadLetterError`` when the dead letters were not confirmed;
    only after a normal return may the batch's offsets be committed.
    """
    result = None
    if batch.prepared is not None and isinstance(sink, PreparingSink):
        result = sink.send(batch.prepared)
    elif batch.rows:
        result = sink.write(batch.rows)
    dead = list(batch.dead_letters)
    if result is not None and result.rejected:
        by_key = {rows.key: rows for rows in batch.rows}
        for key, error in result.rejected:
            dead.append(_refused(by_key[key], error))
    for item in dead:
        dead_letters.send(item)
    if dead:
        dead_letters.flush(dead_letter_timeout_s)
    return (result.rows_written if result is not None else 0), dead


def _refused(rows: MessageRows, error: Exception) -> DeadLetter:
    """The dead letter of a message whose own rows the store refused."""
    key = rows.key
    logger.warning(
        "store refused a message's rows: %s", error,
        extra=log_context(topic=key.topic, partition=key.partition, offset=key.offset),
    )  # fmt: skip
    if rows.source is None:
        raise ValueError(f"{key}: refused rows without their source message to dead-letter")
    return dead_letter_of(rows.source, key, SINK_REJECTED, str(error))
