"""Every recorded real-server exchange, replayed against the double (or ``TDENGINE_URL``).

One test per sequence of ``recorded/sequences.jsonl.gz``: each step must match the real
TDengine 3.3.6.6 answer in status, content type and JSON body (see ``recorded.py`` for
the normalisations). Against the double a fresh stand-in with TDengine's default
credentials serves this module; with ``TDENGINE_URL`` the same steps run against it.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator

import pytest

from standins.tdengine_double import TDengineDouble
from tests.fixtures.tdengine import endpoint_from_env
from tests.tdengine_conformance.recorded import (
    CORPUS_FILE,
    RECORDED_VERSION,
    SHARED_DIR,
    VENDORED_DIR,
    Sequence,
    corpus_dir,
    load_sequences,
    replay_sequence,
    server_version_of,
)

SEQUENCES = load_sequences()


@pytest.fixture(scope="module")
def replay_target() -> Iterator[tuple[str, str, str, str]]:
    """(url, user, password, version): the server at ``TDENGINE_URL`` (whatever 3.3.6.x it
    says it is), else a fresh root/taosdata double, which must say it is 3.3.6.6."""
    configured = os.environ.get("TDENGINE_URL")
    if configured:
        real = endpoint_from_env(configured)
        yield (
            real.url,
            real.user,
            real.password,
            server_version_of(real.url, real.user, real.password),
        )
        return
    with TDengineDouble(user="root", password="taosdata") as double:
        yield double.url, "root", "taosdata", RECORDED_VERSION


@pytest.mark.tdengine
@pytest.mark.parametrize("seq", SEQUENCES, ids=[s.id for s in SEQUENCES])
def test_recorded_sequence(seq: Sequence, replay_target: tuple[str, str, str, str]) -> None:
    url, user, password, version = replay_target
    results = replay_sequence(seq, url, user, password, server_version=version)
    failures = [
        f"step {r.index} ({r.sql[:160]}):\n    " + "\n    ".join(r.problems)
        for r in results
        if r.problems
    ]
    if failures:
        pytest.fail(
            f"{seq.id}: {len(failures)} of {len(results)} steps differ from the recording\n"
            + "\n".join(failures),
            pytrace=False,
        )


def test_corpus_is_whole() -> None:
    """67 sequences, 408 steps, every auth form one the replay knows: nothing dropped."""
    assert len(SEQUENCES) == 67
    assert sum(len(s.steps) for s in SEQUENCES) == 408
    for seq in SEQUENCES:
        for step in seq.steps:
            assert step.auth in ("Basic root:taosdata", "Basic root:WRONG", None) or (
                step.auth.startswith("RAW ")
            ), (seq.id, step.auth)
    path = corpus_dir() / CORPUS_FILE
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        assert sum(1 for line in fh if json.loads(line)) == 67


@pytest.mark.parametrize("name", [CORPUS_FILE, "README.md"])
def test_vendored_copy_is_the_shared_one(name: str) -> None:
    """The vendored copy is byte-identical to ``../shared/tdengine-recorded`` when both exist.

    Without the shared directory (a bare clone) the vendored copy is what the replay reads.
    """
    vendored = VENDORED_DIR / name
    assert vendored.is_file(), f"missing vendored recording {vendored}"
    shared = SHARED_DIR / name
    if not SHARED_DIR.is_dir():
        assert corpus_dir() == VENDORED_DIR
        return
    assert shared.is_file(), f"{SHARED_DIR} exists but has no {name}"
    assert shared.read_bytes() == vendored.read_bytes(), (
        f"{vendored} differs from {shared}: copy the shared recording over the vendored one "
        "(recordings are never edited by hand)"
    )


def test_another_release_only_changes_the_version_answer() -> None:
    """Expecting 3.3.6.13 from the 3.3.6.6 double flags exactly its SERVER_VERSION steps."""
    [seq] = [s for s in SEQUENCES if any("SERVER_VERSION" in st.sql.upper() for st in s.steps)][:1]
    with TDengineDouble(user="root", password="taosdata") as double:
        results = replay_sequence(seq, double.url, "root", "taosdata", server_version="3.3.6.13")
    flagged = {r.index for r in results if r.problems}
    version_steps = {
        i for i, st in enumerate(seq.steps)
        if st.sql.strip().upper() == "SELECT SERVER_VERSION()" and st.status == 200
        and isinstance(st.answer, dict) and st.answer.get("code") == 0
    }  # fmt: skip
    assert version_steps and flagged == version_steps
