"""The broker's runtime jars: fetched once with Maven into a per-user cache.

Layout of the cache (outside any work tree)::

    <cache root>/kafka-<version>/
        pom.xml        copy of the packaged pom.xml that Maven resolves
        lib/           the runtime jars (the broker's class path)
        .complete      marker: fingerprint of pom.xml + version, written last
        .lock          fcntl lock file serialising concurrent downloads
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Final

from standins.local_kafka.errors import (
    BrokerConfigError,
    JarDownloadError,
    MavenNotFoundError,
)

__all__ = (
    "DEFAULT_KAFKA_VERSION",
    "DEPENDENCY_PLUGIN",
    "cache_root",
    "ensure_jars",
)

logger = logging.getLogger(__name__)

DEFAULT_KAFKA_VERSION: Final = "4.3.1"
DEPENDENCY_PLUGIN: Final = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_VERSION_RE: Final = re.compile(r"\d+\.\d+\.\d+(?:[.-][A-Za-z0-9.-]+)?")
_MARKER: Final = ".complete"
# Poll interval while another process holds the download lock.
_LOCK_POLL_S: Final = 0.2
_OUTPUT_TAIL_CHARS: Final = 3000


def cache_root() -> Path:
    """Return the per-user cache directory of balance-sink.

    ``$BALANCE_SINK_CACHE`` if set, else ``$XDG_CACHE_HOME/balance-sink``, else
    ``~/.cache/balance-sink``.
    """
    explicit = os.environ.get("BALANCE_SINK_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "balance-sink"


def _packaged_pom() -> bytes:
    return resources.files("standins.local_kafka").joinpath("pom.xml").read_bytes()


def _fingerprint(pom: bytes, version: str) -> str:
    return hashlib.sha256(pom + b"\0" + version.encode()).hexdigest()


def ensure_jars(
    version: str = DEFAULT_KAFKA_VERSION,
    cache_dir: Path | None = None,
    *,
    timeout: float = 900.0,
) -> Path:
    """Return the directory holding Kafka ``version``'s runtime jars, fetching them if needed.

    The first call runs Maven's ``copy-dependencies`` (runtime scope) on the packaged
    ``pom.xml``; later calls find the ``.complete`` marker and touch nothing. A download
    that was interrupted leaves no marker and is redone. An ``fcntl`` lock makes
    concurrent callers (other processes, other threads) wait for one download.

    Parameters
    ----------
    version : str
        Kafka version, e.g. ``"4.3.1"``.
    cache_dir : Path, optional
        Cache root; defaults to :func:`cache_root`. Jars go to ``kafka-<version>/lib``.
    timeout : float
        Seconds for Maven to finish, and the longest wait for another process's lock.

    Raises
    ------
    MavenNotFoundError
        The jars are not cached and ``mvn`` is not on ``PATH``.
    JarDownloadError
        Maven failed or timed out, or its result lacks the Kafka jar.
    """
    if not _VERSION_RE.fullmatch(version):
        raise BrokerConfigError("version", f"not a Kafka version number: {version!r}")
    root = (cache_dir if cache_dir is not None else cache_root()).expanduser().resolve()
    home = root / f"kafka-{version}"
    lib = home / "lib"
    pom = _packaged_pom()
    fingerprint = _fingerprint(pom, version)
    if _is_complete(home, fingerprint):
        return lib
    home.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(home / ".lock", timeout=timeout, version=version, lib=lib):
        if _is_complete(home, fingerprint):  # another process finished while we waited
            return lib
        _download(version, home, pom, fingerprint, timeout=timeout)
    return lib


def _is_complete(home: Path, fingerprint: str) -> bool:
    try:
        return (home / _MARKER).read_text(encoding="ascii").strip() == fingerprint
    except (FileNotFoundError, UnicodeDecodeError):
        return False


@contextmanager
def _exclusive_lock(path: Path, *, timeout: float, version: str, lib: Path) -> Iterator[None]:
    deadline = time.monotonic() + timeout
    with path.open("a") as handle:
        waited = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    logger.info("kafka jars: waiting for another download lock=%s", path)
                    waited = True
                if time.monotonic() >= deadline:
                    raise JarDownloadError(
                        version, lib, f"gave up after {timeout:g}s waiting for lock {path}"
                    ) from None
                time.sleep(_LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _download(version: str, home: Path, pom: bytes, fingerprint: str, *, timeout: float) -> None:
    lib = home / "lib"
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MavenNotFoundError(lib)
    (home / _MARKER).unlink(missing_ok=True)
    partial = home / "lib.partial"
    shutil.rmtree(partial, ignore_errors=True)
    (home / "pom.xml").write_bytes(pom)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(home / "pom.xml"),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
        f"-Dkafka.version={version}",
    ]
    logger.info("kafka jars: downloading version=%s lib=%s", version, lib)
    started = time.monotonic()
    try:
        result = subprocess.run(
            cmd,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(partial, ignore_errors=True)
        raise JarDownloadError(version, lib, f"mvn did not finish within {timeout:g}s") from None
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        tail = result.stdout[-_OUTPUT_TAIL_CHARS:].strip()
        raise JarDownloadError(version, lib, f"mvn exited with status {result.returncode}:\n{tail}")
    main_jar = partial / f"kafka_2.13-{version}.jar"
    if not main_jar.is_file():
        shutil.rmtree(partial, ignore_errors=True)
        raise JarDownloadError(version, lib, f"mvn succeeded but {main_jar.name} is missing")
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    marker_tmp = home / f"{_MARKER}.tmp"
    marker_tmp.write_text(fingerprint + "\n", encoding="ascii")
    marker_tmp.replace(home / _MARKER)
    jars = sum(1 for _ in lib.glob("*.jar"))
    logger.info(
        "kafka jars: ready version=%s jars=%d seconds=%.1f lib=%s",
        version,
        jars,
        time.monotonic() - started,
        lib,
    )
