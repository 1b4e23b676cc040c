"""Differential tests: `balance-sink derive` against the independent reference implementation
in `reference_derive.py` (written from the issue-2 contract alone).

Compared exactly: exit status; stdout events (key order, values and JSON types, compactness);
stderr rejection records on `line` and `reason` (`detail` is free text, only its type is
checked).  On exit 2 stdout must be empty.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.unit.reference_derive import (
    EPOCH,
    EVENT_KEYS,
    MAX_I63,
    reference_derive,
    reference_schedule_error,
    unlimited_int_digits,
)
from worker.commands.cli import main

REPO = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).with_name("balance-sink")

# DERIVE_DIFF_SCALE=20 multiplies the number of generated examples (for a long hunt).
SCALE = int(os.environ.get("DERIVE_DIFF_SCALE", "1"))
FAST = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# =========================================================================== running


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1  # SystemExit("message")


def run_production(schedule_text: str, input_bytes: bytes) -> tuple[bytes, bytes, int]:
    """Run `derive` in-process; returns (stdout bytes, stderr bytes, exit status)."""
    with tempfile.TemporaryDirectory() as tmp:
        schedule_path = Path(tmp) / "schedule.toml"
        schedule_path.write_text(schedule_text, encoding="utf-8")
        input_path = Path(tmp) / "input.jsonl"
        input_path.write_bytes(input_bytes)
        out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
        out = io.TextIOWrapper(out_bytes, encoding="utf-8", newline="")
        err = io.TextIOWrapper(err_bytes, encoding="utf-8", newline="")
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            try:
                rc = _exit_code(
                    main(["derive", "--fee-schedule", str(schedule_path), str(input_path)])
                )
            except SystemExit as exc:
                rc = _exit_code(exc.code)
        finally:
            sys.stdout, sys.stderr = saved
            for stream in (out, err):
                if not stream.closed:
                    stream.flush()
        result = out_bytes.getvalue(), err_bytes.getvalue(), rc
        out.detach()
        err.detach()
        return result


def run_subprocess(
    args: Sequence[str], input_bytes: bytes | None = None
) -> tuple[bytes, bytes, int]:
    proc = subprocess.run(
        [str(CONSOLE_SCRIPT), *args],
        input=input_bytes,
        capture_output=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    return proc.stdout, proc.stderr, proc.returncode


def _loads(raw: bytes) -> Any:
    with unlimited_int_digits():
        return json.loads(raw, object_pairs_hook=list)


def _canon(value: Any) -> str:
    """Type-exact canonical form (True != 1, key order kept)."""
    with unlimited_int_digits():
        return json.dumps(value, separators=(",", ":"))


def _split_lines(data: bytes, what: str) -> list[bytes]:
    if not data:
        return []
    assert data.endswith(b"\n"), f"{what} does not end with a newline: {data[-200:]!r}"
    return data[:-1].split(b"\n")


def compare_outputs(
    schedule_text: str,
    input_bytes: bytes,
    produced: tuple[bytes, bytes, int],
) -> None:
    ref_events, ref_rejections, ref_rc = reference_derive(schedule_text, input_bytes)
    out, err, rc = produced
    context = f"\n--- schedule ---\n{schedule_text}\n--- input ---\n{input_bytes!r}\n"
    if ref_rc == 2 or rc == 2:
        assert rc == ref_rc, f"exit {rc}, reference {ref_rc}; stderr={err!r}{context}"
        assert out == b"", f"stdout not empty on exit 2: {out[:300]!r}{context}"
        return

    got_rejections: list[tuple[int, str]] = []
    for raw in _split_lines(err, "stderr"):
        record = _loads(raw)
        assert isinstance(record, list), f"stderr record is not an object: {raw!r}"
        keys = [k for k, _ in record]
        assert sorted(keys) == ["detail", "line", "reason"], f"stderr keys {keys}: {raw!r}"
        values = dict(record)
        assert type(values["line"]) is int and type(values["reason"]) is str, raw
        assert type(values["detail"]) is str, raw
        got_rejections.append((values["line"], values["reason"]))
    want_rejections = [(r["line"], r["reason"]) for r in ref_rejections]
    assert got_rejections == want_rejections, (
        f"rejections differ\n production: {got_rejections}\n reference:  {want_rejections}"
        f"\n production stderr: {err.decode('utf-8', 'replace')}{context}"
    )

    got_lines = _split_lines(out, "stdout")
    assert len(got_lines) == len(ref_events), (
        f"{len(got_lines)} events, reference {len(ref_events)}{context}"
    )
    for i, (raw, want) in enumerate(zip(got_lines, ref_events, strict=True)):
        pairs = _loads(raw)
        assert isinstance(pairs, list), f"event {i} is not an object: {raw!r}"
        keys = [k for k, _ in pairs]
        assert keys == list(EVENT_KEYS), f"event {i} keys {keys}{context}"
        got_canon = _canon(dict(pairs))
        want_canon = _canon(want)
        assert got_canon == want_canon, (
            f"event {i} differs\n production: {got_canon}\n reference:  {want_canon}{context}"
        )
        assert raw == got_canon.encode(), f"event {i} is not compact JSON: {raw!r}"
    assert rc == ref_rc, f"exit {rc}, reference {ref_rc}{context}"


def check(schedule_text: str, input_bytes: bytes) -> None:
    compare_outputs(schedule_text, input_bytes, run_production(schedule_text, input_bytes))


# =========================================================================== JSON writing


@dataclass(frozen=True)
class Raw:
    """A JSON token (or key, quotes included) written verbatim."""

    text: str


Pairs = list[tuple[str | Raw, Any]]


@dataclass(frozen=True)
class Obj:
    """A JSON object as ordered pairs (duplicates allowed)."""

    pairs: tuple[tuple[str | Raw, Any], ...]


@dataclass(frozen=True)
class Style:
    item_sep: str = ","
    key_sep: str = ":"
    lead: str = ""
    trail: str = ""


def render(value: Any, style: Style = Style()) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Obj):
        items = [
            (k.text if isinstance(k, Raw) else json.dumps(k)) + style.key_sep + render(v, style)
            for k, v in value.pairs
        ]
        return "{" + style.item_sep.join(items) + "}"
    if isinstance(value, dict):
        return render(Obj(tuple(value.items())), style)
    if isinstance(value, list):
        return "[" + style.item_sep.join(render(v, style) for v in value) + "]"
    with unlimited_int_digits():
        return json.dumps(value)


def render_line(pairs: Pairs, style: Style) -> bytes:
    return (style.lead + render(Obj(tuple(pairs)), style) + style.trail).encode("utf-8")


# =========================================================================== schedules

DAY_US = 86_400 * 1_000_000
T_2025_01_01 = 1_735_689_600 * 1_000_000
T_2025_06_15 = 1_749_945_600 * 1_000_000
T_MIN = -10 * 365 * DAY_US  # 1960
T_MAX = 4_102_444_800 * 1_000_000  # 2100


@dataclass
class VersionModel:
    eff_us: int
    vip: list[tuple[int, int]]
    symbols: list[tuple[int, int, int]]  # (symbol_id, maker_fee, taker_fee)
    dt_style: str = "Z"
    offset_min: int = 0
    vip_as_table: bool = False


@dataclass
class ScheduleModel:
    versions: list[VersionModel]

    def symbol_ids(self) -> list[int]:
        return sorted({s[0] for v in self.versions for s in v.symbols})

    def vip_levels(self) -> list[int]:
        return sorted({lvl for v in self.versions for lvl, _ in v.vip})

    def instants(self) -> list[int]:
        return [v.eff_us for v in self.versions]


def toml_datetime(us: int, style: str, offset_min: int) -> str:
    moment = EPOCH + dt.timedelta(microseconds=us)
    suffix = "Z"
    if style == "offset":
        moment = moment + dt.timedelta(minutes=offset_min)
        sign = "+" if offset_min >= 0 else "-"
        suffix = f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"
    elif style == "local":
        suffix = ""
    sep = " " if style == "space" else "T"
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}{sep}"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + suffix


@dataclass
class TomlVersion:
    """A version as raw TOML snippets, so that schedule mutations can inject anything."""

    fields: list[tuple[str, str]]
    vip: list[tuple[str, str]] | None
    vip_as_table: bool
    symbols: list[list[tuple[str, str]]] | None


def to_toml_versions(model: ScheduleModel) -> list[TomlVersion]:
    out = []
    for v in model.versions:
        out.append(
            TomlVersion(
                fields=[("effective_from", toml_datetime(v.eff_us, v.dt_style, v.offset_min))],
                vip=[(str(level), str(pct)) for level, pct in v.vip],
                vip_as_table=v.vip_as_table,
                symbols=[
                    [("symbol_id", str(s)), ("maker_fee", str(m)), ("taker_fee", str(t))]
                    for s, m, t in v.symbols
                ],
            )
        )
    return out


def render_toml(versions: list[TomlVersion], header: str = "") -> str:
    lines = ["# generated fee schedule", header]
    for v in versions:
        lines.append("[[versions]]")
        lines.extend(f"{k} = {raw}" for k, raw in v.fields)
        if v.vip is not None and not v.vip_as_table:
            inner = ", ".join(f"{json.dumps(k)} = {raw}" for k, raw in v.vip)
            lines.append(f"vip_discount_percent = {{ {inner} }}")
        if v.symbols == []:
            lines.append("symbols = []")
        if v.vip is not None and v.vip_as_table:
            lines.append("[versions.vip_discount_percent]")
            lines.extend(f"{json.dumps(k)} = {raw}" for k, raw in v.vip)
        for sym in v.symbols or []:
            lines.append("[[versions.symbols]]")
            lines.extend(f"{k} = {raw}" for k, raw in sym)
    return "\n".join(lines) + "\n"


def render_schedule(model: ScheduleModel) -> str:
    return render_toml(to_toml_versions(model))


def boundary_ints(lo: int, hi: int, *extra: int) -> st.SearchStrategy[int]:
    picks = sorted({x for x in (lo, lo + 1, hi - 1, hi, *extra) if lo <= x <= hi})
    return st.one_of(st.sampled_from(picks), st.integers(lo, hi))


RATES = boundary_ints(0, 1_000_000, 1, 100, 1000, 2000, 999_999)
PERCENTS = boundary_ints(0, 100, 1, 50, 90, 99)
SCHEDULE_SYMBOLS = [0, 1, 2, 3, 7, 42, 2**31, -1, 2**63 - 1, -(2**63)]


@st.composite
def version_models(draw: st.DrawFn, eff_us: int) -> VersionModel:
    levels = draw(
        st.lists(
            st.one_of(st.sampled_from([0, 0, 0, 1, 2, 5, 254, 255]), st.integers(0, 255)),
            unique=True,
            max_size=5,
        )
    )
    vip = [(level, draw(PERCENTS)) for level in levels]
    sids = draw(st.lists(st.sampled_from(SCHEDULE_SYMBOLS), unique=True, max_size=4))
    symbols = [(sid, draw(RATES), draw(RATES)) for sid in sids]
    style = draw(st.sampled_from(["Z", "Z", "offset", "local", "space"]))
    offset = draw(st.integers(-12 * 4, 14 * 4)) * 15
    return VersionModel(eff_us, vip, symbols, style, offset, draw(st.booleans()))


EFF_US = st.one_of(
    st.sampled_from([T_2025_01_01, T_2025_06_15, 0, 1, DAY_US, T_2025_06_15 + 1]),
    st.integers(T_MIN, T_MAX),
)


@st.composite
def schedule_models(draw: st.DrawFn) -> ScheduleModel:
    instants = draw(st.lists(EFF_US, min_size=1, max_size=4, unique=True))
    return ScheduleModel([draw(version_models(us)) for us in instants])


# =========================================================================== trades

REQUIRED = (
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
    "taker_side",
)
OPTIONAL = ("buyer_vip", "seller_vip", "account_type")
INT_FIELDS = tuple(f for f in REQUIRED + OPTIONAL if f != "taker_side")

BOUNDARY_VALUES = [
    -(2**64),
    -(2**63) - 1,
    -(2**63),
    -(2**31) - 1,
    -1,
    0,
    1,
    2,
    127,
    128,
    255,
    256,
    2**31 - 1,
    2**31,
    2**61 - 1,
    2**61,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    10**30,
    -(10**30),
]
WRONG_TYPES: list[Any] = [
    Raw("1.0"),
    Raw("1e2"),
    Raw("1E0"),
    Raw("-0.0"),
    Raw("0.5"),
    Raw("1e400"),
    Raw("-0"),  # this one IS the integer 0
    "100",
    "1",
    "",
    "buy",
    None,
    True,
    False,
    [],
    [1],
    {},
    {"v": 1},
]
BAD_TAKER_SIDES: list[Any] = [
    "BUY",
    "Buy",
    "Sell",
    " buy",
    "buy ",
    "",
    "b",
    "buy\u0000",
    "bu\u0079",  # == "buy": valid
    Raw('"bu\\u0079"'),  # escaped "buy": valid
    Raw('"s\\u0065ll"'),  # escaped "sell": valid
    "sell\n",
    1,
    0,
    None,
    True,
    ["buy"],
    {"buy": 1},
    Raw("1.0"),
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**64, -(2**64), 10**40, Raw("1e400"), Raw("-1e-400"), Raw("1.5E+3")]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
UNKNOWN_KEYS = st.one_of(
    st.sampled_from(["fee", "venue", "x", "TRADE_ID", "trade_id ", "Qty", "maker", "", "é"]),
    st.text(max_size=6).filter(lambda k: k not in REQUIRED + OPTIONAL),
)


@st.composite
def amounts(draw: st.DrawFn) -> tuple[int, int, int]:
    """(price, qty, qty_unit) mostly giving an in-range quote_amount."""
    qty = draw(
        st.one_of(
            st.sampled_from([1, 2, 10**8, 10**18, 2**62, MAX_I63]),
            st.integers(1, MAX_I63),
            st.integers(1, 10**6),
        )
    )
    unit = draw(
        st.one_of(
            st.sampled_from([1, 10, 10**8, 10**18, MAX_I63, 2**64, 10**30, qty]),
            st.integers(1, 2**64),
        )
    )
    mode = draw(st.integers(0, 3))
    if mode == 0:
        price = draw(st.one_of(st.integers(1, 2**70), st.sampled_from([1, MAX_I63, 2**63])))
    else:
        target = draw(
            st.one_of(
                st.sampled_from([1, 2, 999_999, 1_000_000, MAX_I63, MAX_I63 - 1]),
                st.integers(1, MAX_I63),
                st.integers(1, 10**9),
            )
        )
        price = max(1, -(-target * unit // qty))  # ceil(target * unit / qty)
    return price, qty, unit


@st.composite
def valid_trades(draw: st.DrawFn, model: ScheduleModel) -> Pairs:
    sids = model.symbol_ids()
    symbol = 1
    if sids and draw(st.integers(0, 9)) > 0:
        symbol = draw(st.sampled_from(sids))
    instants = model.instants()
    ts = draw(
        st.one_of(
            st.builds(
                lambda base, d: max(1, base + d),
                st.sampled_from(instants),
                st.sampled_from([0, 0, 1, -1, 1000, DAY_US]),
            ),
            st.integers(1, 2**62),
            st.sampled_from([1, MAX_I63]),
        )
    )
    price, qty, unit = draw(amounts())
    base = draw(boundary_ints(0, 2**31 - 1, 1, 2))
    quote = draw(boundary_ints(0, 2**31 - 1, 1, 2).filter(lambda q: q != base))
    buyer = draw(boundary_ints(1, MAX_I63, 1001))
    seller = buyer if draw(st.integers(0, 5)) == 0 else draw(boundary_ints(1, MAX_I63, 1002))
    pairs: Pairs = [
        ("trade_id", draw(boundary_ints(1, 2**61 - 1))),
        ("symbol_id", symbol),
        ("ts", ts),
        ("price", price),
        ("qty", qty),
        ("qty_unit", unit),
        ("base_asset_id", base),
        ("quote_asset_id", quote),
        ("buyer_user_id", buyer),
        ("seller_user_id", seller),
        ("taker_side", draw(st.sampled_from(["buy", "sell"]))),
    ]
    levels = model.vip_levels() or [0]
    for name in ("buyer_vip", "seller_vip"):
        if draw(st.integers(0, 2)):
            pairs.append((name, draw(st.one_of(st.sampled_from(levels), st.integers(0, 255)))))
    if draw(st.booleans()):
        pairs.append(("account_type", draw(boundary_ints(1, 127, 2, 3))))
    for _ in range(draw(st.integers(0, 2))):
        pairs.append((draw(UNKNOWN_KEYS), draw(json_values)))
    return draw(st.permutations(pairs)) if draw(st.integers(0, 3)) == 0 else pairs


# ------------------------------------------------------------------ mutations

Mutation = Callable[[Pairs], Pairs]


def _set(name: str, value: Any) -> Mutation:
    def apply(pairs: Pairs) -> Pairs:
        if any(k == name for k, _ in pairs):
            return [(k, value if k == name else v) for k, v in pairs]
        return [*pairs, (name, value)]

    return apply


def _drop(name: str) -> Mutation:
    return lambda pairs: [(k, v) for k, v in pairs if k != name]


def _dup(name: str, value: Any, before: bool) -> Mutation:
    def apply(pairs: Pairs) -> Pairs:
        return [(name, value), *pairs] if before else [*pairs, (name, value)]

    return apply


def _escape_key(name: str) -> Mutation:
    """Write the key with a \\u escape: the same key after JSON decoding."""
    escaped = Raw('"' + f"\\u{ord(name[0]):04x}" + name[1:] + '"')
    return lambda pairs: [(escaped if k == name else k, v) for k, v in pairs]


def _field_value(pairs: Pairs, name: str) -> Any:
    for k, v in pairs:
        if k == name:
            return v
    return None


def _zero_quote(pairs: Pairs) -> Pairs:
    return _set("price", 1)(_set("qty", 1)(_set("qty_unit", 2)(pairs)))


def _overflow_quote(pairs: Pairs) -> Pairs:
    return _set("price", 2**63)(_set("qty", 1)(_set("qty_unit", 1)(pairs)))


def _same_assets(pairs: Pairs) -> Pairs:
    return _set("quote_asset_id", _field_value(pairs, "base_asset_id"))(pairs)


@st.composite
def mutations(draw: st.DrawFn, model: ScheduleModel, kind: str | None = None) -> Mutation:
    kinds = [
        "drop",
        "wrong_type",
        "bad_side",
        "boundary",
        "zero_quote",
        "overflow_quote",
        "same_assets",
        "unknown_symbol",
        "unknown_vip",
        "early_ts",
        "dup",
        "escape",
    ]
    kind = kind or draw(st.sampled_from(kinds))
    if kind == "drop":
        return _drop(draw(st.sampled_from(REQUIRED + OPTIONAL)))
    if kind == "wrong_type":
        return _set(draw(st.sampled_from(INT_FIELDS)), draw(st.sampled_from(WRONG_TYPES)))
    if kind == "bad_side":
        return _set("taker_side", draw(st.sampled_from(BAD_TAKER_SIDES)))
    if kind == "boundary":
        return _set(draw(st.sampled_from(INT_FIELDS)), draw(st.sampled_from(BOUNDARY_VALUES)))
    if kind == "zero_quote":
        return _zero_quote
    if kind == "overflow_quote":
        return _overflow_quote
    if kind == "same_assets":
        return _same_assets
    if kind == "unknown_symbol":
        return _set("symbol_id", draw(st.sampled_from([999_999, -7, 2**64, 10**40, -(10**40)])))
    if kind == "unknown_vip":
        name = draw(st.sampled_from(["buyer_vip", "seller_vip"]))
        return _set(name, draw(st.sampled_from([0, 1, 3, 100, 255])))
    if kind == "early_ts":
        first = min(model.instants())
        return _set("ts", draw(st.sampled_from([max(1, first - 1), 1, max(1, first)])))
    if kind == "dup":
        name = draw(st.sampled_from(REQUIRED + OPTIONAL))
        value = draw(st.one_of(st.sampled_from(WRONG_TYPES), st.sampled_from(BOUNDARY_VALUES)))
        return _dup(name, value, draw(st.booleans()))
    return _escape_key(draw(st.sampled_from(REQUIRED + OPTIONAL)))


STYLES = st.builds(
    Style,
    item_sep=st.sampled_from([",", ", ", " ,\t", ",\r "]),
    key_sep=st.sampled_from([":", ": ", " : "]),
    lead=st.sampled_from(["", "", " ", "\t"]),
    trail=st.sampled_from(["", "", " ", "\r", " \t\r"]),
)

# Inputs on which production is already known to differ from the reference (see the report
# of the differential run): kept in the hand-picked cases below, and left out of the random
# generators so that these find OTHER differences.  Set to False once production is fixed.
AVOID_KNOWN_DIFFERENCES = False

NON_OBJECTS = [b"[]", b"[1,2]", b'"x"', b"1", b"-0", b"null", b"true", b"1.5", b'[{"trade_id":1}]']
MALFORMED = [
    b"{",
    b"}",
    b"{}}",
    b'{"a":1,}',
    b"{'a':1}",
    b"NaN",
    b'{"a":NaN}',
    b'{"a":Infinity}',
    b'{"a":-Infinity}',
    b'{"a":01}',
    b'{"a":+1}',
    b'{"a":.5}',
    b"\xff",
    b'{"a":"\xc3"}',
    b'{"a":"\x01"}',
    b"{}{}",
    b"{} x",
    b"{}\x0c",
    b"\x0c",
    b"{a:1}",
    b"[1,]",
    b'{"a" 1}',
    b"tru",
    b'{"a":"\\x"}',
]
BLANKS = [b"", b" ", b"\t", b"\r", b" \t \r"]
if AVOID_KNOWN_DIFFERENCES:  # invalid UTF-8 crashes production; a lone \x0c line is skipped
    MALFORMED = [m for m in MALFORMED if m not in (b"\xff", b'{"a":"\xc3"}', b"\x0c")]


@st.composite
def trade_lines(draw: st.DrawFn, model: ScheduleModel, max_mutations: int = 3) -> bytes:
    pairs = draw(valid_trades(model))
    for _ in range(draw(st.integers(0, max_mutations))):
        pairs = draw(mutations(model))(pairs)
    return render_line(pairs, draw(STYLES))


@st.composite
def any_lines(draw: st.DrawFn, model: ScheduleModel) -> bytes:
    which = draw(st.integers(0, 9))
    if which == 0:
        return draw(st.sampled_from(NON_OBJECTS))
    if which == 1:
        if draw(st.booleans()):
            return draw(st.sampled_from(MALFORMED))
        full = draw(trade_lines(model, 0))
        cut = draw(st.integers(0, len(full) - 1))
        while AVOID_KNOWN_DIFFERENCES and cut and (full[cut] & 0xC0) == 0x80:
            cut -= 1  # do not split a UTF-8 sequence
        return full[:cut]  # a strict prefix is never JSON
    if which == 2:
        return draw(st.sampled_from(BLANKS))
    return draw(trade_lines(model))


def join_lines(lines: list[bytes], final_newline: bool) -> bytes:
    data = b"\n".join(lines)
    return data + b"\n" if final_newline and lines else data


# =========================================================================== tests


@settings(FAST, max_examples=200 * SCALE)
@given(data=st.data())
def test_valid_trades_match_reference(data: st.DataObject) -> None:
    model = data.draw(schedule_models())
    lines = data.draw(st.lists(trade_lines(model, 0), min_size=1, max_size=8))
    check(render_schedule(model), join_lines(lines, data.draw(st.booleans())))


@settings(FAST, max_examples=400 * SCALE)
@given(data=st.data())
def test_mixed_lines_match_reference(data: st.DataObject) -> None:
    model = data.draw(schedule_models())
    lines = data.draw(st.lists(any_lines(model), min_size=1, max_size=10))
    check(render_schedule(model), join_lines(lines, data.draw(st.booleans())))


CHECK_ORDER_KINDS = [
    "drop",
    "wrong_type",
    "bad_side",
    "boundary",
    "zero_quote",
    "overflow_quote",
    "same_assets",
    "unknown_symbol",
    "unknown_vip",
    "early_ts",
]


@settings(FAST, max_examples=400 * SCALE)
@given(data=st.data())
def test_check_order_matches_reference(data: st.DataObject) -> None:
    """Several problems of different checks in one message: the first check must win."""
    model = data.draw(schedule_models())
    pairs = data.draw(valid_trades(model))
    kinds = data.draw(
        st.lists(st.sampled_from(CHECK_ORDER_KINDS), min_size=2, max_size=4, unique=True)
    )
    for kind in kinds:
        pairs = data.draw(mutations(model, kind))(pairs)
    check(render_schedule(model), render_line(pairs, Style()))


# ------------------------------------------------------------------ schedules

SCHEDULE_MUTATIONS = [
    "maker_fee",
    "taker_fee",
    "percent",
    "vip_key",
    "dup_eff",
    "dup_symbol",
    "no_versions",
    "empty_versions",
    "eff_string",
    "eff_missing",
    "symbol_id",
    "drop_rate",
    "drop_symbol_id",
    "toml_syntax",
    "versions_table",
]
BAD_RATES = ["-1", "1000001", "true", "1000.0", '"1000"', "9223372036854775807", "1e3", "[1]"]


def spell_toml_int(n: int, how: int) -> str:
    """Another valid TOML spelling of the integer n."""
    if n < 0 or how == 0:
        return str(n)
    if how == 1:
        return "+" + str(n)
    if how == 2:
        return "0x" + format(n, "x")
    if how == 3:
        return "0o" + format(n, "o")
    if how == 4:
        return "0b" + format(n, "b")
    digits = str(n)
    return "_".join(digits) if len(digits) > 1 else digits


@st.composite
def broken_schedules(draw: st.DrawFn) -> str:
    model = draw(schedule_models())
    for vm in model.versions:  # make sure every mutation has something to act on
        if not vm.symbols:
            vm.symbols.append((1, 1000, 2000))
        if not vm.vip:
            vm.vip.append((0, 100))
    tv = to_toml_versions(model)
    kind = draw(st.sampled_from(SCHEDULE_MUTATIONS))
    v = draw(st.sampled_from(tv))
    sym = draw(st.sampled_from(v.symbols or [[]]))
    if kind in ("maker_fee", "taker_fee"):
        idx = [k for k, _ in sym].index(kind)
        sym[idx] = (kind, draw(st.sampled_from(BAD_RATES)))
    elif kind == "percent":
        assert v.vip
        i = draw(st.integers(0, len(v.vip) - 1))
        bad = draw(st.sampled_from(["-1", "101", "true", "50.0", '"50"', "1000"]))
        v.vip[i] = (v.vip[i][0], bad)
    elif kind == "vip_key":
        assert v.vip is not None
        v.vip.append((draw(st.sampled_from(["256", "-1", "x", "1000", "1.5", ""])), "50"))
    elif kind == "dup_eff":
        src = draw(st.sampled_from(model.versions))
        style = draw(st.sampled_from(["Z", "offset", "local", "space"]))
        offset = draw(st.integers(-12, 14)) * 60
        twin = TomlVersion(
            fields=[("effective_from", toml_datetime(src.eff_us, style, offset))],
            vip=[("0", "100")],
            vip_as_table=False,
            symbols=[[("symbol_id", "1"), ("maker_fee", "1"), ("taker_fee", "1")]],
        )
        tv.insert(draw(st.integers(0, len(tv))), twin)
    elif kind == "dup_symbol":
        assert v.symbols
        v.symbols.append([(k, raw) for k, raw in sym])
    elif kind == "no_versions":
        return "# nothing here\n" + draw(st.sampled_from(["", "other = 1\n"]))
    elif kind == "empty_versions":
        return "versions = []\n"
    elif kind == "eff_string":
        v.fields[0] = ("effective_from", json.dumps(v.fields[0][1]))
    elif kind == "eff_missing":
        v.fields = []
    elif kind == "symbol_id":
        idx = [k for k, _ in sym].index("symbol_id")
        sym[idx] = ("symbol_id", draw(st.sampled_from(["true", "1.0", '"1"', "[1]"])))
    elif kind == "drop_rate":
        name = draw(st.sampled_from(["maker_fee", "taker_fee"]))
        sym[:] = [(k, raw) for k, raw in sym if k != name]
    elif kind == "drop_symbol_id":
        sym[:] = [(k, raw) for k, raw in sym if k != "symbol_id"]
    elif kind == "toml_syntax":
        return render_toml(tv) + draw(st.sampled_from(["[[versions\n", "x = \n", "= 1\n"]))
    elif kind == "versions_table":
        return "[versions]\neffective_from = 2025-01-01T00:00:00Z\n"
    return render_toml(tv)


@settings(FAST, max_examples=150 * SCALE)
@given(schedule=broken_schedules())
def test_broken_schedules_exit_2(schedule: str) -> None:
    line = (
        b'{"trade_id":1,"symbol_id":1,"ts":1750000000000000,"price":10,"qty":10,"qty_unit":1,'
        b'"base_asset_id":1,"quote_asset_id":2,"buyer_user_id":1,"seller_user_id":2,'
        b'"taker_side":"buy"}\n'
    )
    assert reference_schedule_error(schedule) is not None, schedule
    check(schedule, line)


@settings(FAST, max_examples=60 * SCALE)
@given(data=st.data())
def test_schedule_spellings_match_reference(data: st.DataObject) -> None:
    """Valid TOML spellings of integers (1_000, 0x3e8, +1000) are ordinary integers."""
    model = data.draw(schedule_models())
    tv = to_toml_versions(model)
    for v in tv:
        for sym in v.symbols or []:
            for i, (k, raw) in enumerate(sym):
                sym[i] = (k, spell_toml_int(int(raw), data.draw(st.integers(0, 5))))
        if v.vip:
            v.vip = [
                (k, spell_toml_int(int(raw), data.draw(st.integers(0, 5)))) for k, raw in v.vip
            ]
    schedule = render_toml(tv)
    lines = data.draw(st.lists(trade_lines(model, 1), min_size=1, max_size=5))
    check(schedule, join_lines(lines, True))


# ------------------------------------------------------------------ hand-picked cases

SCHED = """
[[versions]]
effective_from = 2025-06-15T00:00:00Z
vip_discount_percent = { "0" = 100, "1" = 90, "5" = 50 }
[[versions.symbols]]
symbol_id = 1
maker_fee = 1000
taker_fee = 2000
[[versions.symbols]]
symbol_id = 2
maker_fee = 0
taker_fee = 1000000
"""
T0 = T_2025_06_15


def trade(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "trade_id": 7,
        "symbol_id": 1,
        "ts": T0,
        "price": 6_500_000_000_000,
        "qty": 25_000_000,
        "qty_unit": 100_000_000,
        "base_asset_id": 1,
        "quote_asset_id": 2,
        "buyer_user_id": 1001,
        "seller_user_id": 1002,
        "taker_side": "buy",
    }
    for k, v in overrides.items():
        if v is _ABSENT:
            base.pop(k, None)
        else:
            base[k] = v
    return base


_ABSENT = object()


def line(**overrides: Any) -> bytes:
    return render(trade(**overrides)).encode()


HAND_CASES: dict[str, tuple[str, bytes]] = {
    "plain": (SCHED, line()),
    "exactly_effective_from": (SCHED, line(ts=T0)),
    "one_us_before": (SCHED, line(ts=T0 - 1)),
    "max_trade_id": (SCHED, line(trade_id=2**61 - 1)),
    "trade_id_2_61": (SCHED, line(trade_id=2**61)),
    "quote_max": (SCHED, line(price=MAX_I63, qty=1, qty_unit=1)),
    "quote_max_via_unit": (SCHED, line(price=MAX_I63 * 3, qty=2, qty_unit=6)),
    "quote_over": (SCHED, line(price=MAX_I63, qty=2, qty_unit=1)),
    "quote_2_63": (SCHED, line(price=2**63, qty=1, qty_unit=1)),
    "quote_zero": (SCHED, line(price=1, qty=1, qty_unit=2)),
    "min_fee": (SCHED, line(qty=1, price=10**9, qty_unit=10**8)),
    "rate_100pct": (SCHED, line(symbol_id=2, taker_side="sell")),
    "rate_zero": (SCHED, line(symbol_id=2, taker_side="buy")),
    "buyer_is_seller": (SCHED, line(seller_user_id=1001)),
    "vip_5_both": (SCHED, line(buyer_vip=5, seller_vip=5)),
    "vip_unknown": (SCHED, line(buyer_vip=2)),
    "vip_256": (SCHED, line(seller_vip=256)),
    "vip_null": (SCHED, line(buyer_vip=None)),
    "account_null": (SCHED, line(account_type=None)),
    "account_127": (SCHED, line(account_type=127)),
    "account_128": (SCHED, line(account_type=128)),
    "account_0": (SCHED, line(account_type=0)),
    "bool_qty": (SCHED, line(qty=True)),
    "bool_vip": (SCHED, line(buyer_vip=False)),
    "float_qty": (SCHED, line().replace(b'"qty":25000000', b'"qty":1.0')),
    "exp_qty": (SCHED, line().replace(b'"qty":25000000', b'"qty":25e6')),
    "neg_zero_vip": (SCHED, line().replace(b"}", b', "buyer_vip": -0}')),
    "string_qty": (SCHED, line(qty="100")),
    "null_trade_id": (SCHED, line(trade_id=None)),
    "missing_and_bool": (SCHED, line(qty=_ABSENT, price=True)),
    "missing_side_bad_type": (SCHED, line(taker_side=_ABSENT, qty="x")),
    "side_int": (SCHED, line(taker_side=1)),
    "side_null": (SCHED, line(taker_side=None)),
    "side_upper_and_range": (SCHED, line(taker_side="BUY", qty=0)),
    "range_and_zero_quote": (SCHED, line(trade_id=0, price=1, qty=1, qty_unit=2)),
    "same_assets": (SCHED, line(quote_asset_id=1)),
    "asset_max": (SCHED, line(base_asset_id=2**31 - 1)),
    "asset_2_31": (SCHED, line(base_asset_id=2**31)),
    "asset_zero": (SCHED, line(base_asset_id=0)),
    "user_zero": (SCHED, line(buyer_user_id=0)),
    "user_max": (SCHED, line(buyer_user_id=MAX_I63, seller_user_id=MAX_I63)),
    "user_2_63": (SCHED, line(seller_user_id=2**63)),
    "qty_max": (SCHED, line(qty=MAX_I63, price=1, qty_unit=MAX_I63)),
    "qty_2_63": (SCHED, line(qty=2**63, price=1, qty_unit=2**63)),
    "ts_zero": (SCHED, line(ts=0)),
    "ts_negative": (SCHED, line(ts=-1)),
    "unknown_symbol": (SCHED, line(symbol_id=3)),
    "unknown_symbol_and_vip": (SCHED, line(symbol_id=3, buyer_vip=2)),
    "early_and_unknown_symbol": (SCHED, line(ts=1, symbol_id=3)),
    "zero_quote_and_early": (SCHED, line(ts=1, price=1, qty=1, qty_unit=2)),
    "level0_missing": (SCHED.replace('"0" = 100, ', ""), line()),
    "level0_missing_explicit_vip": (SCHED.replace('"0" = 100, ', ""), line(buyer_vip=1)),
    "unknown_fields": (SCHED, line(extra={"a": [1, 2.5, None]}, fee=-1, TRADE_ID="x")),
    "duplicate_key_last_valid": (SCHED, line().replace(b"{", b'{"qty": "x", ', 1)),
    "duplicate_key_last_invalid": (SCHED, line().replace(b"}", b', "qty": "x"}')),
    "escaped_key": (SCHED, line().replace(b'"trade_id"', b'"trade\\u005fid"')),
    "escaped_side": (SCHED, line().replace(b'"buy"', b'"\\u0062uy"')),
    "array": (SCHED, b"[]"),
    "null": (SCHED, b"null"),
    "string": (SCHED, b'"{}"'),
    "empty_object": (SCHED, b"{}"),
    "nan": (SCHED, line(price=_ABSENT).replace(b"}", b', "price": NaN}')),
    "invalid_utf8": (SCHED, line().replace(b'"buy"', b'"b\xffy"')),
    "crlf": (SCHED, line() + b"\r\n" + b"\r\n" + line(trade_id=9) + b"\r\n"),
    "blank_lines": (SCHED, b"\n\n  \n" + line() + b"\n\t\n" + b"[]\n"),
    "no_final_newline": (SCHED, line() + b"\n" + line(trade_id=8)),
    "empty_input": (SCHED, b""),
    "only_newlines": (SCHED, b"\n\n\n"),
    "huge_int_unknown_field": (SCHED, line().replace(b"}", b', "x": ' + b"9" * 5000 + b"}")),
    "huge_price_rejected": (
        SCHED,
        line().replace(b'"price":6500000000000', b'"price":' + b"9" * 5000),
    ),
    "huge_float_unknown": (SCHED, line().replace(b"}", b', "x": 1e999}')),
    "nesting_200_unknown": (SCHED, line().replace(b"}", b',"x":' + b"[" * 200 + b"]" * 200 + b"}")),
    "nesting_100000_unknown": (
        SCHED,
        line().replace(b"}", b',"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ),
    "symbol_id_5000_digits": (
        SCHED,
        line().replace(b'"symbol_id":1', b'"symbol_id":1' + b"0" * 5000),
    ),
    "ts_5000_digits": (SCHED, line().replace(b'"ts":%d' % T0, b'"ts":1' + b"0" * 5000)),
    "qty_5000_digits": (SCHED, line().replace(b'"qty":25000000', b'"qty":1' + b"0" * 5000)),
    "trade_id_minus_5000_digits": (
        SCHED,
        line().replace(b'"trade_id":7', b'"trade_id":-1' + b"0" * 5000),
    ),
    "vip_5000_digits_list_bad_type": (
        SCHED,
        line().replace(b"}", b',"buyer_vip":[1' + b"0" * 5000 + b"]}"),
    ),
    "taker_side_list_5000_digits": (
        SCHED,
        line().replace(b'"taker_side":"buy"', b'"taker_side":[1' + b"0" * 5000 + b"]"),
    ),
    "qty_object_5000_digits": (
        SCHED,
        line().replace(b'"qty":25000000', b'"qty":{"a":1' + b"0" * 5000 + b"}"),
    ),
    "qty_unit_5000_digits_zero_quote": (
        SCHED,
        line().replace(b'"qty_unit":100000000', b'"qty_unit":1' + b"0" * 5000),
    ),
    "taker_side_invalid_utf8": (SCHED, line().replace(b'"buy"', b'"\xff"')),
    "nesting_1500_unknown": (
        SCHED,
        line().replace(b"}", b',"x":' + b"[" * 1500 + b"]" * 1500 + b"}"),
    ),
    "nested_unknown": (SCHED, line().replace(b"}", b', "x": {"y": [[[{}]]]}}')),
    "offset_schedule": (
        SCHED.replace("2025-06-15T00:00:00Z", "2025-06-15T02:00:00+02:00"),
        line(ts=T0 - 1) + b"\n" + line(ts=T0),
    ),
    "local_schedule": (
        SCHED.replace("2025-06-15T00:00:00Z", "2025-06-15T00:00:00"),
        line(ts=T0 - 1) + b"\n" + line(ts=T0),
    ),
    "fraction_schedule": (
        SCHED.replace("2025-06-15T00:00:00Z", "2025-06-15T00:00:00.000001Z"),
        line(ts=T0) + b"\n" + line(ts=T0 + 1),
    ),
    "two_versions_boundary": (
        SCHED
        + SCHED.replace("2025-06-15", "2025-07-01").replace("taker_fee = 2000", "taker_fee = 5"),
        b"\n".join(
            line(ts=t, trade_id=i + 1)
            for i, t in enumerate([T0, T0 + 16 * DAY_US - 1, T0 + 16 * DAY_US])
        ),
    ),
    "versions_out_of_order": (
        SCHED.replace("2025-06-15", "2025-07-01").replace("taker_fee = 2000", "taker_fee = 5")
        + SCHED,
        b"\n".join(
            line(ts=t, trade_id=i + 1)
            for i, t in enumerate([T0, T0 + 16 * DAY_US - 1, T0 + 16 * DAY_US])
        ),
    ),
    "dup_eff_same_instant": (
        SCHED + SCHED.replace("2025-06-15T00:00:00Z", "2025-06-15T01:00:00+01:00"),
        line(),
    ),
    "dup_eff_local_vs_z": (
        SCHED + SCHED.replace("2025-06-15T00:00:00Z", "2025-06-15T00:00:00"),
        line(),
    ),
    "dup_symbol": (
        SCHED + "[[versions.symbols]]\nsymbol_id = 1\nmaker_fee = 1\ntaker_fee = 1\n",
        line(),
    ),
    "rate_over": (SCHED.replace("taker_fee = 1000000", "taker_fee = 1000001"), line()),
    "percent_over": (SCHED.replace('"5" = 50', '"5" = 101'), line()),
    "vip_key_256": (SCHED.replace('"5" = 50', '"256" = 50'), line()),
    "vip_key_255": (SCHED.replace('"5" = 50', '"255" = 50'), line(seller_vip=255)),
    "rate_bool": (SCHED.replace("maker_fee = 0", "maker_fee = false"), line()),
    "no_versions": ("", line()),
}


@pytest.mark.parametrize("name", sorted(HAND_CASES))
def test_hand_picked_cases(name: str) -> None:
    schedule, data = HAND_CASES[name]
    check(schedule, data)


# Points where the contract is open (see the header of reference_derive.py); kept apart so a
# disagreement here is reported as a reading to settle rather than a plain defect.
AMBIGUOUS_CASES: dict[str, tuple[str, bytes]] = {
    "A2_formfeed_only_line": (SCHED, b"\x0c\n" + line()),
    "A2_vtab_only_line": (SCHED, b"\x0b\n" + line()),
    "A2_space_formfeed_line": (SCHED, b" \x0c \n" + line()),
    "A2_nbsp_only_line": (SCHED, b"\xc2\xa0\n" + line()),
    "A2_bom_line": (SCHED, b"\xef\xbb\xbf" + line()),
    "A3_lone_surrogate_unknown": (SCHED, line().replace(b"}", b', "x": "\\ud800"}')),
    "A8_symbol_id_2_64": (SCHED, line(symbol_id=2**64)),
    "A8_symbol_id_negative": (SCHED, line(symbol_id=-(2**63) - 1)),
    "A8_ts_2_63": (SCHED, line(ts=2**63)),
    "A8_ts_10_30": (SCHED, line(ts=10**30)),
    "A8_price_unit_huge": (SCHED, line(price=10**30, qty=5, qty_unit=10**30)),
    "A8_qty_unit_2_64": (SCHED, line(price=2**64, qty=7, qty_unit=2**64)),
    "S1_local_date": (SCHED.replace("2025-06-15T00:00:00Z", "2025-06-15"), line()),
    "S3_no_symbols_key": (
        SCHED.split("[[versions.symbols]]")[0] + SCHED.replace("2025-06-15", "2025-01-01"),
        line(),
    ),
    "S3_empty_symbols": (
        SCHED.replace("[[versions]]\n", "[[versions]]\nsymbols = []\n", 1).split(
            "[[versions.symbols]]"
        )[0],
        line(),
    ),
    "S3_no_vip_table": (
        SCHED.replace('vip_discount_percent = { "0" = 100, "1" = 90, "5" = 50 }', ""),
        line(),
    ),
    "S3_empty_vip_table": (SCHED.replace('{ "0" = 100, "1" = 90, "5" = 50 }', "{}"), line()),
    "S4_vip_key_05": (SCHED.replace('"5" = 50', '"05" = 50'), line(buyer_vip=5)),
    "S6_unknown_schedule_key": (
        SCHED.replace("symbol_id = 2\n", "symbol_id = 2\nnote = 'x'\n"),
        line(),
    ),
}


@pytest.mark.parametrize("name", sorted(AMBIGUOUS_CASES))
def test_ambiguous_readings(name: str) -> None:
    schedule, data = AMBIGUOUS_CASES[name]
    check(schedule, data)


# ------------------------------------------------------------------ console script


def _random_lines(rng: random.Random, n: int) -> bytes:
    out = []
    for i in range(n):
        overrides: dict[str, Any] = {
            "trade_id": i + 1,
            "symbol_id": rng.choice([1, 1, 2, 3]),
            "ts": T0 + rng.choice([-1, 0, 1, 10**9]),
            "qty": rng.randint(1, 10**12),
            "qty_unit": rng.choice([1, 10**8, 10**18]),
            "price": rng.randint(1, 10**15),
            "taker_side": rng.choice(["buy", "sell"]),
            "buyer_vip": rng.choice([0, 1, 5, 2]),
            "account_type": rng.randint(1, 127),
        }
        if rng.random() < 0.05:
            overrides[rng.choice(list(overrides))] = rng.choice([None, "1", True, -1, 1.5])
        out.append(line(**overrides))
        if rng.random() < 0.02:
            out.append(rng.choice([b"", b"{", b"[]", b"  "]))
    return b"\n".join(out) + b"\n"


def test_console_script_big_input_matches_reference(tmp_path: Path) -> None:
    data = _random_lines(random.Random(20250615), 5000)
    schedule_path = tmp_path / "s.toml"
    schedule_path.write_text(SCHED, encoding="utf-8")
    input_path = tmp_path / "in.jsonl"
    input_path.write_bytes(data)
    produced = run_subprocess(["derive", "--fee-schedule", str(schedule_path), str(input_path)])
    compare_outputs(SCHED, data, produced)
    # stdin, both implicitly and with "-"
    for extra in ([], ["-"]):
        produced = run_subprocess(
            ["derive", "--fee-schedule", str(schedule_path), *extra], input_bytes=data
        )
        compare_outputs(SCHED, data, produced)


@pytest.mark.parametrize(
    "args",
    [
        ["derive"],
        ["derive", "--fee-schedule"],
        ["derive", "--fee-schedule", "/nonexistent/schedule.toml", "-"],
        ["derive", "--fee-schedule", "{schedule}", "/nonexistent/input.jsonl"],
        ["derive", "--fee-schedule", "{schedule}", "a", "b"],
    ],
)
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    schedule_path = tmp_path / "s.toml"
    schedule_path.write_text(SCHED, encoding="utf-8")
    argv = [a.replace("{schedule}", str(schedule_path)) for a in args]
    out, err, rc = run_subprocess(argv, input_bytes=line() + b"\n")
    assert (rc, out) == (2, b""), (rc, out, err)


def test_reference_is_importable_without_worker() -> None:
    """The reference must not depend on production code."""
    source = (Path(__file__).with_name("reference_derive.py")).read_text(encoding="utf-8")
    assert "worker" not in source.replace("`worker/`", "")
    assert os.path.exists(CONSOLE_SCRIPT)
