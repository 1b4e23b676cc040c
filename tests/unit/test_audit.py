"""The audit's checks, SQL and reports, without a database.

``aggregate`` computes in Python what the audit's two GROUP BY queries return, so the
checker can be fed ledgers with exactly one thing wrong.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import pytest

from standins.samples import fee_schedule_text, trade_lines
from worker.commands.audit import (
    AssetTotal,
    AuditError,
    AuditReport,
    Failure,
    FeeGroup,
    Group,
    LedgerChecker,
    LedgerReader,
    Selection,
    TopicCheck,
    audit_ledger,
    decode_rows,
    format_report,
)
from worker.commands.audit.checks import sum_may_wrap
from worker.core.deriver import Deriver
from worker.core.events import BalanceEvent
from worker.core.fee_schedule import parse_fee_schedule
from worker.core.rejections import Rejection

replace = msgspec.structs.replace


def ledger(count: int = 30) -> list[BalanceEvent]:
    deriver = Deriver(parse_fee_schedule(fee_schedule_text()))
    events: list[BalanceEvent] = []
    for line in trade_lines(count, seed=9, invalid_ratio=0.0):
        result = deriver.derive(line)
        assert not isinstance(result, Rejection)
        events.extend(result)
    return events


def wrap64(value: int) -> int:
    """What TDengine's 64-bit SUM accumulator holds: wrapped around, silently."""
    return (value + (1 << 63)) % (1 << 64) - (1 << 63)


def aggregate(
    events: Iterable[BalanceEvent], *, wrap: bool = False
) -> tuple[list[Group], list[FeeGroup]]:
    """What ``GROUP BY trade_id, credit_asset`` returns for both queries.

    ``wrap``: SUMs wrap around at 64 bits as a real TDengine's do; else they are exact.
    """
    total = wrap64 if wrap else int
    groups: dict[tuple[int, int], list[BalanceEvent]] = {}
    for e in events:
        groups.setdefault((e.trade_id, e.credit_asset), []).append(e)
    out: list[Group] = []
    fees: list[FeeGroup] = []
    for (trade_id, asset), rows in groups.items():
        debits = [r for r in rows if r.debit_amt is not None]
        debit_assets = [r.debit_asset for r in debits if r.debit_asset is not None]
        debit_amts = [r.debit_amt for r in debits if r.debit_amt is not None]
        out.append(Group(
            trade_id, asset, len(rows), min(r.event_id for r in rows),
            max(r.event_id for r in rows), total(sum(r.credit_amt for r in rows)), len(debits),
            min(debit_assets, default=None), max(debit_assets, default=None),
            total(sum(debit_amts)) if debits else None,
            total(sum(r.fee for r in rows)), min(r.fee_asset for r in rows),
            max(r.fee_asset for r in rows),
            min(r.credit_amt for r in rows), max(r.credit_amt for r in rows),
            min(debit_amts, default=None), max(debit_amts, default=None),
            min(r.fee for r in rows), max(r.fee for r in rows),
        ))  # fmt: skip
        received = [r for r in rows if r.event_type == 2]
        if received:
            fees.append(FeeGroup(trade_id, asset, len(received),
                                 total(sum(r.credit_amt for r in received)),
                                 total(sum(r.fee for r in received)),
                                 min(r.credit_amt for r in received),
                                 max(r.credit_amt for r in received),
                                 min(r.fee for r in received),
                                 max(r.fee for r in received)))  # fmt: skip
    return out[::-1], fees  # any order: TDengine does not sort groups


def check(events: Sequence[BalanceEvent]) -> LedgerChecker:
    checker = LedgerChecker()
    checker.check_window(*aggregate(events))
    return checker


def test_a_correct_ledger_passes_and_totals_fee_revenue_per_asset() -> None:
    events = ledger()
    checker = check(events)
    assert not checker.failed and checker.failures == []
    assert checker.trades == 30 and checker.rows == 120
    revenue: dict[int, int] = {}
    for e in events:
        if e.event_type == 2:
            revenue[e.credit_asset] = revenue.get(e.credit_asset, 0) + e.credit_amt
    assert {t.asset: t.fee_revenue for t in checker.totals()} == revenue
    assert sum(t.fee_rows for t in checker.totals()) == 60


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_a_missing_row_is_incomplete(k: int) -> None:
    events = ledger()
    gone = events[4 * 7 + k]
    checker = check([e for e in events if e is not gone])
    assert checker.failure_counts == {"completeness": 1, "conservation": 0,
                                      "fee_consistency": 0, "topic": 0}  # fmt: skip
    (failure,) = checker.failures
    assert failure.trade_id == gone.trade_id
    assert failure.message.startswith(f"trade {gone.trade_id}: 3 of 4 rows")


def test_a_duplicated_event_id_in_another_subtable_is_caught() -> None:
    events = ledger()
    copy = replace(events[9], user_id=999_999)  # same (ts, event_id), another subtable
    checker = check([*events, copy])
    assert [(f.check, f.trade_id) for f in checker.failures] == [("completeness", copy.trade_id)]
    assert "5 rows, expected 4" in checker.failures[0].message


def test_rows_with_swapped_event_ids_are_incomplete() -> None:
    events = ledger(3)
    a, b = events[4], events[5]  # trade 2, k=0 and k=1
    broken = [*events[:4], replace(a, event_id=b.event_id), replace(b, event_id=a.event_id),
              *events[6:]]  # fmt: skip
    checker = check(broken)
    assert [(f.check, f.trade_id) for f in checker.failures] == [("completeness", a.trade_id)]
    assert "4 rows with the wrong event ids" in checker.failures[0].message


def test_a_lone_stray_row_names_its_trade() -> None:
    events = ledger()
    stray = replace(events[3], trade_id=10**9, event_id=4 * 10**9 + 3)
    checker = check([*events, stray])
    assert [(f.check, f.trade_id) for f in checker.failures] == [("completeness", 10**9)]
    assert "1 of 4 rows" in checker.failures[0].message


def test_an_altered_settlement_breaks_conservation_only() -> None:
    events = ledger()
    i = 4 * 11  # k=0: the buyer's credit
    events[i] = replace(events[i], credit_amt=events[i].credit_amt - 5)
    checker = check(events)
    assert [(f.check, f.trade_id, f.asset) for f in checker.failures] == [
        ("conservation", events[i].trade_id, events[i].credit_asset)
    ]
    message = checker.failures[0].message
    assert "is not conserved: credits" in message and "(difference -5)" in message


def test_an_altered_fee_row_breaks_conservation_and_fee_consistency() -> None:
    events = ledger()
    i = 4 * 12 + 3  # k=3: the platform's quote fee
    events[i] = replace(events[i], credit_amt=events[i].credit_amt + 1)
    checker = check(events)
    assert {(f.check, f.trade_id) for f in checker.failures} == {
        ("conservation", events[i].trade_id),
        ("fee_consistency", events[i].trade_id),
    }
    fee = next(f for f in checker.failures if f.check == "fee_consistency")
    first = events[i].trade_id * 4
    assert f"FeeReceived row {first + 3} credits {events[i].credit_amt}" in fee.message
    charged = events[i].credit_amt - 1
    assert f"TradeSettled row {first + 1} charged a fee of {charged}" in fee.message


def test_a_fee_moved_between_settlement_and_credit_is_a_fee_inconsistency() -> None:
    events = ledger()
    i = 4 * 13  # k=0: a fee the platform never received; every asset still conserved
    events[i] = replace(events[i], fee=events[i].fee + 1)
    checker = check(events)
    assert [(f.check, f.trade_id) for f in checker.failures] == [
        ("fee_consistency", events[i].trade_id)
    ]


def test_a_fee_in_the_wrong_asset_or_on_a_fee_row_is_reported() -> None:
    events = ledger()
    events[4 * 14] = replace(events[4 * 14], fee_asset=events[4 * 14 + 1].credit_asset)
    events[4 * 15 + 2] = replace(events[4 * 15 + 2], fee=3)
    messages = {f.trade_id: f.message for f in check(events).failures}
    assert "a fee is taken from what a side receives" in messages[events[4 * 14].trade_id]
    assert "carries a fee of 3; expected 0" in messages[events[4 * 15].trade_id]


def test_only_max_failures_are_listed_but_all_are_counted() -> None:
    events = ledger()
    checker = LedgerChecker(max_failures=5)
    checker.check_window(*aggregate(e for e in events if e.event_id % 4 != 2))
    assert checker.failure_counts["completeness"] == 30
    assert len(checker.failures) == 5


def test_decoding_refuses_non_integers() -> None:
    row = [1, 2, 2, 4, 6, 10, 1, 3, 3, 5, 1, 2, 2, 1, 9, 5, 5, 0, 1]
    assert decode_rows([row], Group, "grouped")[0].debits == 5
    with pytest.raises(AuditError, match="unexpected grouped result"):
        decode_rows([[*row[:5], True, *row[6:]]], Group, "grouped")
    with pytest.raises(AuditError):
        decode_rows([[*row[:5], 10.0, *row[6:]]], Group, "grouped")


# -- SQL and windows --------------------------------------------------------------------


class FakeLedger:
    """Answers the audit's queries from events, and records the SQL it was sent.

    ``wrap``: SUMs wrap around at 64 bits like a real TDengine's.
    """

    def __init__(self, events: list[BalanceEvent], *, wrap: bool = False) -> None:
        self.events = events
        self.wrap = wrap
        self.sql: list[str] = []

    def _selected(self, sql: str) -> list[BalanceEvent]:
        where = sql.split(" WHERE ", 1)[1].split(" GROUP BY")[0]
        terms = where.split(" AND ")
        lo = int(terms[0].removeprefix("ts >= "))
        hi = int(terms[1].removeprefix("ts < "))
        picked = [e for e in self.events if lo <= e.ts < hi]
        for term in terms[2:]:
            if term.startswith("trade_id IN ("):
                ids = {int(x) for x in term[len("trade_id IN (") : -1].split(",")}
                picked = [e for e in picked if e.trade_id in ids]
            elif term.startswith("user_id = "):
                picked = [e for e in picked if e.user_id == int(term.split(" = ")[1])]
            elif term.startswith("event_type = "):
                picked = [e for e in picked if e.event_type == int(term.split(" = ")[1])]
            elif term.startswith("trade_id = "):
                picked = [e for e in picked if e.trade_id == int(term.split(" = ")[1])]
            elif term.startswith("credit_asset = "):
                picked = [e for e in picked if e.credit_asset == int(term.split(" = ")[1])]
            else:
                raise AssertionError(term)
        return picked

    def __call__(self, sql: str) -> list[Sequence[Any]]:
        self.sql.append(sql)
        rows = self._selected(sql)
        if sql.startswith("SELECT COUNT(*)"):
            return [[len(rows)]]
        if sql.startswith("SELECT trade_id FROM"):
            return [[t] for t in sorted({e.trade_id for e in rows})]
        if sql.startswith("SELECT credit_amt, debit_amt, fee FROM"):
            return [[e.credit_amt, e.debit_amt, e.fee] for e in rows]
        groups, fees = aggregate(rows, wrap=self.wrap)
        if "SUM(debit_amt)" in sql:
            return [list(msgspec.structs.astuple(g)) for g in groups]
        return [list(msgspec.structs.astuple(f)) for f in fees]


def test_windows_split_until_each_holds_at_most_window_rows() -> None:
    events = ledger(60)
    fake = FakeLedger(events)
    checker, windows = audit_ledger(fake, "ledger", Selection(0, 2**62), window_rows=40)
    assert not checker.failed and checker.trades == 60
    assert windows >= 6
    counts = [s for s in fake.sql if s.startswith("SELECT COUNT(*)")]
    assert len(counts) > windows
    assert all(s.startswith("SELECT") and "`ledger`.`balance_events`" in s for s in fake.sql)


def test_one_users_trades_are_audited_whole() -> None:
    events = ledger(60)
    user = events[4 * 5].user_id
    fake = FakeLedger(events)
    checker, _ = audit_ledger(fake, "ledger", Selection(0, 2**62, user_id=user))
    mine = {e.trade_id for e in events if e.user_id == user}
    assert checker.trades == len(mine) and checker.rows == 4 * len(mine)
    assert not checker.failed
    assert any(f"user_id = {user}" in s for s in fake.sql)


def test_selection_values_are_validated_integers() -> None:
    with pytest.raises(AuditError, match="user_id must be an integer"):
        Selection(0, 10, user_id="1 OR 1=1")  # type: ignore[arg-type]
    with pytest.raises(AuditError, match="must be before"):
        Selection(10, 10)
    reader = LedgerReader(lambda sql: [[0]], "ledger", window_rows=10)
    assert list(reader.windows_of(Selection(0, 10, account_type=2))) == []


# -- sums TDengine would wrap -----------------------------------------------------------

INT64_MAX = (1 << 63) - 1


def wrapping_trade() -> list[BalanceEvent]:
    """One trade whose base-asset credits are 2 x (2**63-1): TDengine's SUM gives -2.

    The seller's debit of the base asset is -2, so with the wrapped sum every check
    passes; the exact sum (2**64-2) shows the asset is not conserved.
    """
    k0, k1, k2, k3 = ledger(1)
    return [
        replace(k0, credit_amt=INT64_MAX, fee=INT64_MAX),
        replace(k1, debit_amt=-2),
        replace(k2, credit_amt=INT64_MAX),
        k3,
    ]


def test_a_wrapped_sum_would_pass_a_broken_trade() -> None:
    """Why the audit cannot trust SUM: fed the wrapped aggregates, every check passes."""
    checker = LedgerChecker()
    checker.check_window(*aggregate(wrapping_trade(), wrap=True))
    assert not checker.failed


def test_the_audit_resums_a_group_that_could_wrap_and_catches_the_broken_trade() -> None:
    events = wrapping_trade()
    fake = FakeLedger(events, wrap=True)
    reader = LedgerReader(fake, "ledger", window_rows=1000)
    selection = Selection(0, 2**62)
    (window,) = list(reader.windows_of(selection))
    groups = reader.groups(*window, selection, "")
    base = next(g for g in groups if g.asset == events[0].credit_asset)
    assert base.credits == 2 * INT64_MAX  # exact, not the -2 TDengine returned
    assert reader.resummed == 1
    checker, _ = audit_ledger(FakeLedger(events, wrap=True), "ledger", selection)
    assert checker.failure_counts["conservation"] == 1
    (failure,) = checker.failures
    assert f"credits {2 * INT64_MAX} != debits -2" in failure.message
    assert {t.asset: t.fee_revenue for t in checker.totals()}[events[2].credit_asset] == INT64_MAX


def test_a_correct_ledger_is_not_resummed() -> None:
    fake = FakeLedger(ledger(30), wrap=True)
    checker, _ = audit_ledger(fake, "ledger", Selection(0, 2**62))
    assert not checker.failed
    assert not any(sql.startswith("SELECT credit_amt, debit_amt, fee") for sql in fake.sql)


def test_fee_revenue_beyond_bigint_is_totalled_exactly() -> None:
    big = 1 << 62  # three trades' fees add up to 3 x 2**62 > 2**63-1 in one asset
    events: list[BalanceEvent] = []
    for trade in range(3):
        k0, k1, k2, k3 = ledger(1)
        first = 4 * (k0.trade_id + trade)
        shift = {"trade_id": k0.trade_id + trade, "ts": k0.ts + trade}
        events += [
            replace(
                k0,
                **shift,
                event_id=first,
                credit_amt=1,
                fee=big,
                debit_amt=k1.credit_amt + k3.credit_amt,
            ),
            replace(k1, **shift, event_id=first + 1, debit_amt=big + 1),
            replace(k2, **shift, event_id=first + 2, credit_amt=big),
            replace(k3, **shift, event_id=first + 3),
        ]
    checker, _ = audit_ledger(FakeLedger(events, wrap=True), "ledger", Selection(0, 2**62))
    assert not checker.failed, checker.failures
    assert {t.asset: t.fee_revenue for t in checker.totals()}[events[2].credit_asset] == 3 * big


def test_a_group_whose_rows_change_while_resummed_fails_naming_window_and_asset() -> None:
    events = wrapping_trade()
    fake = FakeLedger(events, wrap=True)

    def one_row_gone(sql: str) -> list[Sequence[Any]]:
        rows = fake(sql)
        return rows[1:] if sql.startswith("SELECT credit_amt, debit_amt, fee") else rows

    with pytest.raises(AuditError) as info:
        audit_ledger(one_row_gone, "ledger", Selection(0, 2**62))
    message = str(info.value)
    assert "window 1970-01-01T00:00:00.000000Z .. " in message
    assert f"asset {events[0].credit_asset}" in message
    assert "found 1 rows where the aggregate counted 2" in message


@pytest.mark.parametrize(
    ("count", "low", "high", "wraps"),
    [
        (2, 0, INT64_MAX // 2, False),
        (2, 0, INT64_MAX // 2 + 1, True),
        (1, -(1 << 63), INT64_MAX, False),  # one value is its own sum
        (2, -(1 << 62), 0, False),
        (2, -(1 << 62) - 1, 0, True),
        (5, None, None, False),  # no value (all NULL): SUM is NULL
    ],
)
def test_sum_may_wrap_bounds(count: int, low: int | None, high: int | None, wraps: bool) -> None:
    assert sum_may_wrap(count, low, high) is wraps


# -- reports ----------------------------------------------------------------------------


def report(*, failures: list[Failure], topic: TopicCheck | None = None) -> AuditReport:
    counts = {"completeness": 0, "conservation": 0, "fee_consistency": 0, "topic": 0}
    for f in failures:
        counts[f.check] += 1
    return AuditReport(
        passed=not failures, database="ledger", from_ts="2025-01-01T00:00:00.000Z",
        to_ts="2026-01-01T00:00:00.000Z", user_id=None, account_type=2, trades_checked=1234,
        rows_checked=4936, windows=3, duration_s=1.25, failures_by_check=counts,
        failures=failures, failures_not_listed=0,
        totals=[AssetTotal(7, 10, 1234), AssetTotal(100, 12, 9_876_543_210)], topic=topic,
    )  # fmt: skip


def test_table_report_of_a_passing_audit() -> None:
    text = format_report(report(failures=[]), "table")
    assert "audit of `ledger` from 2025-01-01T00:00:00.000Z to 2026-01-01T00:00:00.000Z" in text
    assert "(account type 2)" in text
    assert "1,234 trades, 4,936 rows, 3 window(s)" in text
    assert "completeness     PASS" in text and "fee_consistency  PASS" in text
    assert "topic" not in text  # not checked without --against-topic
    assert "       100          12             9,876,543,210" in text
    assert text.endswith("RESULT: PASS\n")


def test_table_report_lists_each_failure_with_its_trade() -> None:
    failures = [Failure("completeness", 42, "trade 42: 3 of 4 rows"),
                Failure("topic", 7, "trade 7 is on the topic but has no rows")]  # fmt: skip
    text = format_report(report(failures=failures, topic=TopicCheck(10, 9, 8, ["t[0] 0..10"])),
                         "table")  # fmt: skip
    assert "completeness     FAIL  1 failure(s)" in text
    assert "topic            FAIL  1 failure(s)" in text
    assert "  [completeness] trade 42: 3 of 4 rows" in text
    assert "topic: 10 messages, 9 valid trades, 8 in the audited range" in text
    assert text.endswith("RESULT: FAIL\n")


def test_json_report_round_trips() -> None:
    original = report(failures=[Failure("conservation", 5, "trade 5: ...", 100)])
    decoded = json.loads(format_report(original, "json"))
    assert decoded["passed"] is False
    assert decoded["failures"] == [
        {"check": "conservation", "trade_id": 5, "message": "trade 5: ...", "asset": 100}
    ]
    assert msgspec.json.decode(format_report(original, "json"), type=AuditReport) == original


def test_csv_report_has_one_line_per_failure_and_per_total() -> None:
    text = format_report(report(failures=[Failure("fee_consistency", 5, 'say "why", here', 7)]),
                         "csv")  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0] == {
        "record": "failure", "check": "fee_consistency", "trade_id": "5", "asset": "7",
        "rows": "", "amount": "", "message": 'say "why", here',
    }  # fmt: skip
    assert [(r["record"], r["asset"], r["rows"], r["amount"]) for r in rows[1:]] == [
        ("fee_revenue", "7", "10", "1234"),
        ("fee_revenue", "100", "12", "9876543210"),
    ]
