"""``balance-sink audit``: prove the ledger in TDengine is whole, or name what is wrong.

Modules: ``checks`` (the invariants over group aggregates), ``ledger_reader`` (the
windowed SQL), ``topic_reader`` (``--against-topic``), ``report`` (report and formats)
and ``command`` (the command itself).

The time range is cut into windows of at most ``window_rows`` rows (a ``COUNT(*)``
per candidate window, halving the busy ones), so memory stays bounded however long
the range. A trade's four rows share its ``ts``, so a window never splits a trade.
Per window, TDengine aggregates two queries on the super table (rows never leave it
one by one):

* ``GROUP BY trade_id, credit_asset`` over all rows: row count, smallest and largest
  event id, credits, debits (count, asset range, sum), fees and fee asset range. A
  correct trade has two groups: its base asset with event ids {4t, 4t+2} (the buyer's
  settlement and the platform's base fee) and its quote asset with {4t+1, 4t+3};
* ``GROUP BY trade_id, credit_asset`` over FeeReceived rows (``event_type = 2``):
  count, credit and fee per asset.

From these, per trade:

* **completeness**: exactly four rows with event ids 4t..4t+3 (the count and the
  smallest and largest id of each group pin the exact id set); nothing missing, nothing
  extra, no stray row of a trade that has no others;
* **conservation**: per asset, credits equal debits;
* **fee consistency**: each FeeReceived row's credit equals the fee of its TradeSettled
  row (k=2 with k=0 in the base asset, k=3 with k=1 in the quote asset), the fee is in
  the asset it is taken from, and FeeReceived rows carry no fee themselves;
* **totals**: fee revenue per asset over the range (FeeReceived credits).

With ``--against-topic`` the topic range is read through the worker's core and every
valid trade in it whose ``ts`` falls in the audited range must have rows, and every
trade with rows must be a valid trade of the topic range.

All SQL is built from validated integers only.
"""

from worker.commands.audit.checks import (
    CHECKS,
    FeeGroup,
    Group,
    LedgerChecker,
    decode_rows,
)
from worker.commands.audit.command import AuditRequest, audit_ledger, run_audit
from worker.commands.audit.errors import AuditError
from worker.commands.audit.ledger_reader import LedgerReader, Selection
from worker.commands.audit.report import (
    AssetTotal,
    AuditReport,
    Failure,
    TopicCheck,
    format_report,
)
from worker.commands.audit.topic_reader import TopicTrades, read_topic
from worker.exit_codes import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE

__all__ = (
    "CHECKS",
    "EXIT_FAILED",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_USAGE",
    "AssetTotal",
    "AuditError",
    "AuditReport",
    "AuditRequest",
    "Failure",
    "FeeGroup",
    "Group",
    "LedgerChecker",
    "LedgerReader",
    "Selection",
    "TopicCheck",
    "TopicTrades",
    "audit_ledger",
    "decode_rows",
    "format_report",
    "read_topic",
    "run_audit",
)
