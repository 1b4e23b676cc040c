"""The stream engine: one Kafka consumer through decode, batch, store, dead-letter, commit.

``engine`` (the loop, pause and resume, rebalances, drain), ``flushing`` (the batch and
the batches in flight: handed to the writes when due, taken off in commit order, retried
with backoff), ``flights`` (batches in flight), ``writes`` (inline, or a writer thread),
``batch`` (the buffer and its flush triggers), ``decode`` (messages to rows or dead letters),
``store`` (one flush's writes), ``offsets`` (owed offsets and their commits), ``sink``
(the sink contract and its errors), ``dead_letters`` (the record and where it goes),
``ranges`` (bounded reads), ``kafka`` (the consumer calls it makes), ``backoff``,
``health``, ``signals``, ``settings`` and ``errors``. Nothing here knows the database.
"""
