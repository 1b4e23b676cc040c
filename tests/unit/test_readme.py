"""The README says what the commands and the configuration really do."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import msgspec
import pytest

from worker.commands.cli import build_parser
from worker.ops.config import KafkaSettings, LogSettings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = (ROOT / "examples" / "config.toml").read_text(encoding="utf-8")


def synopsis(command: str) -> str:
    """The command table's first cell for ``balance-sink <command>``."""
    found = re.search(rf"^\| `balance-sink {command} ([^`]*)` \|", README, re.MULTILINE)
    assert found, f"no row for {command} in the README's command table"
    return found.group(1)


def options(command: str) -> set[str]:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    sub = commands.choices[command]
    return {s for a in sub._actions for s in a.option_strings if s.startswith("--")} - {"--help"}


@pytest.mark.parametrize("command", ["replay", "demo"])
def test_the_synopsis_names_every_option(command: str) -> None:
    text = synopsis(command)
    missing = sorted(o for o in options(command) if not re.search(rf"{o}(?![\w-])", text))
    assert not missing, f"README's {command} synopsis lacks {missing}"


def test_the_tools_of_make_demo_and_their_caches_are_named() -> None:
    intro = README.split("## Commands", 1)[0]
    assert "Both need Python 3.11, Java 17 and Maven" in intro  # make demo and make test
    assert "~/.cache/balance-sink/" in intro and "~/.m2/" in intro


@pytest.mark.parametrize(
    ("section", "kind", "field"),
    [
        ("kafka", KafkaSettings, "startup_wait_s"),
        ("kafka", KafkaSettings, "not_alive_after_down_s"),
        ("log", LogSettings, "kafka_repeat_interval_s"),
    ],
)
def test_the_operations_settings_are_documented_with_their_defaults(
    section: str, kind: type[msgspec.Struct], field: str
) -> None:
    default = next(f.default for f in msgspec.structs.fields(kind) if f.name == field)
    assert f"`{section}.{field}`" in README
    assert re.search(rf"`{section}.{field}`[^.]*default {default:g} s", README), field
    assert re.search(rf"^{field} = {default:g}\b", EXAMPLE, re.MULTILINE), field


def test_the_failure_list_covers_kafka_at_start_up_and_while_running() -> None:
    failures = README.split("## Running the worker", 1)[1].split("**Observability**", 1)[0]
    assert "**Kafka unreachable at start-up**" in failures
    assert "**Kafka lost while running**" in failures
    assert "tdengine.password_file" in failures and "BALANCE_SINK_TDENGINE__PASSWORD" in failures
