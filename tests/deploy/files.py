"""Reading the deploy artifacts strictly: YAML with duplicate keys is an error, not a merge."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any, Final

import yaml

__all__ = ("DEPLOY", "REPO", "load_toml", "load_yaml", "load_yaml_all", "run")

REPO: Final = Path(__file__).resolve().parents[2]
DEPLOY: Final = REPO / "deploy"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping (PyYAML keeps the last one
    silently; Kubernetes and compose would see a different document than the reviewer)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # keys merged in with `<<` may be overridden: only written keys count
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(path: Path) -> Any:
    """The single YAML document in ``path``."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)


def load_yaml_all(path: Path) -> list[Any]:
    """The non-empty YAML documents in ``path``."""
    text = path.read_text(encoding="utf-8")
    return [doc for doc in yaml.load_all(text, Loader=_StrictLoader) if doc is not None]


def load_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        return tomllib.load(file)


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion, capturing text output; the caller judges the exit code."""
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env
    )
