"""``balance-sink derive``: output format, stderr records, exit codes, streaming."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from worker.commands.cli import main
from worker.core.events import BalanceEvent

from .samples import SCHEDULE_TOML, line

KEYS = list(BalanceEvent.__struct_fields__)
ROOT = Path(__file__).resolve().parents[2]


def captured() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), write_through=True)


def run(
    tmp_path: Path,
    lines: list[bytes],
    *,
    schedule: str = SCHEDULE_TOML,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, bytes, bytes]:
    fees = tmp_path / "fees.toml"
    fees.write_text(schedule)
    data = tmp_path / "in.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    out, err = captured(), captured()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    code = main(["derive", "--fee-schedule", str(fees), str(data)])
    out.flush()
    err.flush()
    return code, out.buffer.getvalue(), err.buffer.getvalue()  # type: ignore[attr-defined]


def test_output_keys_order_and_exit_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run(tmp_path, [line(), line(trade_id=43)], monkeypatch=monkeypatch)
    assert code == 0 and err == b""
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == 8
    assert all(list(r) == KEYS for r in rows)
    assert [r["event_id"] for r in rows] == [168, 169, 170, 171, 172, 173, 174, 175]
    assert rows[2]["debit_asset"] is None and rows[0]["from_user"] is None
    assert rows[0]["is_maker"] is False
    assert b" " not in out  # compact


def test_rejections_on_stderr_with_line_numbers_counting_blanks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [line(), b"", b"   ", b"{bad", line(qty=0), line(trade_id=2)]
    code, out, err = run(tmp_path, lines, monkeypatch=monkeypatch)
    assert code == 3
    records = [json.loads(x) for x in err.splitlines()]
    assert [(r["line"], r["reason"]) for r in records] == [(4, "invalid_json"), (5, "out_of_range")]
    assert all(list(r) == ["line", "reason", "detail"] for r in records)
    assert records[1]["detail"] == "qty: 0 is below 1"
    assert len(out.splitlines()) == 8  # lines 1 and 6


def test_bad_fee_schedule_exits_2_names_field_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = SCHEDULE_TOML.replace("taker_fee = 2000", "taker_fee = 2000000")
    code, out, err = run(tmp_path, [line()], schedule=bad, monkeypatch=monkeypatch)
    assert code == 2
    assert out == b""
    assert b"versions[0].symbols[0].taker_fee" in err


def test_missing_input_file_is_a_usage_error(tmp_path: Path) -> None:
    fees = tmp_path / "fees.toml"
    fees.write_text(SCHEDULE_TOML)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker.commands.cli",
            "derive",
            "--fee-schedule",
            str(fees),
            "/nope",
        ],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert b"/nope" in proc.stderr


def test_usage_error_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "derive"], capture_output=True, check=False
    )
    assert proc.returncode == 2
    assert b"--fee-schedule" in proc.stderr


def test_stdin_and_dash_and_large_stream(tmp_path: Path) -> None:
    fees = tmp_path / "fees.toml"
    fees.write_text(SCHEDULE_TOML)
    payload = b"\n".join(line(trade_id=i) for i in range(1, 20_001)) + b"\n"
    for extra in ([], ["-"]):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "worker.commands.cli",
                "derive",
                "--fee-schedule",
                str(fees),
                *extra,
            ],
            input=payload,
            capture_output=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout.splitlines()
        assert len(out) == 80_000
        assert json.loads(out[-1])["event_id"] == 20_000 * 4 + 3


def test_sample_in_repo_derives(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "derive", "--fee-schedule",
         str(ROOT / "examples" / "fee_schedule.toml"), str(ROOT / "examples" / "trades.jsonl")],
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 3  # the sample holds three deliberately bad lines
    reasons = [json.loads(x)["reason"] for x in proc.stderr.splitlines()]
    assert reasons == ["invalid_type", "unknown_symbol", "invalid_json"]
    assert len(proc.stdout.splitlines()) == 16


def test_only_json_whitespace_is_blank(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(tmp_path, [b" \t\r", b"\x0c", line()], monkeypatch=monkeypatch)
    assert code == 3
    assert [json.loads(x)["line"] for x in err.splitlines()] == [2]


def test_make_derive_sample_shows_the_rejects_and_succeeds() -> None:
    """The sample has invalid lines on purpose: the target lists them and exits 0."""
    venv = Path(sys.prefix)
    proc = subprocess.run(
        # -o: never reinstall the virtualenv from here; VENV: the one running this test.
        ["make", "-s", "-o", f"{venv}/bin/.installed", f"VENV={venv}", "derive-sample"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(row) for row in proc.stdout.splitlines()]
    assert events and all(list(event) == KEYS for event in events)
    *rejects, note = proc.stderr.splitlines()
    assert rejects and all(json.loads(row)["reason"] for row in rejects)
    assert (
        note == "derive-sample: the rejected lines above are invalid on purpose (exit 3 expected)"
    )
