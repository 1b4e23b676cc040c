"""Where this machine's CPU went between two moments, by role.

A benchmark takes a :func:`snapshot` when its timed interval starts and one when it
ends; :func:`spent` turns the pair into CPU seconds per role:

* ``measured``: the measuring process (the worker, or the ceiling's plain writer);
* ``children``: its descendants (the worker's stmt2 sender children);
* ``server``: ``taosd`` and ``taosadapter`` when they run on this machine (0 when the
  server is elsewhere);
* ``broker``: a local Kafka broker (a ``java`` process running ``kafka.Kafka``);
* ``other``: the rest of the machine's busy time (the benchmark's driver, the kernel);
* ``busy_cores``: the machine's busy time over the interval's length, and ``cores``;
* ``steal_cores``: the time the hypervisor gave to other guests while this one had work
  (a virtual machine's cores are not all its own: a run with steal is slower).

So a run limited by this machine shows ``busy_cores`` near ``cores``, and the CPU per
row of each role says where a faster worker would have to save. Reads ``/proc``
(Linux); elsewhere every figure is 0.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
ROLES = ("measured", "children", "server", "broker", "other")
"""The roles :func:`spent` reports, in report order."""
SERVER_COMMANDS = frozenset({"taosd", "taosadapter"})
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Snapshot:
    """CPU ticks so far: the machine's busy ticks and each role's processes' ticks."""

    at: float
    busy: int
    steal: int = 0
    roles: dict[str, int] = field(default_factory=dict)


def busy_ticks(stat_line: str) -> tuple[int, int]:
    """(busy, steal) ticks in ``/proc/stat``'s ``cpu`` line: busy is everything but
    idle, iowait and steal (another guest's time)."""
    name, *values = stat_line.split()
    if name != "cpu":
        raise ValueError(f"not the /proc/stat cpu line: {stat_line!r}")
    user, nice, system, _idle, _iowait, irq, softirq, *rest = map(int, values)
    return user + nice + system + irq + softirq, rest[0] if rest else 0


def process_ticks(stat_text: str) -> int:
    """utime + stime (every thread) from a ``/proc/<pid>/stat`` text; the command in
    parentheses may hold spaces and parentheses, so fields are counted after the last
    ``)``."""
    after = stat_text[stat_text.rindex(")") + 2 :].split()
    return int(after[11]) + int(after[12])  # fields 14 and 15 of proc(5)


def role_of(pid: int, root: int, tree: frozenset[int]) -> str | None:
    """The role of ``pid``: ``measured`` (``root``), ``children`` (the rest of
    ``tree``), ``server``, ``broker``, or None (counted in ``other``)."""
    if pid == root:
        return "measured"
    if pid in tree:
        return "children"
    try:
        command = (PROC / str(pid) / "comm").read_text().strip()
        if command in SERVER_COMMANDS:
            return "server"
        if command == "java" and b"kafka.Kafka" in (PROC / str(pid) / "cmdline").read_bytes():
            return "broker"
    except OSError:  # gone meanwhile
        return None
    return None


def tree_of(root: int) -> frozenset[int]:
    """``root`` and its descendants, now."""
    seen = {root}
    todo = [root]
    while todo:
        pid = todo.pop()
        for listing in (PROC / str(pid) / "task").glob("*/children"):
            try:
                children = [int(text) for text in listing.read_text().split()]
            except OSError:
                continue
            for child in children:
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
    return frozenset(seen)


def snapshot(root: int | None = None) -> Snapshot:
    """The ticks now; ``measured`` is ``root`` (this process by default) with its
    children."""
    at = time.perf_counter()
    try:
        busy, steal = busy_ticks((PROC / "stat").read_text().splitlines()[0])
    except OSError:
        return Snapshot(at, 0)
    root = os.getpid() if root is None else root
    tree = tree_of(root)
    roles: dict[str, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        role = role_of(pid, root, tree)
        if role is None:
            continue
        try:
            ticks = process_ticks((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
        roles[role] = roles.get(role, 0) + ticks
    return Snapshot(at, busy, steal, roles)


def spent(start: Snapshot, end: Snapshot) -> dict[str, float]:
    """CPU seconds per role between two snapshots, ``busy_cores`` and ``cores``.

    A process that started or ended in between counts only its ticks at the snapshot
    that saw it, so take both while the measured processes run.
    """
    seconds = {
        role: max(0, end.roles.get(role, 0) - start.roles.get(role, 0)) / _TICKS
        for role in ROLES[:-1]
    }
    busy = max(0, end.busy - start.busy) / _TICKS
    seconds["other"] = max(0.0, busy - sum(seconds.values()))
    elapsed = end.at - start.at
    seconds["busy_cores"] = busy / elapsed if elapsed > 0 else 0.0
    steal = max(0, end.steal - start.steal) / _TICKS
    seconds["steal_cores"] = steal / elapsed if elapsed > 0 else 0.0
    seconds["cores"] = float(os.cpu_count() or 1)
    return {key: round(value, 3) for key, value in seconds.items()}
