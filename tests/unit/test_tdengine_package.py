"""``worker.tdengine`` imports its public names on first use: each must resolve, and
importing the package alone must not import the heavy modules a stmt2 child avoids."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import worker.tdengine as package


@pytest.mark.parametrize("name", package.__all__)
def test_every_public_name_resolves_to_its_module(name: str) -> None:
    value = getattr(package, name)
    module = importlib.import_module(package._MODULES[name])
    assert value is getattr(module, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        package.Nope  # noqa: B018


def test_the_stmt2_child_module_does_not_import_the_transport_or_kafka() -> None:
    code = (
        "import sys, worker.tdengine.stmt2_process\n"
        "print(sorted({'requests', 'confluent_kafka', 'worker.tdengine.transport'}"
        " & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
