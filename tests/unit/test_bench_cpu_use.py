"""bench.cpu_use: the /proc parsing and the split of busy time by role."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench import cpu_use
from bench.cpu_use import Snapshot, busy_ticks, process_ticks, spent

STAT_LINE = "cpu  2100561 29193 384677 4341324 17112 0 33790 63054 0 0"


def test_busy_ticks_leave_out_idle_iowait_and_steal() -> None:
    assert busy_ticks(STAT_LINE) == (2100561 + 29193 + 384677 + 0 + 33790, 63054)


def test_busy_ticks_refuse_a_per_cpu_line() -> None:
    with pytest.raises(ValueError, match="cpu line"):
        busy_ticks("cpu0 1 2 3 4 5 6 7 8 9 10")


def test_process_ticks_count_after_a_command_holding_parentheses_and_spaces() -> None:
    fields = ["S", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "250", "75", "9", "9"]
    text = "4242 (odd) name (x)) " + " ".join(fields)
    assert process_ticks(text) == 250 + 75


def test_spent_splits_busy_time_and_puts_the_rest_in_other() -> None:
    start = Snapshot(
        at=10.0, busy=1000, steal=7, roles={"measured": 100, "server": 50, "children": 5}
    )
    end = Snapshot(
        at=12.0,
        busy=1400,
        steal=107,
        roles={"measured": 250, "server": 150, "broker": 20, "children": 35},
    )
    figures = spent(start, end)
    ticks = cpu_use._TICKS
    assert figures["measured"] == round(150 / ticks, 3)
    assert figures["server"] == round(100 / ticks, 3)
    assert figures["children"] == round(30 / ticks, 3)
    assert figures["broker"] == round(20 / ticks, 3)
    assert figures["other"] == round((400 - 300) / ticks, 3)
    assert figures["busy_cores"] == round(400 / ticks / 2.0, 3)
    assert figures["steal_cores"] == round(100 / ticks / 2.0, 3)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_snapshot_sees_a_running_child_spend_cpu() -> None:
    spin = "while True: pass"
    child = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.2)
        assert child.pid in cpu_use.tree_of(os.getpid())
        start = cpu_use.snapshot()
        time.sleep(0.5)
        end = cpu_use.snapshot()
    finally:
        child.kill()
        child.wait(timeout=30)
    figures = spent(start, end)
    assert figures["children"] >= 0.2
    assert figures["measured"] < 0.2
