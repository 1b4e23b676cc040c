"""Replay of REST traffic recorded from a real TDengine 3.3.6.6 (see ``recorded/README.md``).

The corpus is read from ``<repo>/../shared/tdengine-recorded`` when that directory exists
(the team's reference copy), else from the copy vendored next to this module. Each
sequence is replayed in order with fresh database names in place of ``{db}``/``{db2}``,
and every answer is compared with the recording: HTTP status, content type, and the
JSON body with ``timing`` dropped and the recording's normalisations applied.

``python -m tests.tdengine_conformance.recorded [URL]`` prints the score against a
server (default: a fresh in-repo double).
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import sys
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import requests

__all__ = (
    "RECORDED_VERSION",
    "SHARED_DIR",
    "VENDORED_DIR",
    "Sequence",
    "Step",
    "StepResult",
    "corpus_dir",
    "load_sequences",
    "replay_sequence",
    "server_version_of",
)

_REPO: Final = Path(__file__).resolve().parents[2]
SHARED_DIR: Final = _REPO.parent / "shared" / "tdengine-recorded"
"""The team's reference recordings, beside the repository (absent in a bare clone)."""
VENDORED_DIR: Final = Path(__file__).resolve().parent / "recorded"
"""The copy kept in the repository."""
CORPUS_FILE: Final = "sequences.jsonl.gz"
RECORDED_VERSION: Final = "3.3.6.6"
"""``SELECT SERVER_VERSION()`` of the server the corpus was recorded from."""
_SERVER_VERSION_SQL: Final = re.compile(r"^\s*select\s+server_version\(\)\s*;?\s*$", re.I)

_PLACEHOLDER: Final = re.compile(r"\{db\d*\}")
_DB_LISTING: Final = re.compile(r"^\s*show\s+databases\b|information_schema\.ins_databases", re.I)
_SHOW_LIST: Final = re.compile(r"^\s*show\s+(?:\S+\.)?(?:tables|stables|databases)\s*;?\s*$", re.I)
_SYSTEM_DBS: Final = ("information_schema", "performance_schema")


@dataclass(frozen=True, slots=True)
class Step:
    """One recorded request and the real server's answer."""

    method: str
    path: str
    auth: str | None
    sql: str
    status: int
    content_type: str
    answer: Any
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Sequence:
    """Steps sent in order against one database (``db`` None: no database of its own)."""

    index: int
    name: str
    db: str | None
    steps: tuple[Step, ...]

    @property
    def id(self) -> str:
        """A unique test id: names repeat in the corpus, positions do not."""
        return f"{self.index:02d}-{self.name}"


@dataclass(frozen=True, slots=True)
class StepResult:
    """The outcome of one replayed step: ``problems`` is empty when it matched."""

    index: int
    sql: str
    problems: tuple[str, ...]


def corpus_dir() -> Path:
    """``../shared/tdengine-recorded`` beside the repository if present, else the vendored copy."""
    return SHARED_DIR if (SHARED_DIR / CORPUS_FILE).is_file() else VENDORED_DIR


@cache
def load_sequences(directory: Path | None = None) -> tuple[Sequence, ...]:
    """Every sequence of the corpus in ``directory`` (default: :func:`corpus_dir`)."""
    path = (directory or corpus_dir()) / CORPUS_FILE
    out: list[Sequence] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            raw = json.loads(line)
            steps = tuple(
                Step(
                    s["method"],
                    s["path"],
                    s["auth"],
                    s["sql"],
                    s["status"],
                    s["content_type"],
                    s["answer"],
                    tuple(s.get("notes") or ()),
                )
                for s in raw["steps"]
            )
            out.append(Sequence(i, raw["name"], raw["db"], steps))
    return tuple(out)


def _substitute(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: names.get(m.group(), m.group()), value)
    if isinstance(value, list):
        return [_substitute(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, names) for k, v in value.items()}
    return value


def _canonical(value: Any) -> str:
    """JSON text that tells ``true`` from ``1`` and ``1`` from ``1.0``."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _normalise(body: Any, sql: str, own: set[str]) -> Any:
    """The recording's normalisations: timing dropped, listings filtered, unordered rows sorted."""
    if not isinstance(body, dict):
        return body
    body = {k: v for k, v in body.items() if k != "timing"}
    data = body.get("data")
    meta = body.get("column_meta")
    if not isinstance(data, list) or not isinstance(meta, list):
        return body
    names = [c[0] for c in meta]
    if _DB_LISTING.search(sql) and "name" in names:
        keep = set(_SYSTEM_DBS) | own
        at = names.index("name")
        data = [row for row in data if row[at] in keep]
        if "ins_databases" in sql.lower() and "create_time" in names:
            ct = names.index("create_time")
            data = [[None if i == ct else v for i, v in enumerate(row)] for row in data]
        body["rows"] = len(data)
    lowered = sql.lower()
    unordered = (lowered.lstrip().startswith("select") and "order by" not in lowered) or bool(
        _SHOW_LIST.match(sql)
    )
    if unordered:
        data = sorted(data, key=_canonical)
    body["data"] = data
    return body


def _headers(auth: str | None, user: str, password: str) -> dict[str, str]:
    if auth is None:
        return {}
    if auth.startswith("RAW "):
        return {"Authorization": auth[4:]}
    if auth == "Basic root:taosdata":
        creds = f"{user}:{password}"
    elif auth == "Basic root:WRONG":
        creds = f"{user}:{'WRONG' if password != 'WRONG' else 'wrong'}"
    else:
        raise ValueError(f"unknown auth form in the corpus: {auth!r}")
    return {"Authorization": "Basic " + base64.b64encode(creds.encode()).decode()}


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else _canonical(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _compare_bodies(want: Any, got: Any) -> list[str]:
    if _canonical(want) == _canonical(got):
        return []
    if not (isinstance(want, dict) and isinstance(got, dict)):
        return [f"body: want {_short(want)}, got {_short(got)}"]
    problems: list[str] = []
    for key in sorted(set(want) | set(got)):
        w, g = want.get(key, "<absent>"), got.get(key, "<absent>")
        if _canonical(w) == _canonical(g):
            continue
        if key == "data" and isinstance(w, list) and isinstance(g, list):
            for i, (wr, gr) in enumerate(zip(w, g, strict=False)):
                if _canonical(wr) != _canonical(gr):
                    problems.append(f"data[{i}]: want {_short(wr)}, got {_short(gr)}")
                    break
            if len(w) != len(g):
                problems.append(f"data: want {len(w)} rows, got {len(g)}")
        else:
            problems.append(f"{key}: want {_short(w)}, got {_short(g)}")
    return problems


def _as_version(answer: Any, version: str) -> Any:
    """A recorded ``SELECT SERVER_VERSION()`` answer as a server of ``version`` gives it."""
    if not isinstance(answer, dict) or answer.get("code") != 0:
        return answer
    [[name, kind, _]] = answer["column_meta"]
    return {**answer, "column_meta": [[name, kind, len(version)]], "data": [[version]]}


def server_version_of(url: str, user: str, password: str) -> str:
    """What the server at ``url`` answers to ``SELECT SERVER_VERSION()``."""
    r = requests.post(url + "/rest/sql", data=b"SELECT SERVER_VERSION()",
                      auth=(user, password), timeout=30)  # fmt: skip
    r.raise_for_status()
    version: str = r.json()["data"][0][0]
    return version


def replay_sequence(
    seq: Sequence,
    url: str,
    user: str,
    password: str,
    session: requests.Session | None = None,
    *,
    server_version: str = RECORDED_VERSION,
) -> list[StepResult]:
    """Replay ``seq`` against ``url`` with fresh database names; one result per step.

    ``server_version`` is what the target says it is: a real server of another release
    (e.g. 3.3.6.13) is expected to name itself, so only the answer of
    ``SELECT SERVER_VERSION()`` is rewritten for it; every other byte must match.
    The databases it named are dropped afterwards, whatever happened.
    """
    http = session or requests.Session()
    http.trust_env = False  # no ~/.netrc credentials: the corpus decides every header
    names = {"{db}": f"t_{uuid.uuid4().hex[:16]}", "{db2}": f"t_{uuid.uuid4().hex[:16]}"}
    own = set(names.values())
    results: list[StepResult] = []
    try:
        for i, step in enumerate(seq.steps):
            sql = _substitute(step.sql, names)
            path = _substitute(step.path, names)
            r = http.request(
                step.method,
                url + path,
                data=sql.encode(),
                headers=_headers(step.auth, user, password),
                timeout=300,
            )
            problems: list[str] = []
            if r.status_code != step.status:
                problems.append(f"status: want {step.status}, got {r.status_code}")
            content_type = r.headers.get("Content-Type", "")
            if content_type != step.content_type:
                problems.append(f"content type: want {step.content_type!r}, got {content_type!r}")
            want = _normalise(_substitute(step.answer, names), sql, own)
            if server_version != RECORDED_VERSION and _SERVER_VERSION_SQL.match(sql):
                want = _as_version(want, server_version)
            got: Any
            if isinstance(step.answer, str):
                got = r.text
            else:
                try:
                    got = _normalise(r.json(), sql, own)
                except ValueError:
                    got = r.text
            problems += _compare_bodies(want, got)
            results.append(StepResult(i, sql, tuple(problems)))
    finally:
        for name in own:
            http.post(
                url + "/rest/sql",
                data=f"DROP DATABASE IF EXISTS {name}".encode(),
                headers=_headers("Basic root:taosdata", user, password),
                timeout=60,
            )
    return results


def main(argv: list[str] | None = None) -> int:
    """Print every mismatching step and the score; exit 0 only when all steps match."""
    args = sys.argv[1:] if argv is None else argv
    from tests.fixtures.tdengine import endpoint_from_env

    double = None
    version = RECORDED_VERSION
    if args:
        endpoint = endpoint_from_env(args[0])
        url, user, password = endpoint.url, endpoint.user, endpoint.password
        version = server_version_of(url, user, password)
    else:
        from standins.tdengine_double import TDengineDouble

        double = TDengineDouble().start()
        url, user, password = double.url, double.user, double.password
    try:
        sequences = load_sequences()
        steps_ok = seqs_ok = total = 0
        for seq in sequences:
            results = replay_sequence(seq, url, user, password, server_version=version)
            bad = [r for r in results if r.problems]
            total += len(results)
            steps_ok += len(results) - len(bad)
            seqs_ok += not bad
            for r in bad:
                print(f"{seq.id} step {r.index}: {_short(r.sql, 120)}")
                for p in r.problems:
                    print(f"    {p}")
        print(f"steps {steps_ok}/{total}, sequences {seqs_ok}/{len(sequences)}")
        return 0 if steps_ok == total else 1
    finally:
        if double is not None:
            double.stop()


if __name__ == "__main__":
    raise SystemExit(main())
