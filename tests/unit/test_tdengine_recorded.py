"""The worker's TDengine parsing fed with answers a real TDengine 3.3.6.6 gave.

The answers come from the recorded corpus (``../shared/tdengine-recorded``, or the copy
vendored in ``tests/tdengine_conformance/recorded``): the real server's HTTP status and
JSON body for the worker's own statements. They reach the production
:class:`RestTransport` through a fake ``requests`` session, so the transport's decoding,
the error classification, the version, precision and DESCRIBE checks all run on them.
"""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest

from worker.tdengine.errors import (
    TABLE_MISSING_CODES,
    FatalStoreError,
    PermanentStoreError,
    SchemaMismatchError,
    make_store_error,
)
from worker.tdengine.options import TDengineOptions
from worker.tdengine.schema import (
    check_describe,
    check_precision,
    composite_key_keyword,
    create_stable_sql,
    database_precision_sql,
    describe_differences,
    parse_server_version,
)
from worker.tdengine.transport import RestTransport
from worker.tdengine.writer import TDengineWriter

_REPO: Final = Path(__file__).resolve().parents[2]
CORPUS_PLACES: Final = (
    _REPO.parent / "shared" / "tdengine-recorded" / "sequences.jsonl.gz",
    _REPO / "tests" / "tdengine_conformance" / "recorded" / "sequences.jsonl.gz",
)
DB: Final = "t_recorded"
URL: Final = "http://td.example:6041"
GOOD_AUTH: Final = "Basic root:taosdata"


@cache
def corpus() -> list[dict[str, Any]]:
    """Every recorded sequence; fails (never skips) when no copy of the corpus is found."""
    for place in CORPUS_PLACES:
        if place.is_file():
            with gzip.open(place, "rt", encoding="utf-8") as lines:
                return [json.loads(line) for line in lines]
    raise AssertionError(f"the recorded TDengine corpus is missing: looked in {CORPUS_PLACES}")


def recorded(sql: str, *, auth: str = GOOD_AUTH, nth: int = 0) -> dict[str, Any]:
    """The ``nth`` recorded step whose SQL (``{db}`` placeholder) is ``sql``, with ``auth``."""
    found = [
        step
        for sequence in corpus()
        for step in sequence["steps"]
        if step["sql"] == sql and step["auth"] == auth and step["path"] == "/rest/sql"
    ]
    assert len(found) > nth, f"not in the recordings: {sql!r} ({auth})"
    return copy.deepcopy(found[nth])


def body(step: dict[str, Any]) -> bytes:
    """The recorded answer as the server sent it, with this test's database name."""
    return json.dumps(step["answer"]).replace("{db}", DB).encode()


@dataclass
class Answer:
    status_code: int
    content: bytes


@dataclass
class ScriptedSession:
    """A ``requests.Session`` stand-in: answers each statement with recorded answers, in order."""

    script: dict[str, list[Answer]]
    sent: list[str] = field(default_factory=list)

    def post(self, url: str, *, data: bytes, headers: dict[str, str], timeout: object) -> Answer:
        assert url == f"{URL}/rest/sql"
        sql = data.decode()
        self.sent.append(sql)
        answers = self.script.get(sql)
        assert answers, f"the worker sent a statement with no recorded answer: {sql[:120]}"
        return answers.pop(0)

    def close(self) -> None:
        pass


def answer(step: dict[str, Any]) -> Answer:
    return Answer(step["status"], body(step))


def sql_of(template: str) -> str:
    return template.replace("{db}", DB)


VERSION_SQL = "SELECT SERVER_VERSION()"
CREATE_DB_SQL = "CREATE DATABASE IF NOT EXISTS `{db}` PRECISION 'us'"
PRECISION_SQL = "SELECT name, `precision` FROM information_schema.ins_databases WHERE name = '{db}'"
DESCRIBE_SQL = "DESCRIBE `{db}`.`balance_events`"


def writer_over(
    script: dict[str, list[Answer]], **changes: Any
) -> tuple[TDengineWriter, list[str]]:
    options = msgspec.structs.replace(
        TDengineOptions(url=URL, database=DB, retry_max_elapsed_s=0.0), **changes
    )
    session = ScriptedSession(script)
    transport = RestTransport(URL, options.user, options.password, session=session)  # type: ignore[arg-type]
    sleeps: list[float] = []
    writer = TDengineWriter(transport, options, sleep=sleeps.append, clock=lambda: 0.0)
    return writer, session.sent


def describe_answer() -> dict[str, Any]:
    """The real DESCRIBE of the super table the worker created (7 columns, COMPOSITE KEY)."""
    return recorded(DESCRIBE_SQL, nth=1)


# ------------------------------------------------------------------ start-up


def test_the_worker_sends_exactly_the_recorded_statements_and_accepts_the_answers() -> None:
    create_stable = next(
        step
        for sequence in corpus()
        for step in sequence["steps"]
        if step["sql"].startswith("CREATE STABLE IF NOT EXISTS `{db}`.`balance_events`")
    )
    missing = recorded(DESCRIBE_SQL)
    assert missing["answer"]["code"] in TABLE_MISSING_CODES  # 9731 on 3.3.6.6
    script = {
        VERSION_SQL: [answer(recorded(VERSION_SQL))],
        sql_of(CREATE_DB_SQL): [answer(recorded(CREATE_DB_SQL))],
        sql_of(PRECISION_SQL): [answer(recorded(PRECISION_SQL))],
        sql_of(DESCRIBE_SQL): [answer(missing), answer(describe_answer())],
        sql_of(create_stable["sql"]): [answer(create_stable)],
    }
    writer, sent = writer_over(script)
    report = writer.ensure_schema()
    assert sent == [
        VERSION_SQL,
        sql_of(CREATE_DB_SQL),
        sql_of(PRECISION_SQL),
        sql_of(DESCRIBE_SQL),
        sql_of(create_stable["sql"]),  # byte for byte what the real server accepted
        sql_of(DESCRIBE_SQL),
    ]
    assert (report.server_version, report.key_keyword) == ("3.3.6.6", "COMPOSITE KEY")
    assert report.stable_created
    assert all(not answers for answers in script.values())


def test_an_existing_table_as_real_3_3_6_describes_it_is_accepted() -> None:
    script = {
        VERSION_SQL: [answer(recorded(VERSION_SQL))],
        sql_of(CREATE_DB_SQL): [answer(recorded(CREATE_DB_SQL))],
        sql_of(PRECISION_SQL): [answer(recorded(PRECISION_SQL))],
        sql_of(DESCRIBE_SQL): [answer(describe_answer())],
    }
    writer, sent = writer_over(script)
    assert not writer.ensure_schema().stable_created
    assert len(sent) == 4


def test_a_database_in_milliseconds_is_refused_with_the_reason() -> None:
    ms = recorded(PRECISION_SQL)
    ms["answer"]["data"][0][1] = "ms"
    script = {
        VERSION_SQL: [answer(recorded(VERSION_SQL))],
        sql_of(PRECISION_SQL): [answer(ms)],
    }
    writer, _ = writer_over(script, create_database=False)
    with pytest.raises(SchemaMismatchError, match="precision is 'ms', expected 'us'"):
        writer.ensure_schema()


def test_a_missing_database_answers_no_row_and_is_fatal_when_creation_is_disabled() -> None:
    empty = recorded(PRECISION_SQL)
    empty["answer"].update(data=[], rows=0)
    script = {
        VERSION_SQL: [answer(recorded(VERSION_SQL))],
        sql_of(PRECISION_SQL): [answer(empty)],
    }
    writer, _ = writer_over(script, create_database=False)
    with pytest.raises(FatalStoreError, match="does not exist and create_database is false"):
        writer.ensure_schema()


def test_a_wrong_password_names_the_user_and_the_url_never_the_password() -> None:
    refused = recorded(VERSION_SQL, auth="Basic root:WRONG")
    assert (refused["status"], refused["answer"]["code"]) == (200, 855)
    writer, sent = writer_over({VERSION_SQL: [answer(refused)]}, password="s3cret-pw")
    with pytest.raises(FatalStoreError) as info:
        writer.ensure_schema()
    message = str(info.value)
    assert "Authentication failure" in message
    assert "'root'" in message and URL in message
    assert "s3cret-pw" not in message and "taosdata" not in message
    assert sent == [VERSION_SQL]  # fatal at once: no second attempt


# --------------------------------------------------------------- the checks


def test_the_recorded_version_is_read_and_picks_the_composite_keyword() -> None:
    text = recorded(VERSION_SQL)["answer"]["data"][0][0]
    assert text == "3.3.6.6"
    assert composite_key_keyword(parse_server_version(text)) == "COMPOSITE KEY"


def test_the_recorded_describe_has_seven_columns_and_matches() -> None:
    described = describe_answer()["answer"]
    columns = [meta[0] for meta in described["column_meta"]]
    assert columns == ["field", "type", "length", "note", "encode", "compress", "level"]
    assert described["data"][1][:4] == ["event_id", "BIGINT", 8, "COMPOSITE KEY"]
    check_describe(DB, columns, described["data"])  # no exception: it matches


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        (lambda rows: rows[1].__setitem__(3, ""), "column `event_id` is not the composite key"),
        (lambda rows: rows[8].__setitem__(1, "INT"), "column `fee` is INT, expected BIGINT"),
        (lambda rows: rows.pop(12), "tag `user_id` BIGINT is missing"),
    ],
)
def test_a_drifted_table_in_the_recorded_shape_is_caught(
    change: Callable[[list[list[Any]]], object], difference: str
) -> None:
    described = describe_answer()["answer"]
    change(described["data"])
    columns = [meta[0] for meta in described["column_meta"]]
    assert difference in describe_differences(columns, described["data"])[0]


def test_the_precision_is_read_from_ins_databases_not_show_databases() -> None:
    assert database_precision_sql(DB) == sql_of(PRECISION_SQL)
    precision = recorded(PRECISION_SQL)["answer"]
    columns = [meta[0] for meta in precision["column_meta"]]
    assert check_precision("{db}", columns, precision["data"])
    assert not check_precision("other", columns, precision["data"])
    listing = recorded("SHOW DATABASES")["answer"]  # 3.x: names only
    assert [meta[0] for meta in listing["column_meta"]] == ["name"]
    with pytest.raises(SchemaMismatchError, match="cannot read its precision"):
        check_precision("information_schema", ["name"], listing["data"])


def test_the_recorded_create_stable_is_what_the_worker_builds() -> None:
    statements = {
        sql_of(step["sql"])
        for sequence in corpus()
        for step in sequence["steps"]
        if step["sql"].startswith("CREATE STABLE IF NOT EXISTS `{db}`.`balance_events`")
    }
    assert statements == {create_stable_sql(DB, "COMPOSITE KEY")}


@pytest.mark.parametrize(
    "sql",
    [
        # a KEEP-window timestamp, a NULL composite key, an out-of-range TINYINT tag
        "INSERT INTO `{db}`.`u4_a1` USING `{db}`.`balance_events` TAGS (4,1) VALUES "
        "(0,47,1,11,2,1,11,1,0,11,true,NULL)",
        "INSERT INTO `{db}`.`u4_a1` USING `{db}`.`balance_events` TAGS (4,1) VALUES "
        "(1750000000000003,NULL,1,11,2,1,11,1,0,11,true,NULL)",
        "INSERT INTO `{db}`.`u5_a128` USING `{db}`.`balance_events` TAGS (5,128) VALUES "
        "(1750000000000003,49,1,11,2,1,11,1,0,11,true,NULL)",
    ],
)
def test_recorded_refusals_of_row_values_are_permanent(sql: str) -> None:
    step = recorded(sql)
    error = make_store_error(step["answer"]["desc"], step["answer"]["code"], step["status"])
    assert isinstance(error, PermanentStoreError), (error.code, error.desc)
