"""Worker configuration: one TOML file plus environment overrides, typed and frozen.

Environment variables ``BALANCE_SINK_<SECTION>__<FIELD>`` override the file, e.g.
``BALANCE_SINK_KAFKA__BOOTSTRAP_SERVERS`` or ``BALANCE_SINK_TDENGINE__PASSWORD``;
``BALANCE_SINK_KAFKA__CLIENT__SASL_PASSWORD`` sets the librdkafka property
``sasl.password`` (underscores become dots). Secrets may also come from files
(``tdengine.password_file``, ``kafka.sasl_password_file``). The TDengine password must be
given (no silent ``taosdata``). Every problem found is reported in one run, one line
each, naming its field, and the environment variable when the value came from one
(``BALANCE_SINK_METRICS__PORT=abc: metrics.port: expected an integer``; a secret's
value is never shown).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from worker.errors import ConfigError
from worker.ops.config_errors import (
    ConfigErrors,
    EnvironmentConfigError,
    allowed_values,
    validation_problem,
)
from worker.tdengine.options import TDengineOptions

__all__ = (
    "ENV_PREFIX",
    "BatchSettings",
    "ConfigErrors",
    "EnvironmentConfigError",
    "KafkaSettings",
    "LogSettings",
    "LoopOptions",
    "MetricsSettings",
    "Settings",
    "WorkerSettings",
    "load_settings",
)

ENV_PREFIX: Final = "BALANCE_SINK_"
MAX_BATCH_BYTES: Final = 64 * 1_048_576
"""A batch is sent in statements of at most ``tdengine.max_statement_bytes``; this only
bounds the memory a batch may take."""
MAX_IN_FLIGHT: Final = 8
"""More batches in flight only hold more memory: one writer writes them in turn."""
ClientValue = str | int | float | bool
_SECRET_CLIENT_KEYS: Final = frozenset(
    {"sasl.password", "ssl.key.password", "ssl.keystore.password", "sasl.oauthbearer.client.secret"}
)
_SECRET_FIELDS: Final = frozenset(
    {"tdengine.password", *(f"kafka.client.{key}" for key in _SECRET_CLIENT_KEYS)}
)
_PASSWORD_MISSING: Final = (
    "required: set tdengine.password, tdengine.password_file or "
    f"{ENV_PREFIX}TDENGINE__PASSWORD (even TDengine's default 'taosdata' must be "
    "given explicitly)"
)


class KafkaSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[kafka]``: the cluster, the topics, and librdkafka properties passed through."""

    bootstrap_servers: str
    group_id: str = "balance-sink"
    topics: tuple[str, ...] = ("trades",)
    dead_letter_topic: str = "trades.dead-letter"
    sasl_password_file: str | None = None
    startup_wait_s: float = 60.0
    """How long ``run`` waits at start-up for a broker to answer before exiting 1."""
    not_alive_after_down_s: float = 120.0
    """``/healthz`` fails once no broker has been reachable for this long."""
    client: dict[str, ClientValue] = msgspec.field(default_factory=dict)
    """Any librdkafka property (security.protocol, sasl.*, ssl.*, ...)."""

    def consumer_config(self) -> dict[str, ClientValue]:
        """librdkafka consumer properties: ours, then the pass-through ``client``."""
        config: dict[str, ClientValue] = {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "statistics.interval.ms": 5000,
            "enable.partition.eof": False,
            # librdkafka stops fetching a partition whose prefetched messages pass the
            # queue's limits, for fetch.queue.backoff.ms (1 s by default): a worker that
            # drains the queue faster than that waited for messages a quarter of the
            # time. A short backoff keeps it fed, so a smaller queue (64 MiB by default)
            # is enough: 16 MiB is over a tenth of a second at full speed.
            "fetch.queue.backoff.ms": 10,
            "queued.max.messages.kbytes": 16384,
        }
        config.update(self.client)
        # Never let pass-through properties turn on auto-commit: it would commit
        # offsets of messages whose rows are not stored yet.
        config["enable.auto.commit"] = False
        return config

    def __repr__(self) -> str:
        client = {k: "***" if k in _SECRET_CLIENT_KEYS else v for k, v in self.client.items()}
        return (
            f"KafkaSettings(bootstrap_servers={self.bootstrap_servers!r}, "
            f"group_id={self.group_id!r}, topics={self.topics!r}, "
            f"dead_letter_topic={self.dead_letter_topic!r}, "
            f"startup_wait_s={self.startup_wait_s!r}, "
            f"not_alive_after_down_s={self.not_alive_after_down_s!r}, client={client!r})"
        )


class BatchSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[batch]``: a flush is due at whichever limit comes first."""

    max_rows: int = 50_000
    """Measured against TDengine 3.3.6 (README, "Batch size"): about 7 % more rows/s than
    20,000, for twice the flush latency."""
    max_bytes: int = 8_000_000
    """Estimated SQL bytes (``ROW_SQL_BYTES`` a row, so ``max_rows`` comes first); the
    writer splits a batch into statements within TDengine's limit."""
    linger_ms: int = 500
    max_in_flight: int = 1
    """Batches being written while the next is read; 0: write synchronously."""


class WorkerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[worker]``: polling, backoff while the store fails, shutdown and health."""

    poll_timeout_ms: int = 100
    retry_initial_backoff_ms: int = 500
    retry_max_backoff_ms: int = 30_000
    dead_letter_timeout_s: float = 30.0
    shutdown_timeout_s: float = 25.0
    not_ready_after_failing_s: float = 120.0
    summary_interval_s: float = 60.0


class MetricsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[metrics]``: the Prometheus /metrics, /healthz and /readyz endpoint."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = 9108


class LogSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``[log]``: JSON lines by default, or a human format; names in any case."""

    format: Literal["json", "human"] = "json"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kafka_repeat_interval_s: float = 60.0
    """A librdkafka line repeated within this interval is logged once, then its count."""


class LoopOptions(msgspec.Struct, frozen=True):
    """What the consumer loop reads: ``[batch]`` and ``[worker]`` together."""

    max_rows: int
    max_bytes: int
    linger_ms: int
    max_in_flight: int
    poll_timeout_ms: int
    retry_initial_backoff_ms: int
    retry_max_backoff_ms: int
    dead_letter_timeout_s: float
    shutdown_timeout_s: float
    not_ready_after_failing_s: float
    summary_interval_s: float

    @classmethod
    def of(cls, batch: BatchSettings, worker: WorkerSettings) -> LoopOptions:
        """The two sections merged."""
        return cls(**msgspec.structs.asdict(batch), **msgspec.structs.asdict(worker))


class Settings(msgspec.Struct, frozen=True):
    """The whole configuration of one worker."""

    fee_schedule: str
    kafka: KafkaSettings
    tdengine: TDengineOptions
    batch: BatchSettings = BatchSettings()
    worker: WorkerSettings = WorkerSettings()
    metrics: MetricsSettings = MetricsSettings()
    log: LogSettings = LogSettings()

    @property
    def loop(self) -> LoopOptions:
        return LoopOptions.of(self.batch, self.worker)

    def consumer_config(self) -> dict[str, ClientValue]:
        """librdkafka consumer properties (see :meth:`KafkaSettings.consumer_config`)."""
        return self.kafka.consumer_config()

    def __repr__(self) -> str:
        return f"Settings({self.redacted()!r})"

    def secrets(self) -> list[str]:
        """Secret values, to be masked wherever they would be logged."""
        found = [self.tdengine.password] if self.tdengine.password else []
        for key in _SECRET_CLIENT_KEYS:
            value = self.kafka.client.get(key)
            if isinstance(value, str) and value:
                found.append(value)
        return found

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with secrets replaced by ``***`` (for logs)."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        if data["tdengine"].get("password"):
            data["tdengine"]["password"] = "***"
        for key in _SECRET_CLIENT_KEYS.intersection(data["kafka"]["client"]):
            data["kafka"]["client"][key] = "***"
        return data


_SECTIONS: Final[Mapping[str, type[msgspec.Struct]]] = {
    "kafka": KafkaSettings,
    "tdengine": TDengineOptions,
    "batch": BatchSettings,
    "worker": WorkerSettings,
    "metrics": MetricsSettings,
    "log": LogSettings,
}
_NOT_OVERRIDES: Final = frozenset({f"{ENV_PREFIX}CACHE"})
"""Variables with our prefix that are not settings (the stand-ins' jar cache)."""
_ANY_CASE: Final[Mapping[str, Mapping[str, Callable[[str], str]]]] = {
    "log": {"level": str.upper, "format": str.lower},
}
"""Fields accepted in any case, per section, and how they are normalised."""


class _Loader:
    """One load: the problems found so far and where each overridden value came from."""

    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ
        self.problems: list[ConfigError] = []
        self.origins: dict[str, tuple[str, str]] = {}
        """Dotted field -> (environment variable, its value)."""
        self.bad: set[str] = set()
        """Dotted fields with a problem; checks involving them are skipped."""

    def add(self, problem: ConfigError) -> None:
        """Record a problem, naming the environment variable its value came from."""
        field = problem.field
        self.bad.add(field.split("[")[0])
        origin = self.origins.get(field) or self.origins.get(field.split("[")[0])
        if origin is not None and not isinstance(problem, EnvironmentConfigError):
            variable, value = origin
            secret = field in _SECRET_FIELDS
            text = problem.problem
            if text.startswith("expected ") and ", got " in text:
                text = text.split(", got ")[0]  # every environment value is a string
            problem = EnvironmentConfigError(variable, None if secret else value, field, text)
        self.problems.append(problem)


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, override and validate; raises :class:`ConfigErrors` listing every problem."""
    environ = os.environ if environ is None else environ
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigErrors([ConfigError(str(path), f"cannot read: {exc.strerror}")]) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigErrors([ConfigError(str(path), f"not valid TOML: {exc}")]) from exc
    load = _Loader(path, environ)
    _apply_environment(raw, load)
    _read_secret_files(raw, load)
    sections: dict[str, Any] = {}
    for name, kind in _SECTIONS.items():
        table = raw.pop(name, {})
        if name == "kafka" and not table:
            load.add(ConfigError(f"{name}.bootstrap_servers", "required field is missing"))
            continue
        if not isinstance(table, dict):
            load.add(ConfigError(name, "must be a table"))
            continue
        if (
            name == "tdengine"
            and "password" not in table
            and "tdengine.password_file" not in load.bad
        ):
            load.add(ConfigError("tdengine.password", _PASSWORD_MISSING))
            table = {**table, "password": "unused"}  # find the section's other problems
        converted = _convert(name, kind, table, load)
        if converted is not None:
            sections[name] = converted
    fee_schedule = raw.pop("fee_schedule", None)
    if not isinstance(fee_schedule, str) or not fee_schedule:
        load.add(ConfigError("fee_schedule", "required: path of the fee schedule TOML"))
    else:
        fee_path = Path(fee_schedule)
        if not fee_path.is_absolute():
            fee_path = path.parent / fee_path
        fee_schedule = str(fee_path)
    for unknown in raw:
        load.add(ConfigError(unknown, "unknown setting"))
    _check_values(sections, load)
    if load.problems:
        raise ConfigErrors(load.problems)
    assert isinstance(fee_schedule, str)
    return Settings(fee_schedule=fee_schedule, **sections)


def _convert(
    section: str, kind: type[msgspec.Struct], table: dict[str, Any], load: _Loader
) -> msgspec.Struct | None:
    """The section as ``kind``. A field with a problem is reported, then left out (its
    default stands in) and the rest converted again, so every field's problem shows."""
    table = dict(table)
    any_case = _ANY_CASE.get(section, {})
    for field, normalise in any_case.items():
        value = table.get(field)
        if isinstance(value, str) and normalise(value) in allowed_values(kind, field):
            table[field] = normalise(value)
    reported: set[str] = set()
    result: msgspec.Struct | None = None
    while True:
        problem: ConfigError
        try:
            result = msgspec.convert(table, kind, strict=False)
        except msgspec.ValidationError as exc:
            own = exc.__cause__  # a section's own checks (TDengineOptions.__post_init__)
            problem = (
                own if isinstance(own, ConfigError)
                else validation_problem(section, kind, exc, any_case)
            )  # fmt: skip
        except ConfigError as exc:
            problem = exc
        else:
            return result
        if problem.field in reported:
            return None
        reported.add(problem.field)
        load.add(problem)
        name = problem.field.removeprefix(f"{section}.").split(".")[0].split("[")[0]
        if name not in table:
            return None
        del table[name]


_SECRET_ALTERNATIVES: Final = {
    ("tdengine", "password"): "password_file",
    ("tdengine", "password_file"): "password",
}
"""A secret field set from the environment -> the file's field it replaces."""


def _apply_environment(raw: dict[str, Any], load: _Loader) -> None:
    for name, value in load.environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_OVERRIDES:
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if parts == ["fee_schedule"]:
            raw["fee_schedule"] = value
            load.origins["fee_schedule"] = (name, value)
            continue
        if len(parts) == 3 and parts[:2] == ["kafka", "client"]:
            key = parts[2].replace("_", ".")
            client = _table(_table(raw, "kafka"), "client")
            client[key] = value
            load.origins[f"kafka.client.{key}"] = (name, value)
            continue
        if len(parts) != 2 or parts[0] not in _SECTIONS:
            load.add(ConfigError(name, "unknown environment override"))
            continue
        section, field = parts
        table = _table(raw, section)
        if field == "topics":
            table[field] = [t.strip() for t in value.split(",") if t.strip()]
        else:
            table[field] = value
            # The environment overrides the file: a secret given here replaces the
            # file's other way of giving the same secret.
            table.pop(_SECRET_ALTERNATIVES.get((section, field), ""), None)
        load.origins[f"{section}.{field}"] = (name, value)


def _table(parent: dict[str, Any], name: str) -> dict[str, Any]:
    """``parent[name]``, created when missing; a scratch table when the file has a
    non-table there (that problem is reported when the section is read)."""
    table = parent.setdefault(name, {})
    return table if isinstance(table, dict) else {}


def _read_secret_files(raw: dict[str, Any], load: _Loader) -> None:
    for section, file_key, target in (
        ("tdengine", "password_file", None),
        ("kafka", "sasl_password_file", "sasl.password"),
    ):
        table = raw.get(section)
        if not isinstance(table, dict) or not table.get(file_key):
            continue
        file_path = Path(str(table.pop(file_key)))
        if not file_path.is_absolute():
            file_path = load.path.parent / file_path
        try:
            secret = file_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            load.add(ConfigError(f"{section}.{file_key}", f"cannot read: {exc.strerror}"))
            continue
        if target is None:
            table["password"] = secret
            load.origins.pop(f"{section}.password", None)
        else:
            table.setdefault("client", {})[target] = secret
            load.origins.pop(f"{section}.client.{target}", None)


def _check_values(sections: dict[str, Any], load: _Loader) -> None:
    """Checks across fields of the sections that converted, skipping fields with a
    problem already (a default standing in for them would mislead)."""
    batch: BatchSettings = sections.get("batch", BatchSettings())
    worker: WorkerSettings = sections.get("worker", WorkerSettings())
    metrics: MetricsSettings = sections.get("metrics", MetricsSettings())
    log: LogSettings = sections.get("log", LogSettings())
    checks: list[tuple[bool, str, tuple[str, ...], str]] = [
        (batch.max_rows >= 1, "batch.max_rows", (), "must be at least 1"),
        (0 < batch.max_bytes <= MAX_BATCH_BYTES, "batch.max_bytes", (),
         f"must be within 1 … {MAX_BATCH_BYTES:,}"),
        (batch.linger_ms >= 1, "batch.linger_ms", (), "must be at least 1"),
        (0 <= batch.max_in_flight <= MAX_IN_FLIGHT, "batch.max_in_flight", (),
         f"must be within 0 … {MAX_IN_FLIGHT} (0: write synchronously)"),
        (worker.poll_timeout_ms >= 1, "worker.poll_timeout_ms", (), "must be at least 1"),
        (worker.retry_initial_backoff_ms >= 1, "worker.retry_initial_backoff_ms", (),
         "must be at least 1"),
        (worker.retry_max_backoff_ms >= worker.retry_initial_backoff_ms,
         "worker.retry_max_backoff_ms", ("worker.retry_initial_backoff_ms",),
         "must not be below retry_initial_backoff_ms"),
        (worker.shutdown_timeout_s > 0, "worker.shutdown_timeout_s", (), "must be positive"),
        (worker.dead_letter_timeout_s > 0, "worker.dead_letter_timeout_s", (),
         "must be positive"),
        (0 <= metrics.port <= 65535, "metrics.port", (), "must be within 0 … 65535"),
        (log.kafka_repeat_interval_s > 0, "log.kafka_repeat_interval_s", (),
         "must be positive"),
    ]  # fmt: skip
    kafka: KafkaSettings | None = sections.get("kafka")
    if kafka is not None:
        stats = str(kafka.client.get("statistics.interval.ms", 1)).strip()
        checks += [
            (bool(kafka.bootstrap_servers.strip()), "kafka.bootstrap_servers", (),
             "must not be empty"),
            (bool(kafka.topics) and all(kafka.topics), "kafka.topics", (),
             "at least one topic name"),
            (bool(kafka.dead_letter_topic), "kafka.dead_letter_topic", (), "must not be empty"),
            (kafka.dead_letter_topic not in kafka.topics, "kafka.dead_letter_topic",
             ("kafka.topics",), "must differ from the input topics"),
            (bool(kafka.group_id), "kafka.group_id", (), "must not be empty"),
            (0 < kafka.startup_wait_s <= 3600, "kafka.startup_wait_s", (),
             "must be within 0 … 3600 seconds (0 excluded)"),
            (kafka.not_alive_after_down_s > 0, "kafka.not_alive_after_down_s", (),
             "must be positive"),
            (kafka.client.get("enable.auto.commit") not in (True, "true", "True", 1),
             "kafka.client.enable.auto.commit", (),
             "must stay false: offsets are committed only after rows are stored"),
            (not stats.lstrip("-").isdigit() or int(stats) > 0,
             "kafka.client.statistics.interval.ms", (),
             "must stay positive: broker health and lag metrics come from statistics"),
        ]  # fmt: skip
    for ok, field, involved, problem in checks:
        if not ok and not load.bad.intersection((field, *involved)):
            load.add(ConfigError(field, problem))
