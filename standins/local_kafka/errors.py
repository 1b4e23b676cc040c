"""Errors raised while fetching, starting or stopping the local Kafka broker.

All derive from :class:`LocalKafkaError`, itself a :class:`worker.errors.BalanceSinkError`.
Messages name the cause and, once a broker was launched, the broker log file.
"""

from __future__ import annotations

from pathlib import Path

from worker.errors import BalanceSinkError

__all__ = (
    "BrokerConfigError",
    "BrokerNotReadyError",
    "BrokerStartError",
    "JarDownloadError",
    "JavaNotFoundError",
    "LocalKafkaError",
    "MavenNotFoundError",
    "PortInUseError",
    "ToolNotFoundError",
)


class LocalKafkaError(BalanceSinkError):
    """Base class of every error of :mod:`standins.local_kafka`."""


class ToolNotFoundError(LocalKafkaError):
    """An external program the broker needs is not installed (or not on ``PATH``)."""

    def __init__(self, tool: str, hint: str) -> None:
        self.tool = tool
        super().__init__(f"{tool!r} not found on PATH: {hint}")


class JavaNotFoundError(ToolNotFoundError):
    """No ``java`` executable: the broker cannot run."""

    def __init__(self) -> None:
        super().__init__(
            "java",
            "the local Kafka broker needs a Java 17+ runtime; install one "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME",
        )


class MavenNotFoundError(ToolNotFoundError):
    """No ``mvn`` executable, and the broker jars are not cached yet."""

    def __init__(self, lib_dir: Path) -> None:
        self.lib_dir = lib_dir
        super().__init__(
            "mvn",
            f"the Kafka jars are not cached in {lib_dir} and Maven is needed to fetch them "
            "from Maven Central; install Maven 3.6+ (e.g. apt-get install maven)",
        )


class JarDownloadError(LocalKafkaError):
    """Maven failed to copy the broker's runtime jars into the cache."""

    def __init__(self, version: str, lib_dir: Path, reason: str) -> None:
        self.version = version
        self.lib_dir = lib_dir
        super().__init__(f"fetching Kafka {version} jars into {lib_dir} failed: {reason}")


class BrokerConfigError(LocalKafkaError):
    """A server.properties override or broker argument is invalid."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"{key}: {problem}")


class BrokerStartError(LocalKafkaError):
    """The broker could not be started; ``log_path`` points at its output, when it has one."""

    def __init__(self, message: str, *, log_path: Path | None = None, log_tail: str = "") -> None:
        self.log_path = log_path
        self.log_tail = log_tail
        text = message
        if log_path is not None:
            text += f" (broker log: {log_path})"
        if log_tail:
            text += f"\n--- last lines of the broker log ---\n{log_tail}"
        super().__init__(text)


class PortInUseError(BrokerStartError):
    """A port the broker must listen on is already taken by another process."""

    def __init__(
        self, port: int, *, log_path: Path | None = None, log_tail: str = "", attempts: int = 1
    ) -> None:
        self.port = port
        self.attempts = attempts
        tried = f" after {attempts} attempts with fresh ports" if attempts > 1 else ""
        super().__init__(
            f"port 127.0.0.1:{port} is already in use{tried}",
            log_path=log_path,
            log_tail=log_tail,
        )


class BrokerNotReadyError(BrokerStartError):
    """The broker did not answer a metadata request in time; it has been stopped."""

    def __init__(self, timeout: float, bootstrap: str, *, log_path: Path, log_tail: str) -> None:
        self.timeout = timeout
        self.bootstrap = bootstrap
        super().__init__(
            f"Kafka broker at {bootstrap} did not list broker id 1 within {timeout:g}s "
            "and was stopped",
            log_path=log_path,
            log_tail=log_tail,
        )
