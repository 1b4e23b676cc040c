"""A real single-node Apache Kafka broker (KRaft, combined broker+controller), no Docker.

:class:`LocalKafkaBroker` runs ``kafka.Kafka`` from the Maven Central jars (see
:func:`ensure_jars`) as a child JVM on free loopback ports, with a fresh data directory.
Tests, CI and the local demo all use it::

    with LocalKafkaBroker() as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers})

The JVM runs in its own process group, gets SIGTERM if the Python process dies (Linux,
``setpriv --pdeathsig``), and every broker still running at interpreter exit is stopped.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, Final

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from standins.local_kafka._config import (
    HOST,
    NODE_ID,
    new_cluster_id,
    pick_free_ports,
    port_is_free,
    render_server_properties,
)
from standins.local_kafka._jars import DEFAULT_KAFKA_VERSION, ensure_jars
from standins.local_kafka.errors import (
    BrokerConfigError,
    BrokerNotReadyError,
    BrokerStartError,
    JavaNotFoundError,
    LocalKafkaError,
    PortInUseError,
)

__all__ = (
    "DEFAULT_KAFKA_VERSION",
    "JVM_OPTIONS",
    "LocalKafkaBroker",
    "ensure_jars",
    "find_java",
)

logger = logging.getLogger(__name__)

JVM_OPTIONS: Final = (
    # Bounded heap: ample for a test broker (bin/kafka-server-start.sh uses 1G).
    "-Xms256m",
    "-Xmx512m",
    # bin/kafka-run-class.sh's KAFKA_JVM_PERFORMANCE_OPTS.
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    # C1 only: measured on the 2-core box, start-up to ready ~2x faster (e.g. 8-12 s -> 4-5 s
    # under load) with no loss on 50k-message produce/consume; a test broker never runs long
    # enough to repay C2 compilation.
    "-XX:TieredStopAtLevel=1",
    # Die visibly instead of limping on after an OutOfMemoryError.
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
"""Options of the broker JVM."""

_TOOL_JVM_OPTIONS: Final = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
"""Options of the short-lived StorageTool JVM: small heap, quick JIT only."""

_FORMAT_TIMEOUT_S: Final = 60.0
_POLL_S: Final = 0.1
_CONNECT_TIMEOUT_S: Final = 0.25
# One metadata request may not take all of the remaining start-up budget: retry instead.
_METADATA_TIMEOUT_S: Final = 2.0
_KILL_WAIT_S: Final = 10.0
_LOG_TAIL_LINES: Final = 25
_LOG_TAIL_BYTES: Final = 64 * 1024
_BIND_FAILURE_RE: Final = re.compile(
    r"Socket server failed to bind to [^\s:]+:(\d+): Address already in use"
)

_LIVE: set[LocalKafkaBroker] = set()
"""Brokers whose JVM is running; stopped at interpreter exit."""


def find_java() -> str:
    """Return the ``java`` executable: ``$JAVA_HOME/bin/java`` if it exists, else from PATH.

    Raises
    ------
    JavaNotFoundError
        Neither is found.
    """
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise JavaNotFoundError()
    return found


@functools.cache
def _pdeathsig_prefix() -> tuple[str, ...]:
    """``setpriv --pdeathsig TERM --`` when it works here (Linux util-linux >= 2.33)."""
    if not sys.platform.startswith("linux"):
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ()
    prefix = (setpriv, "--pdeathsig", "TERM", "--")
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=5.0, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return prefix if probe.returncode == 0 else ()


def _read_log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _LOG_TAIL_BYTES))
            data = handle.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=_CONNECT_TIMEOUT_S):
            return True
    except OSError:
        return False


class LocalKafkaBroker:
    """One Kafka broker+controller on loopback, in a fresh temporary directory.

    Parameters
    ----------
    version : str
        Kafka version whose jars :func:`ensure_jars` provides.
    broker_port, controller_port : int, optional
        Fixed ports. By default free ports are picked, and picked again (up to
        ``port_attempts`` times) if another process takes one first.
    work_dir : Path, optional
        Directory for server.properties, data and logs; never deleted. By default a new
        temporary directory, deleted by :meth:`stop` after a clean run and kept after a
        failure so its log can be read.
    cache_dir : Path, optional
        Jar cache root (see :func:`standins.local_kafka._jars.cache_root`).
    overrides : Mapping[str, str], optional
        Extra server.properties settings (listeners, ports and dirs are refused).
    die_with_parent : bool
        Ask the kernel to SIGTERM the JVM when the thread that started it exits (Linux).
        Turn off when starting the broker from a short-lived thread.
    """

    def __init__(
        self,
        version: str = DEFAULT_KAFKA_VERSION,
        *,
        broker_port: int | None = None,
        controller_port: int | None = None,
        work_dir: Path | None = None,
        cache_dir: Path | None = None,
        overrides: Mapping[str, str] | None = None,
        port_attempts: int = 3,
        die_with_parent: bool = True,
    ) -> None:
        if port_attempts < 1:
            raise BrokerConfigError("port_attempts", f"must be >= 1, got {port_attempts}")
        self._version = version
        self._fixed_ports = (broker_port, controller_port)
        self._given_work_dir = work_dir
        self._cache_dir = cache_dir
        self._overrides = dict(overrides or {})
        self._port_attempts = port_attempts
        self._die_with_parent = die_with_parent
        self._process: subprocess.Popen[bytes] | None = None
        self._work_dir: Path | None = None
        self._bootstrap: str | None = None
        self._pid: int | None = None
        self._startup_seconds: float | None = None
        self._failed = False

    # -- public properties -------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<port>`` of the PLAINTEXT listener; only while running."""
        if self._bootstrap is None or not self.is_running:
            raise LocalKafkaError("the local Kafka broker is not running; call start() first")
        return self._bootstrap

    @property
    def log_path(self) -> Path:
        """The broker's combined stdout/stderr log (also holds the storage format output)."""
        return self._require_work_dir() / "logs" / "broker.log"

    @property
    def data_dir(self) -> Path:
        """The broker's ``log.dirs`` directory."""
        return self._require_work_dir() / "data"

    @property
    def pid(self) -> int | None:
        """Process id of the current (or last launched) broker JVM, if one was launched."""
        return self._pid

    @property
    def is_running(self) -> bool:
        """Whether the broker JVM is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def startup_seconds(self) -> float | None:
        """Seconds from storage format to the first successful metadata request."""
        return self._startup_seconds

    def _require_work_dir(self) -> Path:
        if self._work_dir is None:
            raise LocalKafkaError("the local Kafka broker was never started")
        return self._work_dir

    # -- life cycle ----------------------------------------------------------------------

    def __enter__(self) -> LocalKafkaBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        """Fetch jars if needed, format fresh storage, launch the JVM and wait until ready.

        Ready means a metadata request through :class:`confluent_kafka.admin.AdminClient`
        lists broker id 1. ``timeout`` bounds that wait, counted from the JVM launch (the
        jar download and the storage format step have their own bounds).

        Raises
        ------
        JavaNotFoundError, MavenNotFoundError, JarDownloadError
            A tool is missing, or the jars cannot be fetched.
        PortInUseError
            A fixed port is taken, or picked ports kept being taken.
        BrokerStartError
            Storage format failed or the JVM exited during start-up (message has the log).
        BrokerNotReadyError
            Not ready within ``timeout``; the JVM has been killed.
        """
        if self.is_running:
            raise LocalKafkaError(f"the local Kafka broker is already running (pid {self._pid})")
        java = find_java()
        lib = ensure_jars(self._version, self._cache_dir)
        self._prepare_work_dir()
        fixed = {p for p in self._fixed_ports if p is not None}
        for attempt in range(1, self._port_attempts + 1):
            broker_port, controller_port = self._choose_ports()
            try:
                busy = next(
                    (p for p in (broker_port, controller_port) if not port_is_free(p)), None
                )
                if busy is not None:
                    raise PortInUseError(busy, attempts=attempt)
                self._launch(java, lib, broker_port, controller_port, timeout)
                return
            except PortInUseError as exc:
                if exc.port in fixed or attempt == self._port_attempts:
                    self._failed = True
                    self._cleanup()
                    if attempt > 1:
                        raise PortInUseError(
                            exc.port,
                            log_path=exc.log_path,
                            log_tail=exc.log_tail,
                            attempts=attempt,
                        ) from exc
                    raise
                logger.warning(
                    "kafka broker: port taken, picking new ports port=%d attempt=%d",
                    exc.port,
                    attempt,
                )
            except BaseException:
                self._failed = True
                self._cleanup()
                raise

    def _prepare_work_dir(self) -> None:
        if self._given_work_dir is not None:
            self._work_dir = self._given_work_dir.expanduser().resolve()
            self._work_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._work_dir = Path(tempfile.mkdtemp(prefix="balance-sink-kafka-"))
        for sub in ("logs", "tmp"):
            (self._work_dir / sub).mkdir(exist_ok=True)
        self._failed = False

    def _choose_ports(self) -> tuple[int, int]:
        broker_port, controller_port = self._fixed_ports
        picked = iter(p for p in pick_free_ports(3) if p not in (broker_port, controller_port))
        return (
            broker_port if broker_port is not None else next(picked),
            controller_port if controller_port is not None else next(picked),
        )

    def _launch(
        self, java: str, lib: Path, broker_port: int, controller_port: int, timeout: float
    ) -> None:
        work_dir = self._require_work_dir()
        data_dir = work_dir / "data"
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir()
        properties = work_dir / "server.properties"
        properties.write_text(
            render_server_properties(
                broker_port=broker_port,
                controller_port=controller_port,
                data_dir=data_dir,
                overrides=self._overrides,
            ),
            encoding="utf-8",
        )
        log4j = work_dir / "log4j2.properties"
        log4j.write_bytes(
            resources.files("standins.local_kafka").joinpath("log4j2.properties").read_bytes()
        )
        common = (
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={work_dir / 'logs'}",
            # zstd-jni and snappy-java unpack their native libraries here.
            f"-Djava.io.tmpdir={work_dir / 'tmp'}",
            "-cp",
            f"{lib}{os.sep}*",
        )
        log_path = self.log_path
        bootstrap = f"{HOST}:{broker_port}"
        with log_path.open("ab") as log:
            log.write(
                f"=== balance-sink: format + start, broker={bootstrap} "
                f"controller={HOST}:{controller_port} ===\n".encode()
            )
            log.flush()
            started = time.monotonic()
            self._format(java, common, properties, log)
            formatted = time.monotonic()
            prefix = _pdeathsig_prefix() if self._die_with_parent else ()
            self._process = subprocess.Popen(
                [*prefix, java, *JVM_OPTIONS, *common, "kafka.Kafka", str(properties)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        self._pid = self._process.pid
        self._bootstrap = bootstrap
        _LIVE.add(self)
        logger.info(
            "kafka broker: launched pid=%d bootstrap=%s log=%s", self._pid, bootstrap, log_path
        )
        try:
            self._wait_ready(broker_port, formatted + timeout, timeout)
        except BaseException:
            self._kill()
            raise
        ready = time.monotonic()
        self._startup_seconds = ready - started
        logger.info(
            "kafka broker: ready bootstrap=%s pid=%d format_s=%.2f ready_s=%.2f total_s=%.2f",
            bootstrap,
            self._pid,
            formatted - started,
            ready - formatted,
            ready - started,
        )

    def _format(self, java: str, common: tuple[str, ...], properties: Path, log: IO[bytes]) -> None:
        cmd = [
            java,
            *_TOOL_JVM_OPTIONS,
            *common,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "--cluster-id",
            new_cluster_id(),
            "--config",
            str(properties),
        ]
        try:
            result = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=_FORMAT_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise BrokerStartError(
                f"kafka storage format did not finish within {_FORMAT_TIMEOUT_S:g}s",
                log_path=self.log_path,
                log_tail=_read_log_tail(self.log_path),
            ) from None
        if result.returncode != 0:
            raise BrokerStartError(
                f"kafka storage format exited with status {result.returncode}",
                log_path=self.log_path,
                log_tail=_read_log_tail(self.log_path),
            )

    def _wait_ready(self, broker_port: int, deadline: float, timeout: float) -> None:
        process = self._process
        assert process is not None and self._bootstrap is not None
        admin: AdminClient | None = None
        while True:
            returncode = process.poll()
            if returncode is not None:
                self._raise_exited(returncode)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if _accepts_connections(broker_port):
                if admin is None:
                    admin = AdminClient({"bootstrap.servers": self._bootstrap}, logger=logger)
                try:
                    metadata = admin.list_topics(
                        timeout=max(_POLL_S, min(_METADATA_TIMEOUT_S, remaining))
                    )
                except KafkaException as exc:
                    logger.debug("kafka broker: metadata not yet available error=%s", exc)
                else:
                    if NODE_ID in metadata.brokers:
                        return
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=_POLL_S)
        self._kill()
        raise BrokerNotReadyError(
            timeout,
            self._bootstrap,
            log_path=self.log_path,
            log_tail=_read_log_tail(self.log_path),
        )

    def _raise_exited(self, returncode: int) -> None:
        _LIVE.discard(self)
        tail = _read_log_tail(self.log_path)
        bind = _BIND_FAILURE_RE.search(tail)
        if bind is not None:
            raise PortInUseError(int(bind.group(1)), log_path=self.log_path, log_tail=tail)
        raise BrokerStartError(
            f"Kafka broker JVM exited with status {returncode} during start-up",
            log_path=self.log_path,
            log_tail=tail,
        )

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the JVM: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Idempotent.

        A temporary work directory is deleted after a clean run and kept otherwise.
        """
        process = self._process
        if process is None:
            return
        if process.poll() is not None:
            self._failed = True
            logger.warning(
                "kafka broker: had already exited pid=%d status=%s log=%s",
                process.pid,
                process.returncode,
                self.log_path,
            )
        else:
            started = time.monotonic()
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "kafka broker: no exit after SIGTERM, killing pid=%d timeout_s=%g",
                    process.pid,
                    timeout,
                )
                self._kill()
            logger.info(
                "kafka broker: stopped pid=%d status=%s seconds=%.2f",
                process.pid,
                process.returncode,
                time.monotonic() - started,
            )
        self._process = None
        _LIVE.discard(self)
        self._cleanup()

    def _kill(self) -> None:
        """SIGKILL the JVM's process group and reap it."""
        process = self._process
        _LIVE.discard(self)
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process, signal.SIGKILL)
            try:
                process.wait(timeout=_KILL_WAIT_S)
            except subprocess.TimeoutExpired:  # pragma: no cover - kernel did not deliver
                logger.error("kafka broker: SIGKILL did not end pid=%d", process.pid)
                return
        self._process = None

    def _cleanup(self) -> None:
        work_dir = self._work_dir
        if work_dir is None or self._given_work_dir is not None:
            return
        if self._failed and self.log_path.exists():
            logger.info("kafka broker: keeping work dir for inspection dir=%s", work_dir)
            return
        shutil.rmtree(work_dir, ignore_errors=True)

    def __repr__(self) -> str:
        state = f"running pid={self._pid}" if self.is_running else "stopped"
        return f"<LocalKafkaBroker {self._version} {state} bootstrap={self._bootstrap}>"


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # The JVM leads its own process group (process_group=0), so its id is the group id.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


@atexit.register
def _stop_live_brokers() -> None:
    for broker in list(_LIVE):
        logger.warning("kafka broker: stopping at interpreter exit pid=%s", broker.pid)
        broker.stop(timeout=10.0)
