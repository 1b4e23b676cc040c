"""Pure helpers of the local broker: server.properties, cluster id, loopback ports.

Nothing here starts a process; :mod:`standins.local_kafka.broker` does.
"""

from __future__ import annotations

import base64
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

from standins.local_kafka.errors import BrokerConfigError

__all__ = (
    "BROKER_DEFAULTS",
    "HOST",
    "NODE_ID",
    "RESERVED_KEYS",
    "new_cluster_id",
    "pick_free_ports",
    "port_is_free",
    "render_server_properties",
)

HOST: Final = "127.0.0.1"
NODE_ID: Final = 1

BROKER_DEFAULTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        # One broker: every internal topic gets replication factor 1 and min ISR 1, and few
        # partitions (the first consumer group creates __consumer_offsets; 50 are slow).
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        # Rebalance tests must be fast: no initial delay, short allowed session timeouts.
        "group.initial.rebalance.delay.ms": "0",
        "group.streams.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
        # KIP-848 "consumer" protocol keeps its timeouts on the broker (min <= value <= max,
        # heartbeat < session, or the broker refuses to start).
        "group.consumer.min.session.timeout.ms": "1000",
        "group.consumer.session.timeout.ms": "10000",
        "group.consumer.min.heartbeat.interval.ms": "100",
        "group.consumer.heartbeat.interval.ms": "500",
        "group.consumer.assignment.interval.ms": "0",
        # A 2-core box: fewer threads than the defaults (3 network, 8 io, 10 background, 4 group).
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "group.coordinator.threads": "1",
        "num.recovery.threads.per.data.dir": "1",
    }
)
"""Tunables written to server.properties; each may be overridden."""

RESERVED_KEYS: Final = frozenset(
    {
        "process.roles",
        "node.id",
        "controller.quorum.bootstrap.servers",
        "controller.quorum.voters",
        "listeners",
        "advertised.listeners",
        "inter.broker.listener.name",
        "controller.listener.names",
        "listener.security.protocol.map",
        "log.dirs",
        "log.dir",
    }
)
"""Keys derived from the ports and data directory; overriding them would break start-up."""


def render_server_properties(
    *,
    broker_port: int,
    controller_port: int,
    data_dir: Path,
    overrides: Mapping[str, str] | None = None,
) -> str:
    """Return the text of a combined broker+controller (KRaft) ``server.properties``.

    Parameters
    ----------
    broker_port, controller_port : int
        Loopback ports of the PLAINTEXT (client) and CONTROLLER listeners.
    data_dir : Path
        The ``log.dirs`` directory; it must be the one given to the storage format step.
    overrides : Mapping[str, str], optional
        Extra or replacement settings; :data:`RESERVED_KEYS` are refused.

    Raises
    ------
    BrokerConfigError
        A port is out of range, both ports are equal, an override is reserved, or a key or
        value is not a single line.
    """
    for name, port in (("broker_port", broker_port), ("controller_port", controller_port)):
        if not 0 < port < 65536:
            raise BrokerConfigError(name, f"port must be in 1..65535, got {port}")
    if broker_port == controller_port:
        raise BrokerConfigError("controller_port", f"must differ from broker_port {broker_port}")
    settings: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{broker_port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": (
            f"PLAINTEXT://{HOST}:{broker_port},CONTROLLER://{HOST}:{controller_port}"
        ),
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        **BROKER_DEFAULTS,
    }
    for key, value in (overrides or {}).items():
        if key in RESERVED_KEYS:
            raise BrokerConfigError(key, "is set by LocalKafkaBroker and cannot be overridden")
        settings[key] = value
    lines = ["# Written by standins.local_kafka: single-node KRaft broker for tests and demos."]
    for key, value in settings.items():
        _check_single_line(key, key)
        _check_single_line(key, value)
        if not key or any(c in key for c in " =:#!\\"):
            raise BrokerConfigError(key, "is not a plain property key")
        # java.util.Properties treats backslash as an escape character.
        lines.append(f"{key}={value.replace(chr(92), chr(92) * 2)}")
    return "\n".join(lines) + "\n"


def _check_single_line(key: str, text: str) -> None:
    if "\n" in text or "\r" in text:
        raise BrokerConfigError(key, f"must be a single line, got {text!r}")


def new_cluster_id() -> str:
    """Return a random KRaft cluster id: 22 base64url characters of a UUID4, no padding.

    Kafka's own ``Uuid.randomUuid`` never yields an id starting with ``-`` (it would read
    as a command-line flag), so such ids are drawn again.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def port_is_free(port: int) -> bool:
    """Whether a listener could bind ``127.0.0.1:port`` now (SO_REUSEADDR, as the JVM does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def pick_free_ports(count: int = 2) -> tuple[int, ...]:
    """Return ``count`` distinct loopback ports the kernel reports free right now.

    All sockets are held open until every port is chosen, so the ports differ. Another
    process may still take one before the broker binds it; the caller retries then.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((HOST, 0))
        return tuple(int(s.getsockname()[1]) for s in sockets)
    finally:
        for sock in sockets:
            sock.close()
