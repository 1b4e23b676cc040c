"""pyproject.toml: an install without setuptools deprecation banners, exact lint tools."""

from __future__ import annotations

import shutil
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement

from tests.deploy.files import REPO, run

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_is_an_spdx_expression_for_a_setuptools_that_reads_it() -> None:
    assert PROJECT["project"]["license"] == "Apache-2.0"
    (backend,) = [Requirement(r) for r in PROJECT["build-system"]["requires"]]
    assert backend.name == "setuptools"
    assert not backend.specifier.contains("76.9"), "SPDX strings need setuptools>=77"
    assert backend.specifier.contains("77.0")


def test_installing_prints_no_deprecation_banner(tmp_path: Path) -> None:
    """What `make` shows at install: pip's quiet metadata build, here of a copy."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "worker", tmp_path / "worker")
    result = run(
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--dry-run", "-e",
        str(tmp_path), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "deprecated" not in output.lower(), output


def test_lint_and_type_checkers_are_pinned_to_the_installed_versions() -> None:
    pins = {
        Requirement(r).name: Requirement(r)
        for r in PROJECT["project"]["optional-dependencies"]["test"]
    }
    for tool in ("ruff", "mypy"):
        (spec,) = pins[tool].specifier
        assert spec.operator == "==", f"{tool}: pin an exact version, not {spec}"
        assert spec.version == version(tool), (
            f"{tool}: pinned {spec.version}, installed {version(tool)}"
        )
