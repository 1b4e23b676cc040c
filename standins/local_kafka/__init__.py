"""A real single-node Apache Kafka broker for tests, CI and the local demo (no Docker).

``python -m standins.local_kafka`` runs one in the foreground.
"""

from __future__ import annotations

from standins.local_kafka._jars import DEFAULT_KAFKA_VERSION, cache_root, ensure_jars
from standins.local_kafka.broker import LocalKafkaBroker, find_java
from standins.local_kafka.errors import (
    BrokerConfigError,
    BrokerNotReadyError,
    BrokerStartError,
    JarDownloadError,
    JavaNotFoundError,
    LocalKafkaError,
    MavenNotFoundError,
    PortInUseError,
    ToolNotFoundError,
)

__all__ = (
    "DEFAULT_KAFKA_VERSION",
    "BrokerConfigError",
    "BrokerNotReadyError",
    "BrokerStartError",
    "JarDownloadError",
    "JavaNotFoundError",
    "LocalKafkaBroker",
    "LocalKafkaError",
    "MavenNotFoundError",
    "PortInUseError",
    "ToolNotFoundError",
    "cache_root",
    "ensure_jars",
    "find_java",
)
