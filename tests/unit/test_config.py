"""Worker configuration: TOML + environment, secrets, and one problem per line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.engine.batch import ROW_SQL_BYTES
from worker.errors import ConfigError
from worker.ops.config import ConfigErrors, load_settings

from .samples import SCHEDULE_TOML

MINIMAL = """
fee_schedule = "fees.toml"
[kafka]
bootstrap_servers = "k1:9092,k2:9092"
[tdengine]
url = "http://td:6041"
password = "s3cret-td"
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "fees.toml").write_text(SCHEDULE_TOML)
    return tmp_path


def write(config_dir: Path, text: str) -> Path:
    path = config_dir / "config.toml"
    path.write_text(text)
    return path


def problems(config_dir: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_settings(write(config_dir, text), env or {})
    return [p.field for p in info.value.problems]


def test_minimal_config_gets_safe_defaults(config_dir: Path) -> None:
    settings = load_settings(write(config_dir, MINIMAL), {})
    assert settings.fee_schedule == str(config_dir / "fees.toml")  # relative to the config
    assert settings.kafka.topics == ("trades",)
    consumer = settings.consumer_config()
    assert consumer["enable.auto.commit"] is False
    assert consumer["enable.auto.offset.store"] is False
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"
    assert settings.loop.max_rows * ROW_SQL_BYTES <= settings.loop.max_bytes  # rows come first
    assert settings.loop.max_in_flight == 1


def test_the_consumer_refetches_soon_and_the_client_section_can_say_otherwise(
    config_dir: Path,
) -> None:
    """librdkafka's 1 s fetch.queue.backoff.ms left a fast worker waiting for messages."""
    consumer = load_settings(write(config_dir, MINIMAL), {}).consumer_config()
    assert (consumer["fetch.queue.backoff.ms"], consumer["queued.max.messages.kbytes"]) == (
        10,
        16384,
    )
    client = '[kafka.client]\n"fetch.queue.backoff.ms" = 1000\n'
    text = MINIMAL.replace("[tdengine]", client + "[tdengine]", 1)
    assert (
        load_settings(write(config_dir, text), {}).consumer_config()["fetch.queue.backoff.ms"]
        == 1000
    )


def test_a_batch_may_span_statements_and_writes_in_flight_are_bounded(config_dir: Path) -> None:
    batch = "[batch]\nmax_bytes = 8000000\nmax_in_flight = 0\n"
    settings = load_settings(write(config_dir, MINIMAL + batch), {})
    assert (settings.loop.max_bytes, settings.loop.max_in_flight) == (8_000_000, 0)
    assert load_settings(write(config_dir, MINIMAL), {}).loop.max_in_flight == 1
    for bad in (-1, 9):
        text = MINIMAL + f"[batch]\nmax_in_flight = {bad}\n"
        assert problems(config_dir, text) == ["batch.max_in_flight"], bad


def test_environment_overrides_the_file(config_dir: Path) -> None:
    env = {
        "BALANCE_SINK_KAFKA__BOOTSTRAP_SERVERS": "env:9092",
        "BALANCE_SINK_KAFKA__TOPICS": "a, b",
        "BALANCE_SINK_BATCH__MAX_ROWS": "123",
        "BALANCE_SINK_TDENGINE__PASSWORD": "from-env",
        "BALANCE_SINK_KAFKA__CLIENT__SASL_PASSWORD": "sasl-env",
        "BALANCE_SINK_KAFKA__CLIENT__SECURITY_PROTOCOL": "SASL_SSL",
        "UNRELATED": "x",
    }
    settings = load_settings(write(config_dir, MINIMAL), env)
    assert settings.kafka.bootstrap_servers == "env:9092"
    assert settings.kafka.topics == ("a", "b")
    assert settings.batch.max_rows == 123
    assert settings.tdengine.password == "from-env"
    consumer = settings.consumer_config()
    assert consumer["sasl.password"] == "sasl-env"
    assert consumer["security.protocol"] == "SASL_SSL"


def test_secrets_from_files_and_never_in_repr_or_redacted(config_dir: Path) -> None:
    (config_dir / "td.pw").write_text("file-td-pw\n")
    (config_dir / "sasl.pw").write_text("file-sasl-pw")
    text = MINIMAL.replace('password = "s3cret-td"', 'password_file = "td.pw"').replace(
        'bootstrap_servers = "k1:9092,k2:9092"',
        'bootstrap_servers = "k1:9092"\nsasl_password_file = "sasl.pw"',
    )
    settings = load_settings(write(config_dir, text), {})
    assert settings.tdengine.password == "file-td-pw"
    assert set(settings.secrets()) == {"file-td-pw", "file-sasl-pw"}
    shown = repr(settings) + str(settings.redacted())
    assert "file-td-pw" not in shown and "file-sasl-pw" not in shown


@pytest.mark.parametrize(
    ("file_line", "env", "expected"),
    [
        ('password_file = "td.pw"\n', {"BALANCE_SINK_TDENGINE__PASSWORD": "env-pw"}, "env-pw"),
        ('password = "file-pw"\n', {"BALANCE_SINK_TDENGINE__PASSWORD_FILE": "td.pw"}, "pw-in-file"),
    ],
)
def test_a_password_from_the_environment_overrides_the_files_other_way(
    config_dir: Path, file_line: str, env: dict[str, str], expected: str
) -> None:
    """As the README says: the environment overrides the file, whichever way each gives it."""
    (config_dir / "td.pw").write_text("pw-in-file\n")
    settings = load_settings(write(config_dir, NO_PASSWORD + file_line), env)
    assert settings.tdengine.password == expected


def test_every_problem_is_reported_and_names_its_field(config_dir: Path) -> None:
    text = """
fee_schedule = "fees.toml"
mystery = 1
[kafka]
bootstrap_servers = "k:9092"
dead_letter_topic = "trades"
[kafka.client]
"enable.auto.commit" = true
[tdengine]
url = "ftp://td"
[batch]
max_rows = "lots"
[worker]
max_speed = 11
[log]
format = "xml"
"""
    fields = problems(config_dir, text)
    assert "mystery" in fields
    assert "tdengine.url" in fields
    assert "batch.max_rows" in fields
    assert "worker.max_speed" in fields
    assert "log.format" in fields


def test_semantic_checks_after_types(config_dir: Path) -> None:
    text = """
fee_schedule = "fees.toml"
[kafka]
bootstrap_servers = "k:9092"
dead_letter_topic = "trades"
[kafka.client]
"enable.auto.commit" = true
[tdengine]
url = "http://td:6041"
password = "taosdata"
[batch]
max_bytes = 100000000
"""
    fields = problems(config_dir, text)
    assert fields == [
        "batch.max_bytes",
        "kafka.dead_letter_topic",
        "kafka.client.enable.auto.commit",
    ]


def test_missing_sections_and_unreadable_files(config_dir: Path) -> None:
    assert set(problems(config_dir, "")) >= {"kafka.bootstrap_servers", "fee_schedule"}
    missing = config_dir / "nope.toml"
    with pytest.raises(ConfigErrors, match="cannot read"):
        load_settings(missing, {})
    fields = problems(
        config_dir, MINIMAL, {"BALANCE_SINK_NOPE__X": "1", "BALANCE_SINK_CACHE": "/c"}
    )
    assert fields == ["BALANCE_SINK_NOPE__X"]  # BALANCE_SINK_CACHE is the stand-ins' jar cache


def test_check_config_command(config_dir: Path) -> None:
    good = write(config_dir, MINIMAL)
    ok = subprocess.run(
        [sys.executable, "-m", "worker", "check-config", "--config", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "s3cret" not in ok.stdout + ok.stderr
    (config_dir / "fees.toml").write_text(
        SCHEDULE_TOML.replace("taker_fee = 2000", "taker_fee = -1")
    )
    bad = subprocess.run(
        [sys.executable, "-m", "worker", "check-config", "--config", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    # One line naming the schedule file and the field in it.
    assert bad.stderr.count("\n") == 1, bad.stderr
    assert f"{config_dir / 'fees.toml'}: versions[0].symbols[0].taker_fee" in bad.stderr


def test_run_with_a_bad_config_exits_2_naming_the_field(config_dir: Path) -> None:
    path = write(config_dir, MINIMAL.replace('"http://td:6041"', '"nonsense"'))
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "tdengine.url" in proc.stderr


def test_example_config_in_repo_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    settings = load_settings(root / "examples" / "config.toml", {})
    assert settings.tdengine.password == "taosdata"
    assert Path(settings.fee_schedule).exists()


def check_config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``balance-sink check-config`` as an operator runs it, environment included."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BALANCE_SINK_")}
    return subprocess.run(
        [sys.executable, "-m", "worker", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**environ, **(env or {})},
    )


NO_PASSWORD = MINIMAL.replace('password = "s3cret-td"\n', "")


def test_no_password_stops_start_up_naming_the_three_ways_to_give_it(config_dir: Path) -> None:
    proc = check_config(write(config_dir, NO_PASSWORD))
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    for way in ("tdengine.password", "tdengine.password_file", "BALANCE_SINK_TDENGINE__PASSWORD"):
        assert way in line
    assert "taosdata" in line  # the default, to be given explicitly


@pytest.mark.parametrize(
    ("extra", "env"),
    [
        ('password = "taosdata"\n', {}),
        ('password_file = "td.pw"\n', {}),
        ("", {"BALANCE_SINK_TDENGINE__PASSWORD": "taosdata"}),
    ],
)
def test_an_explicit_password_even_the_default_is_accepted(
    config_dir: Path, extra: str, env: dict[str, str]
) -> None:
    (config_dir / "td.pw").write_text("taosdata\n")
    settings = load_settings(write(config_dir, NO_PASSWORD + extra), env)
    assert settings.tdengine.password == "taosdata"


def test_a_bad_value_from_the_environment_names_the_variable(config_dir: Path) -> None:
    path = write(config_dir, MINIMAL)
    proc = check_config(path, {"BALANCE_SINK_METRICS__PORT": "abc"})
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "config error: BALANCE_SINK_METRICS__PORT=abc: metrics.port: expected an integer"
    ]
    # The same value in the file: the field alone, and what was found instead.
    (problem,) = load_problems(config_dir, MINIMAL + '[metrics]\nport = "abc"\n')
    assert str(problem) == "metrics.port: expected an integer, got a string"
    # A semantic check on an environment value names the variable too.
    (problem,) = load_problems(config_dir, MINIMAL, {"BALANCE_SINK_BATCH__MAX_BYTES": "500000000"})
    assert str(problem).startswith("BALANCE_SINK_BATCH__MAX_BYTES=500000000: batch.max_bytes: ")


def test_a_bad_secret_from_the_environment_names_the_variable_not_the_value(
    config_dir: Path,
) -> None:
    secret = "hunter2\nsecond-line"
    (problem,) = load_problems(config_dir, MINIMAL, {"BALANCE_SINK_TDENGINE__PASSWORD": secret})
    assert str(problem).startswith("BALANCE_SINK_TDENGINE__PASSWORD: tdengine.password: ")
    assert "hunter2" not in str(problem)


def test_every_problem_is_reported_in_one_run(config_dir: Path) -> None:
    text = MINIMAL + '[batch]\nmax_rows = "lots"\nmax_bytes = 500000000\n[log]\nlevel = "loud"\n'
    proc = check_config(write(config_dir, text))
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == [
        "batch.max_rows",
        "log.level",
        "batch.max_bytes",
    ], lines
    assert all(line.startswith("config error: ") for line in lines)


def test_several_problems_in_one_section_are_all_reported(config_dir: Path) -> None:
    text = MINIMAL.replace(
        'url = "http://td:6041"', 'url = "ftp://td"\nkeep = "forever"\nwal_level = 3'
    )
    fields = problems(
        config_dir, text + "[worker]\npoll_timeout_ms = 0\nshutdown_timeout_s = 'x'\n"
    )
    assert fields == [
        "tdengine.url",
        "tdengine.keep",
        "tdengine.wal_level",
        "worker.shutdown_timeout_s",
        "worker.poll_timeout_ms",
    ]


@pytest.mark.parametrize("level", ["info", "Info", "INFO", "debug", "warning", "Error"])
def test_log_level_in_any_case(config_dir: Path, level: str) -> None:
    settings = load_settings(write(config_dir, MINIMAL + f'[log]\nlevel = "{level}"\n'), {})
    assert settings.log.level == level.upper()


def test_an_unknown_log_level_lists_the_allowed_values(config_dir: Path) -> None:
    (problem,) = load_problems(config_dir, MINIMAL + '[log]\nlevel = "verbose"\n')
    assert str(problem) == (
        "log.level: 'verbose' is not one of DEBUG, INFO, WARNING, ERROR (any case)"
    )
    (problem,) = load_problems(config_dir, MINIMAL, {"BALANCE_SINK_LOG__FORMAT": "xml"})
    assert str(problem) == (
        "BALANCE_SINK_LOG__FORMAT=xml: log.format: 'xml' is not one of json, human (any case)"
    )


def test_the_kafka_waits_are_validated(config_dir: Path) -> None:
    text = MINIMAL.replace(
        'bootstrap_servers = "k1:9092,k2:9092"',
        'bootstrap_servers = "k:9092"\nstartup_wait_s = 0\nnot_alive_after_down_s = -1',
    )
    assert problems(config_dir, text) == ["kafka.startup_wait_s", "kafka.not_alive_after_down_s"]
    settings = load_settings(write(config_dir, MINIMAL), {})
    assert settings.kafka.startup_wait_s <= 60  # the bound on the default


def load_problems(
    config_dir: Path, text: str, env: dict[str, str] | None = None
) -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        load_settings(write(config_dir, text), env or {})
    return info.value.problems


def test_run_names_the_fee_schedule_file_of_a_schedule_error(config_dir: Path) -> None:
    (config_dir / "fees.toml").write_text(
        SCHEDULE_TOML.replace("maker_fee = 1000", "maker_fee = 'x'")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "run", "--config", str(write(config_dir, MINIMAL))],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"config error: {config_dir / 'fees.toml'}: versions[0].symbols[")


@pytest.mark.parametrize("value", ["0", "-5"])
def test_librdkafka_statistics_stay_on(config_dir: Path, value: str) -> None:
    """The broker watch and the lag metrics read them."""
    env = {"BALANCE_SINK_KAFKA__CLIENT__STATISTICS_INTERVAL_MS": value}
    (problem,) = load_problems(config_dir, MINIMAL, env)
    assert str(problem).startswith(
        f"BALANCE_SINK_KAFKA__CLIENT__STATISTICS_INTERVAL_MS={value}: "
        "kafka.client.statistics.interval.ms: must stay positive"
    )
    settings = load_settings(write(config_dir, MINIMAL), {**env, **{next(iter(env)): "1000"}})
    assert settings.consumer_config()["statistics.interval.ms"] == "1000"


def test_an_override_of_a_section_that_is_not_a_table_is_reported_not_a_crash(
    config_dir: Path,
) -> None:
    text = 'metrics = "on"\n' + MINIMAL
    fields = problems(config_dir, text, {"BALANCE_SINK_METRICS__PORT": "9"})
    assert fields == ["metrics"]
