"""Start-up against TDengine: wait for the server, check its version, ensure the schema.

:func:`ensure_schema` is what the worker, ``replay`` and ``init-db`` run before their
first write. It first waits for the server for up to ``startup_timeout_s`` (TDengine
often comes up after the worker in Kubernetes), then checks the version, creates or
checks the database (precision ``'us'``) and the super table.
"""

from __future__ import annotations

import logging

import msgspec

from worker.tdengine.errors import (
    TABLE_MISSING_CODES,
    FatalStoreError,
    ServerUnavailableError,
    StoreError,
    TransientStoreError,
)
from worker.tdengine.options import TDengineOptions
from worker.tdengine.retry import Retrier
from worker.tdengine.schema import (
    KeyKeyword,
    ServerVersion,
    check_describe,
    check_precision,
    composite_key_keyword,
    create_database_sql,
    create_stable_sql,
    database_precision_sql,
    describe_sql,
    parse_server_version,
    server_version_sql,
    stable_ref,
)
from worker.tdengine.transport import Transport

__all__ = ("SchemaReport", "ensure_schema", "wait_for_server")

logger = logging.getLogger("worker.tdengine.writer")

_DB_NOT_EXIST = 0x0388


class SchemaReport(msgspec.Struct, frozen=True):
    """What :func:`ensure_schema` found and did."""

    server_version: str
    key_keyword: KeyKeyword
    database: str
    database_statement: str | None
    stable_created: bool
    stable: str

    def summary(self) -> str:
        """A few human-readable lines for ``balance-sink init-db``."""
        lines = [
            f"TDengine server {self.server_version}: composite key keyword {self.key_keyword}",
            (
                f"database {self.database}: ensured ({self.database_statement})"
                if self.database_statement
                else f"database {self.database}: exists (creation disabled)"
            ),
            (
                f"super table {self.stable}: created"
                if self.stable_created
                else f"super table {self.stable}: exists and matches the expected schema"
            ),
        ]
        return "\n".join(lines)


def wait_for_server(
    transport: Transport, options: TDengineOptions, retrier: Retrier
) -> tuple[str, ServerVersion]:
    """Read the server version, retrying unreachable/transient answers for ``startup_timeout_s``.

    Returns the version text as the server wrote it, and its parsed numbers.

    Raises
    ------
    ServerUnavailableError
        No answer but transient errors within ``startup_timeout_s``; names the URL and
        the last error.
    FatalStoreError
        At once, without waiting: a wrong password (naming the user and the URL) or
        another fatal answer.
    UnsupportedServerError
        The server is older than 3.3.0.0, or its version is unreadable.
    """
    sql = server_version_sql()
    try:
        answer = retrier.run(
            lambda: transport.query(sql),
            max_elapsed_s=options.startup_timeout_s,
            log_each_retry=False,  # one warning, not a line per attempt for up to a minute
        )
    except TransientStoreError as exc:
        raise ServerUnavailableError(options.url, options.startup_timeout_s, exc) from None
    if not answer.rows or not answer.rows[0]:
        raise FatalStoreError(f"{sql} returned no row (TDengine at {options.url})")
    text = str(answer.rows[0][0])
    version = parse_server_version(text)
    logger.info("tdengine server version=%r numbers=%s url=%s", text, version.numbers, options.url)
    return text, version


def ensure_schema(transport: Transport, options: TDengineOptions, retrier: Retrier) -> SchemaReport:
    """Wait for the server, check its version, create or check the database and super table.

    Raises
    ------
    ServerUnavailableError
        The server did not answer within ``startup_timeout_s``.
    UnsupportedServerError
        The server is older than 3.3.0.0 (no composite key) or its version is unreadable.
    FatalStoreError
        The database is missing and ``create_database`` is false, or credentials fail.
    SchemaMismatchError
        The database's precision is not ``'us'``, or the existing super table differs;
        the message lists every difference.
    TransientStoreError
        A later statement still failed after ``retry_max_elapsed_s``.
    """
    version_text, version = wait_for_server(transport, options, retrier)
    keyword = composite_key_keyword(version)
    database = options.database
    database_statement: str | None = None
    if options.create_database:
        create_database = database_statement = create_database_sql(options)
        retrier.run(lambda: transport.execute(create_database))
    precision_sql = database_precision_sql(database)
    listing = retrier.run(lambda: transport.query(precision_sql))
    if not check_precision(database, listing.columns, listing.rows):
        if database_statement is not None:
            raise FatalStoreError(
                f"database `{database}` is not in information_schema.ins_databases after "
                "CREATE DATABASE"
            )
        raise _missing_database(database)
    describe = describe_sql(database)
    stable_created = False
    try:
        described = retrier.run(lambda: transport.query(describe), no_retry=TABLE_MISSING_CODES)
    except StoreError as exc:
        if exc.code == _DB_NOT_EXIST:
            raise _missing_database(database) from None
        if exc.code not in TABLE_MISSING_CODES:
            raise
        create = create_stable_sql(database, keyword)
        logger.info("tdengine creating super table table=%s", stable_ref(database))
        retrier.run(lambda: transport.execute(create))
        stable_created = True
        described = retrier.run(lambda: transport.query(describe))
    check_describe(database, described.columns, described.rows)
    logger.info(
        "tdengine schema ready server_version=%s keyword=%r database=%s stable_created=%s",
        version_text,
        keyword,
        database,
        stable_created,
    )
    return SchemaReport(
        server_version=version_text,
        key_keyword=keyword,
        database=database,
        database_statement=database_statement,
        stable_created=stable_created,
        stable=stable_ref(database),
    )


def _missing_database(database: str) -> FatalStoreError:
    return FatalStoreError(
        f"database `{database}` does not exist and create_database is false: "
        "create it with `balance-sink init-db` or enable create_database",
        code=_DB_NOT_EXIST,
    )
