"""Independent reference implementation of `balance-sink derive` (issue 2), written from the
contract text alone, without looking at `worker/`.  Simple and literal, not fast.

Ambiguities in the contract, and the reading taken here
--------------------------------------------------------
Input lines and JSON
 A1. Lines are split on b"\\n" only.  A final line without a trailing newline is still a line;
     the empty piece after a final b"\\n" is not a line.  Other separators (\\r alone, \\x0b,
     \\x0c, U+2028, ...) do not split lines.
 A2. "Blank line" = a line that is empty or contains only JSON whitespace (space, tab, CR, LF).
     So a CRLF file's empty lines ("\\r") are blank, and "  " is blank, not `invalid_json`.
     Any other content (a lone \\x0b / \\x0c, NBSP, U+2028, a UTF-8 BOM) is not blank and must
     parse as JSON, so it is `invalid_json`.  (Python's bytes.strip() would also drop \\x0b and
     \\x0c; "blank" is read in JSON terms here, since the line is a JSON text.)
 A3. "Valid JSON" = RFC 8259 text in strict UTF-8.  Invalid UTF-8 bytes, NaN / Infinity
     literals, unescaped control characters in strings, trailing commas, single quotes, two
     values on one line -> `invalid_json`.  Surrounding JSON whitespace (incl. a trailing \\r) is
     allowed.  Escaped lone surrogates ("\\ud800") are syntactically valid JSON and accepted.
 A4. Duplicate keys in an object: the LAST occurrence wins (RFC 8259 leaves it open; this is
     what most parsers, incl. Python and JavaScript, do).  It applies to known and unknown
     fields alike; e.g. {"qty": "x", ..., "qty": 5} is a valid qty of 5.
 A5. Keys are compared after JSON unescaping: "trade\\u005fid" is the field trade_id.
 A6. A JSON number is an integer only when it has neither a fraction nor an exponent:
     1.0, 1e2, 1E0 and -0.0 are not integers; -0 is the integer 0.
 A7. Integers are unbounded in JSON; a huge integer (even thousands of digits) is still an
     integer: a bounded field gets `out_of_range`, not `invalid_type` / `invalid_json`.
 A8. Fields with NO bound in the table stay unbounded: `symbol_id` (any integer, negative or
     > 2^64; it simply gets `unknown_symbol` when the schedule lacks it), `ts` (only > 0; a ts
     above 2^63-1 is valid and copied to the rows), `price` and `qty_unit` (only > 0; e.g.
     price = 10^30 with qty_unit = 10^30 is fine as long as quote_amount <= 2^63-1).
 A9. A present field whose value is JSON null is PRESENT: a required field set to null is
     `invalid_type` (check 4), not `missing_field`; an optional int field set to null is
     `invalid_type` (the contract says "optional and present").
 A10. `taker_side` is not "a field of integer type", so check 4 does not cover it; a
     non-string taker_side (1, null, true, [], {}) fails check 5 -> `invalid_value`.  Only
     the exact strings "buy" / "sell" pass (no case folding, no trimming).
 A11. Unknown fields are ignored whatever their value (huge numbers, 1e400, nested objects).
 A12. Within one check, which field is reported first only affects `detail`, never `reason`.
 A13. Check 6 bounds: trade_id 1..2^61-1, ts >= 1, price >= 1, qty 1..2^63-1, qty_unit >= 1,
     base/quote asset 0..2^31-1 and base != quote, buyer/seller user 1..2^63-1, buyer_vip /
     seller_vip 0..255, account_type 1..127; quote_amount (computed only when the operands are
     in range) <= 2^63-1.
 A14. Nesting deeper than the JSON parser's limit (Python's json gives up near depth 1000,
     RFC 8259 section 9 lets a parser limit depth) is `invalid_json`, even inside an unknown
     field.  It must never abort the run: exit statuses are only 0, 3 and 2.
 A15. Details may print integers of any size (no crash on 5000-digit values); detail text is
     free and not compared.

Fee schedule
 S1. `effective_from` must be a TOML offset date-time or local date-time (the latter is
     UTC).  A TOML local date (2025-06-15) or local time is rejected as not a datetime.
     Sub-microsecond digits are truncated (that is what tomllib does).
 S2. "No two versions with the same effective_from" compares instants: 02:00:00+02:00, 00:00:00Z
     and 00:00:00 (no offset) are the same effective_from.
 S3. `versions` must be a non-empty array of tables.  Each version requires
     `effective_from`, `vip_discount_percent` (a table, may be empty) and `symbols` (an array of
     tables, may be empty; a version without the key is an error).  Each symbol requires
     `symbol_id` (any TOML integer, no bound given), `maker_fee`, `taker_fee`.
 S4. VIP level keys must be canonical decimal strings "0".."255" (no sign, no leading zero, no
     spaces); "05", "+5", "-1", "256", "x" are errors.
 S5. TOML booleans and floats are not integers (rates, percents, symbol_id).
 S6. Unknown keys in the schedule (top level, version, symbol) are ignored.
 S7. The versions need not be in order in the file; selection is by instant.
 S8. Version selection: latest effective_from (microseconds since the epoch, UTC) <= ts.

Fees and rows
 F1. The buyer's role is maker iff taker_side == "sell"; the seller's iff taker_side == "buy".
     Each side's base rate (maker_fee or taker_fee) is discounted with that side's own VIP level.
 F2. "a fee that would round to 0 is 1 when amount > 0 and rate > 0" is applied after the floor
     division; the fee never exceeds the amount since rate <= 1,000,000.
 F3. Output values: debit_asset / debit_amt / from_user are JSON null as the table says;
     event_type is the integer 1 or 2; user_id 0 for FeeReceived rows.

Exit statuses
 X1. A schedule error gives exit 2 and no stdout whatever the input; the input is not read.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

MAX_I63 = 2**63 - 1
MAX_TRADE_ID = 2**61 - 1
MAX_ASSET_ID = 2**31 - 1
RATE_SCALE = 1_000_000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

REQUIRED_INT_FIELDS = (
    "trade_id",
    "symbol_id",
    "ts",
    "price",
    "qty",
    "qty_unit",
    "base_asset_id",
    "quote_asset_id",
    "buyer_user_id",
    "seller_user_id",
)
REQUIRED_FIELDS = (*REQUIRED_INT_FIELDS, "taker_side")
OPTIONAL_INT_DEFAULTS = {"buyer_vip": 0, "seller_vip": 0, "account_type": 1}

EVENT_KEYS = (
    "ts",
    "event_id",
    "event_type",
    "trade_id",
    "user_id",
    "account_type",
    "debit_asset",
    "debit_amt",
    "credit_asset",
    "credit_amt",
    "fee",
    "fee_asset",
    "is_maker",
    "from_user",
)

_VIP_KEY = re.compile(r"(?:0|[1-9][0-9]*)")
_JSON_WS = b" \t\r\n"


class ScheduleError(Exception):
    """The fee schedule cannot be loaded (exit 2)."""


@dataclass(frozen=True)
class SymbolRates:
    maker_fee: int
    taker_fee: int


@dataclass(frozen=True)
class Version:
    effective_from_us: int
    vip_discount_percent: dict[int, int]
    symbols: dict[int, SymbolRates]


def is_int(value: object) -> bool:
    """A JSON / TOML integer: Python int but not bool."""
    return type(value) is int


# --------------------------------------------------------------------------- schedule


def _datetime_to_us(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _int_in(where: str, value: object, lo: int, hi: int) -> int:
    if not is_int(value):
        raise ScheduleError(f"{where}: expected an integer, got {value!r}")
    assert isinstance(value, int)
    if not lo <= value <= hi:
        raise ScheduleError(f"{where}: {value} is outside {lo} .. {hi}")
    return value


def load_schedule(text: str) -> list[Version]:
    """Parse and validate a fee schedule; versions returned sorted by effective_from."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScheduleError(f"not valid TOML: {exc}") from exc
    raw_versions = doc.get("versions")
    if not isinstance(raw_versions, list) or not raw_versions:
        raise ScheduleError("versions: at least one version is required")
    versions: list[Version] = []
    seen_from: set[int] = set()
    for i, raw in enumerate(raw_versions):
        where = f"versions[{i}]"
        if not isinstance(raw, dict):
            raise ScheduleError(f"{where}: expected a table")
        eff = raw.get("effective_from")
        if not isinstance(eff, dt.datetime):
            raise ScheduleError(f"{where}.effective_from: expected a TOML datetime, got {eff!r}")
        eff_us = _datetime_to_us(eff)
        if eff_us in seen_from:
            raise ScheduleError(f"{where}.effective_from: duplicate {eff.isoformat()}")
        seen_from.add(eff_us)

        vip_raw = raw.get("vip_discount_percent")
        if not isinstance(vip_raw, dict):
            raise ScheduleError(f"{where}.vip_discount_percent: expected a table")
        vip: dict[int, int] = {}
        for key, pct in vip_raw.items():
            if not _VIP_KEY.fullmatch(key) or int(key) > 255:
                raise ScheduleError(f"{where}.vip_discount_percent: VIP level {key!r} not 0..255")
            vip[int(key)] = _int_in(f"{where}.vip_discount_percent.{key}", pct, 0, 100)

        sym_raw = raw.get("symbols")
        if not isinstance(sym_raw, list):
            raise ScheduleError(f"{where}.symbols: expected an array of tables")
        symbols: dict[int, SymbolRates] = {}
        for j, sym in enumerate(sym_raw):
            swhere = f"{where}.symbols[{j}]"
            if not isinstance(sym, dict):
                raise ScheduleError(f"{swhere}: expected a table")
            sid = sym.get("symbol_id")
            if not is_int(sid):
                raise ScheduleError(f"{swhere}.symbol_id: expected an integer, got {sid!r}")
            assert isinstance(sid, int)
            if sid in symbols:
                raise ScheduleError(f"{swhere}.symbol_id: duplicate {sid}")
            maker = _int_in(f"{swhere}.maker_fee", sym.get("maker_fee"), 0, RATE_SCALE)
            taker = _int_in(f"{swhere}.taker_fee", sym.get("taker_fee"), 0, RATE_SCALE)
            symbols[sid] = SymbolRates(maker, taker)
        versions.append(Version(eff_us, vip, symbols))
    versions.sort(key=lambda v: v.effective_from_us)
    return versions


def reference_schedule_error(schedule_toml_text: str) -> str | None:
    """None when the schedule loads, else the error message (derive exits 2)."""
    try:
        load_schedule(schedule_toml_text)
    except ScheduleError as exc:
        return str(exc)
    return None


def version_in_force(versions: list[Version], ts: int) -> Version | None:
    best: Version | None = None
    for version in versions:
        if version.effective_from_us <= ts and (
            best is None or version.effective_from_us > best.effective_from_us
        ):
            best = version
    return best


# --------------------------------------------------------------------------- JSON


@contextmanager
def unlimited_int_digits() -> Iterator[None]:
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(old)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_strict(data: bytes) -> Any:
    """RFC 8259 JSON from UTF-8 bytes; raises ValueError when it is not valid JSON."""
    text = data.decode("utf-8")  # UnicodeDecodeError is a ValueError
    with unlimited_int_digits():
        return json.loads(text, parse_constant=_reject_constant)


# --------------------------------------------------------------------------- derive


class Rejection(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def _fee(amount: int, rate: int) -> int:
    fee = amount * rate // RATE_SCALE
    if fee == 0 and amount > 0 and rate > 0:
        fee = 1
    return fee


def _check_range(msg: dict[str, Any], name: str, lo: int, hi: int | None) -> None:
    value = msg[name]
    if value < lo:
        raise Rejection("out_of_range", f"{name}: {value} is below {lo}")
    if hi is not None and value > hi:
        raise Rejection("out_of_range", f"{name}: {value} is above {hi}")


def derive_message(obj: Any, versions: list[Version]) -> list[dict[str, Any]]:
    """Checks 2..10 and the four rows for one decoded JSON value."""
    # 2. not an object
    if not isinstance(obj, dict):
        raise Rejection("invalid_type", f"message: expected a JSON object, got {type(obj)}")
    # 3. required field absent
    for name in REQUIRED_FIELDS:
        if name not in obj:
            raise Rejection("missing_field", f"{name}: missing")
    # 4. integer-typed field (required, or optional and present) not an integer
    for name in (*REQUIRED_INT_FIELDS, *OPTIONAL_INT_DEFAULTS):
        if name in obj and not is_int(obj[name]):
            raise Rejection("invalid_type", f"{name}: expected an integer, got {obj[name]!r}")
    # 5. taker_side
    taker_side = obj["taker_side"]
    if not (type(taker_side) is str and taker_side in ("buy", "sell")):
        raise Rejection("invalid_value", f"taker_side: {taker_side!r} is not 'buy' or 'sell'")
    msg: dict[str, Any] = {name: obj[name] for name in REQUIRED_FIELDS}
    for name, default in OPTIONAL_INT_DEFAULTS.items():
        msg[name] = obj.get(name, default)
    # 6. bounds
    _check_range(msg, "trade_id", 1, MAX_TRADE_ID)
    _check_range(msg, "ts", 1, None)
    _check_range(msg, "price", 1, None)
    _check_range(msg, "qty", 1, MAX_I63)
    _check_range(msg, "qty_unit", 1, None)
    _check_range(msg, "base_asset_id", 0, MAX_ASSET_ID)
    _check_range(msg, "quote_asset_id", 0, MAX_ASSET_ID)
    if msg["base_asset_id"] == msg["quote_asset_id"]:
        raise Rejection("out_of_range", "base_asset_id: equals quote_asset_id")
    _check_range(msg, "buyer_user_id", 1, MAX_I63)
    _check_range(msg, "seller_user_id", 1, MAX_I63)
    _check_range(msg, "buyer_vip", 0, 255)
    _check_range(msg, "seller_vip", 0, 255)
    _check_range(msg, "account_type", 1, 127)
    quote_amount: int = msg["price"] * msg["qty"] // msg["qty_unit"]
    if quote_amount > MAX_I63:
        raise Rejection("out_of_range", f"quote_amount: {quote_amount} is above {MAX_I63}")
    # 7. zero quote amount
    if quote_amount == 0:
        raise Rejection("zero_quote_amount", "quote_amount: 0")
    # 8. version in force
    version = version_in_force(versions, msg["ts"])
    if version is None:
        raise Rejection("no_fee_schedule", f"ts: {msg['ts']} precedes every version")
    # 9. symbol
    rates = version.symbols.get(msg["symbol_id"])
    if rates is None:
        raise Rejection("unknown_symbol", f"symbol_id: {msg['symbol_id']}")
    # 10. VIP levels
    for name in ("buyer_vip", "seller_vip"):
        if msg[name] not in version.vip_discount_percent:
            raise Rejection("unknown_vip_level", f"{name}: {msg[name]}")

    buyer_is_maker = taker_side == "sell"
    seller_is_maker = taker_side == "buy"
    buyer_base = rates.maker_fee if buyer_is_maker else rates.taker_fee
    seller_base = rates.maker_fee if seller_is_maker else rates.taker_fee
    buyer_rate = buyer_base * version.vip_discount_percent[msg["buyer_vip"]] // 100
    seller_rate = seller_base * version.vip_discount_percent[msg["seller_vip"]] // 100
    qty: int = msg["qty"]
    buyer_fee = _fee(qty, buyer_rate)
    seller_fee = _fee(quote_amount, seller_rate)

    base: int = msg["base_asset_id"]
    quote: int = msg["quote_asset_id"]
    buyer: int = msg["buyer_user_id"]
    seller: int = msg["seller_user_id"]
    trade_id: int = msg["trade_id"]
    common = {"ts": msg["ts"], "trade_id": trade_id, "account_type": msg["account_type"]}

    def row(
        k: int,
        event_type: int,
        user_id: int,
        debit: tuple[int | None, int | None],
        credit: tuple[int, int],
        fee: tuple[int, int],
        is_maker: bool,
        from_user: int | None,
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            "ts": common["ts"],
            "event_id": trade_id * 4 + k,
            "event_type": event_type,
            "trade_id": common["trade_id"],
            "user_id": user_id,
            "account_type": common["account_type"],
            "debit_asset": debit[0],
            "debit_amt": debit[1],
            "credit_asset": credit[0],
            "credit_amt": credit[1],
            "fee": fee[0],
            "fee_asset": fee[1],
            "is_maker": is_maker,
            "from_user": from_user,
        }
        assert tuple(values) == EVENT_KEYS
        return values

    rows = [
        row(
            0,
            1,
            buyer,
            (quote, quote_amount),
            (base, qty - buyer_fee),
            (buyer_fee, base),
            buyer_is_maker,
            None,
        ),
        row(
            1,
            1,
            seller,
            (base, qty),
            (quote, quote_amount - seller_fee),
            (seller_fee, quote),
            seller_is_maker,
            None,
        ),
        row(2, 2, 0, (None, None), (base, buyer_fee), (0, base), buyer_is_maker, buyer),
        row(3, 2, 0, (None, None), (quote, seller_fee), (0, quote), seller_is_maker, seller),
    ]
    # conservation per asset
    for asset in (base, quote):
        debits = sum(r["debit_amt"] for r in rows if r["debit_asset"] == asset)
        credits = sum(r["credit_amt"] for r in rows if r["credit_asset"] == asset)
        assert debits == credits, (asset, debits, credits)
    return rows


def reference_derive(
    schedule_toml_text: str, input_bytes: bytes
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """(stdout event objects, stderr rejection objects, exit status) of `derive`."""
    try:
        versions = load_schedule(schedule_toml_text)
    except ScheduleError:
        return [], [], 2
    events: list[dict[str, Any]] = []
    rejections: list[dict[str, Any]] = []
    pieces = input_bytes.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()  # the empty piece after a final newline (or the empty input) is no line
    for number, raw in enumerate(pieces, start=1):
        if raw.strip(_JSON_WS) == b"":
            continue
        # details may print integers of any size (A7): lift the int -> str digit limit
        with unlimited_int_digits():
            try:
                try:
                    obj = parse_json_strict(raw)
                except (ValueError, RecursionError) as exc:
                    raise Rejection("invalid_json", f"not valid JSON: {exc}") from exc
                events.extend(derive_message(obj, versions))
            except Rejection as rej:
                detail = rej.detail if len(rej.detail) <= 300 else rej.detail[:300] + "..."
                rejections.append({"line": number, "reason": rej.reason, "detail": detail})
    return events, rejections, (3 if rejections else 0)
