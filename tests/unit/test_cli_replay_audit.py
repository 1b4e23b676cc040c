"""Argument parsing of ``replay``, ``audit`` and ``tdengine-double`` (no broker, no database)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from worker.commands import cli
from worker.commands.audit import AuditRequest
from worker.commands.replay import ReplayRequest, run_replay
from worker.exit_codes import EXIT_FAILED

CONFIG = """
fee_schedule = "{schedule}"
[kafka]
bootstrap_servers = "127.0.0.1:9"
group_id = "live-worker"
[tdengine]
password = "taosdata"
[log]
level = "WARNING"
"""


@pytest.fixture
def config(tmp_path: Path) -> str:
    from standins.samples import fee_schedule_text

    schedule = tmp_path / "fees.toml"
    schedule.write_text(fee_schedule_text())
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(schedule=schedule))
    return str(path)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []

    def capture(request: Any) -> int:
        seen.append(request)
        return 0

    monkeypatch.setattr("worker.commands.replay.run_replay", capture)
    monkeypatch.setattr("worker.commands.audit.run_audit", capture)
    return seen


def test_replay_options_become_a_request(captured: list[Any]) -> None:
    code = cli.main([
        "replay", "--config", "c.toml", "--from-offset", "0:5,2:9", "--to-timestamp",
        "2025-06-15T00:00:00Z", "--commit-group", "backfill-1", "--resume",
        "--fee-schedule", "fixed.toml", "--dead-letter-topic", "dlq2", "--topic", "a",
        "--topic", "b", "--summary-file", "s.json", "--progress", "off",
    ])  # fmt: skip
    assert code == 0
    (request,) = captured
    assert request == ReplayRequest(
        config="c.toml", from_offset={0: 5, 2: 9}, to_timestamp_ms=1_749_945_600_000,
        topics=("a", "b"), commit_group="backfill-1", resume=True, fee_schedule="fixed.toml",
        dead_letter_topic="dlq2", summary_file="s.json", progress="off",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-offset", "1", "--from-beginning"], "not allowed with argument"),
        (["--from-offset", "x"], "offset 'x' is not a non-negative integer"),
        (["--from-timestamp", "2025-01-01"], "no time zone"),
        (["--to-offset", "1", "--to-timestamp", "5"], "not allowed with argument"),
        (["--from-beginning", "--resume"], "--resume needs --commit-group"),
        (["--from-beginning", "--no-dead-letter"], "--no-dead-letter needs --summary-file"),
        (["--no-dead-letter", "--dead-letter-topic", "x"], "not allowed with argument"),
    ],
)
def test_replay_usage_errors_exit_2(
    args: list[str], message: str, captured: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["replay", "--config", "c.toml", *args])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err
    assert captured == []


def test_replay_refuses_the_live_workers_group(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    request = ReplayRequest(config=config, from_beginning=True, commit_group="live-worker")
    assert run_replay(request) == 2
    assert "is the live worker's group" in capsys.readouterr().err


def test_replay_needs_a_start(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_replay(ReplayRequest(config=config)) == 2
    assert "give a start" in capsys.readouterr().err


def test_replay_reports_a_bad_fee_schedule_as_usage(
    config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("versions = 3\n")
    request = ReplayRequest(config=config, from_beginning=True, fee_schedule=str(bad))
    assert run_replay(request) == 2
    assert "fee schedule error" in capsys.readouterr().err


def test_replay_that_cannot_reach_the_broker_exits_1_stopped_before_the_end(
    config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("worker.commands.replay.ranges.METADATA_TIMEOUT_S", 1.0)
    root = logging.getLogger()  # the replay configures logging: put it back afterwards
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    summary = tmp_path / "summary.json"
    request = ReplayRequest(
        config=config, from_beginning=True, dry_run=True, summary_file=str(summary)
    )  # bootstrap 127.0.0.1:9: nothing listens there
    assert run_replay(request) == EXIT_FAILED == 1  # not 2: the request itself was fine
    out = capsys.readouterr().out
    assert "replay INCOMPLETE" in out and "could not read the topic's offsets" in out
    written = json.loads(summary.read_text())
    assert written["completed"] is False and written["messages_read"] == 0


def test_audit_options_become_a_request(captured: list[Any]) -> None:
    code = cli.main([
        "audit", "--config", "c.toml", "--from", "2025-01-01T00:00:00Z", "--to", "1767225600000",
        "--user-id", "42", "--account-type", "2", "--format", "csv", "--against-topic",
        "--topic-from-timestamp", "1000", "--topic-to-offset", "0:10", "--window-rows", "5000",
        "--max-failures", "3",
    ])  # fmt: skip
    assert code == 0
    (request,) = captured
    assert request == AuditRequest(
        config="c.toml", from_ms=1_735_689_600_000, to_ms=1_767_225_600_000, user_id=42,
        account_type=2, format="csv", against_topic=True, topic_from_timestamp_ms=1000,
        topic_to_offset={0: 10}, window_rows=5000, max_failures=3,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "5"], "the following arguments are required: --from"),
        (["--from", "1", "--to", "5", "--format", "xml"], "invalid choice: 'xml'"),
        (["--from", "1", "--to", "5", "--user-id", "-3"], "not a non-negative integer"),
        (["--from", "1", "--to", "5", "--user-id", "1:2"], "not a non-negative integer"),
        (["--from", "1", "--to", "5", "--window-rows", "0"], "must be at least 1"),
    ],
)
def test_audit_usage_errors_exit_2(
    args: list[str], message: str, captured: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["audit", "--config", "c.toml", *args])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err
    assert captured == []


def test_tdengine_double_gets_its_own_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(list(argv))
        return 0

    monkeypatch.setattr("standins.tdengine_double.cli.main", fake_main)
    assert cli.main(["tdengine-double", "--port", "6041", "--db-file", "x.db"]) == 0
    assert seen == [["--port", "6041", "--db-file", "x.db"]]
