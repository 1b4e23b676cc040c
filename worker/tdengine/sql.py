"""Pure TDengine SQL for balance events: identifiers and multi-table INSERT statements.

No I/O here. :func:`build_insert_statements` turns BalanceEvents into INSERT
statements of the multi-table auto-create form::

    INSERT INTO `db`.`u0_a1` USING `db`.`balance_events` TAGS (0,1) VALUES (...) (...)
     `db`.`u7_a1` USING `db`.`balance_events` TAGS (7,1) VALUES (...)

(one line in reality). Values are positional in schema order, one subtable per
(user_id, account_type), subtables ascending, rows ascending by (ts, event_id)
within a subtable, and every statement at most ``max_statement_bytes`` long.

Every value is checked to be an ``int`` (``bool`` for ``is_maker``) in range of its
column type (:mod:`worker.tdengine.row_checks`) before it is rendered; rendering goes
through msgspec's JSON encoder, so no value is ever spliced into SQL as text. The
encoder's output for ints, ``true``/``false`` and ``null`` is SQL once brackets become
parentheses.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate, compress, repeat
from operator import add, attrgetter, is_, itemgetter
from typing import Any, Final, NamedTuple, cast

import msgspec

from worker.tdengine.errors import OptionsError, RowValueError, StatementSizeError
from worker.tdengine.row_checks import INT64_MAX, EventRow, Tags, Values, trade_event_columns
from worker.tdengine.row_order import identity_order, run_starts, subtable_keys, tags_of

__all__ = (
    "COLUMNS",
    "DEFAULT_MAX_STATEMENT_BYTES",
    "MAX_SQL_BYTES",
    "MIN_STATEMENT_BYTES",
    "RESERVED_WORDS",
    "STABLE_NAME",
    "TAGS",
    "EventRow",
    "InsertBuilder",
    "InsertStatement",
    "RowKey",
    "build_insert_statements",
    "check_database_name",
    "check_events",
    "quote_identifier",
    "subtable_name",
)

STABLE_NAME: Final = "balance_events"

COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("ts", "TIMESTAMP"),
    ("event_id", "BIGINT"),
    ("event_type", "TINYINT"),
    ("trade_id", "BIGINT"),
    ("debit_asset", "INT"),
    ("debit_amt", "BIGINT"),
    ("credit_asset", "INT"),
    ("credit_amt", "BIGINT"),
    ("fee", "BIGINT"),
    ("fee_asset", "INT"),
    ("is_maker", "BOOL"),
    ("from_user", "BIGINT"),
)
"""Data columns in schema order: the order of the values in every VALUES tuple."""

TAGS: Final[tuple[tuple[str, str], ...]] = (("user_id", "BIGINT"), ("account_type", "TINYINT"))
"""Tag columns in schema order; one subtable per distinct tag pair."""

MAX_SQL_BYTES: Final = 1_048_576
"""TDengine's SQL length limit (TSDB_MAX_ALLOWED_SQL_LEN): exactly this many bytes pass."""

DEFAULT_MAX_STATEMENT_BYTES: Final = 1_048_000
"""Default statement size: a little headroom below :data:`MAX_SQL_BYTES`."""

MIN_STATEMENT_BYTES: Final = 4096
"""Smallest statement size we accept: always room for one header and one row."""

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

RESERVED_WORDS: Final = frozenset(
    """
    ABORT ACCOUNT ACCOUNTS ADD AFTER AGGREGATE ALIAS ALIVE ALL ALTER ANALYZE AND ANODE ANODES
    ANOMALY_WINDOW ANTI APPS ARBGROUPS ARROW AS ASC ASOF ASSIGN ASYNC AT_ONCE ATTACH AUTO
    BALANCE BEFORE BEGIN BETWEEN BIGINT BIN BINARY BITAND BITNOT BITOR BLOB BLOCKS BNODE BNODES
    BOOL BOTH BUFFER BUFSIZE BWLIMIT BY CACHE CACHEMODEL CACHESIZE CASE CAST CHANGE CHILD
    CLIENT_VERSION CLUSTER COLON COLS COLUMN COMMA COMMENT COMP COMPACT COMPACTS COMPOSITE
    COMPRESS CONCAT CONFLICT CONNECTION CONNECTIONS CONNS CONSUMER CONSUMERS CONTAINS COPY COUNT
    COUNT_WINDOW CREATE CREATEDB CURRENT_USER DATABASE DATABASES DBS DB_KEY DECIMAL DEFAULT
    DEFERRED DELETE DELETE_MARK DELIMITERS DESC DESCRIBE DETACH DISTINCT DISTRIBUTED DIVIDE DNODE
    DNODES DOT DOUBLE DROP DURATION EACH ELSE ENABLE ENCODE END EQ EVENT_WINDOW EVERY EXCEPT
    EXISTS EXPIRED EXPLAIN FAIL FILE FILL FILL_HISTORY FIRST FLOAT FLUSH FOR FORCE FROM FULL
    FUNCTION FUNCTIONS GE GEOMETRY GLOB GRANT GRANTS GROUP GT HAVING HEX HOST ID IF IGNORE
    ILLEGAL IMMEDIATE IMPORT IN INDEX INDEXES INITIALLY INNER INSERT INSTANCES INSTEAD INT
    INTEGER INTERSECT INTERVAL INTO IROWTS IS ISFILLED ISNULL JLIMIT JOIN JSON KEEP KEY KILL
    LANGUAGE LAST LAST_ROW LE LEADER LEADING LEFT LEVEL LICENCES LIKE LIMIT LINEAR LOCAL LOCK
    LOGS LP LSHIFT LT MACHINES MATCH MAX_DELAY MAXROWS MEDIUMBLOB MERGE META MINROWS MINUS MNODE
    MNODES MODIFY MODULES MOUNT MOUNTS NCHAR NE NEAR NEXT NMATCH NONE NORMAL NOT NOTIFY NOTNULL
    NOW NULL NULLS OF OFFSET ON ONLY OR ORDER OUTER OUTPUTTYPE PAGES PAGESIZE PARTITION PASS
    PAUSE PERIOD PI PLUS PORT POSITION PPS PRECISION PREV PRIMARY PRIVILEGE PRIVILEGES QDURATION
    QEND QNODE QNODES QSTART QTAGS QTIME QUERIES QUERY QUESTION RAISE RAND RANGE RATIO READ
    RECALCULATE RECURSIVE REDISTRIBUTE REGEXP RELOAD REM RENAME REPLACE REPLICA REPLICAS RESET
    RESTORE RESTRICT RESUME RETENTION RETENTIONS REVOKE RIGHT ROLE ROLES ROLLUP ROW ROWTS RP
    RSHIFT RSMA RSMAS SCAN SCANS SCHEMALESS SCORES SELECT SEMI SERVER_STATUS SERVER_VERSION
    SESSION SET SHOW SINGLE_STABLE SLASH SLIDING SLIMIT SMA SMALLINT SNODE SNODES SOFFSET SPLIT
    STABLE STABLES STAR START STATE STATE_WINDOW STATEMENT STOP STORAGE STREAM STREAMS STRICT
    STRING STT_TRIGGER SUBSCRIBE SUBSCRIPTIONS SUBSTR SUBSTRING SUBTABLE SYSINFO SYSTEM TABLE
    TABLE_PREFIX TABLE_SUFFIX TABLES TAG TAGS TBNAME THEN TIMES TIMESTAMP TIMEZONE TINYINT TO
    TODAY TOKEN TOPIC TOPICS TRAILING TRANSACTION TRANSACTIONS TRIGGER TRIM TSDB_PAGESIZE TSERIES
    TSMA TSMAS TTL UNION UNLOCK UNSAFE UNSIGNED UNTREATED UPDATE USE USER USERS USING VALUE
    VALUES VARBINARY VARCHAR VARIABLE VARIABLES VERBOSE VGROUP VGROUPS VIEW VIEWS VIRTUAL VNODE
    VNODES VTABLE VTABLES WAL WAL_FSYNC_PERIOD WAL_LEVEL WAL_RETENTION_PERIOD WAL_RETENTION_SIZE
    WAL_ROLL_PERIOD WAL_SEGMENT_SIZE WATERMARK WDURATION WEND WHEN WHERE WINDOW WINDOW_CLOSE
    WINDOW_OFFSET WITH WRITE WSTART _C0 _IROWTS _QDURATION _QEND _QSTART _ROWTS _WDURATION _WEND
    _WSTART INFORMATION_SCHEMA PERFORMANCE_SCHEMA
    """.split()  # noqa: SIM905 - one word list is easier to check against the docs
)
"""TDengine keywords (3.x reserved-keyword list) plus the two system databases.

A database name must not be one of these, in any case, even though we backquote it:
an operator typing it in the ``taos`` shell should not need to.
"""

RowKey = tuple[int, int, int, int]
"""A row's identity: (user_id, account_type, ts, event_id)."""


_ROW_LIST = list[EventRow]  # type: ignore[valid-type]
_TAGS_LIST = list[Tags]
_VALUES_LIST = list[Values]
_ENCODE = msgspec.json.Encoder().encode
_BY_EVENT_ID = attrgetter("event_id")
_BY_TS = attrgetter("ts")
_BY_ACCOUNT = attrgetter("account_type")
_BY_USER = attrgetter("user_id")
_INSERT = b"INSERT INTO"
_ROW_GAP = b") ("
_CLOSE = b")"


class _Rows(NamedTuple):
    """A batch's validated rows, and the order in which the statements hold them."""

    subtables: list[int]
    """Subtable (:func:`~worker.tdengine.row_order.subtable_keys`) of each row, in
    statement order."""
    order: Sequence[int]
    """Input position of each row, in statement order."""
    ts: Sequence[int]
    """``ts`` of each row, in input order."""
    event_id: Sequence[int]
    """``event_id`` of each row, in input order."""

    def keys(self, start: int, end: int) -> list[RowKey]:
        """Identities (user_id, account_type, ts, event_id) of rows ``start:end``."""
        users, accounts = tags_of(self.subtables[start:end])
        rows = self.order[start:end]
        ts, event_id = map(self.ts.__getitem__, rows), map(self.event_id.__getitem__, rows)
        return list(zip(users, accounts, ts, event_id, strict=True))


class InsertStatement:
    """One INSERT statement and the rows it carries.

    Attributes
    ----------
    sql:
        The statement text (ASCII, so ``nbytes == len(sql)``).
    rows:
        Number of VALUES tuples in the statement.
    nbytes:
        Length of ``sql`` in UTF-8 bytes.
    """

    __slots__ = ("_end", "_rows", "_start", "nbytes", "rows", "sql")

    def __init__(self, sql: str, rows: _Rows, start: int, end: int) -> None:
        self.sql = sql
        self.rows = end - start
        self.nbytes = len(sql)
        self._rows = rows  # the batch's rows, of which this statement holds start:end
        self._start = start
        self._end = end

    def row_keys(self) -> list[RowKey]:
        """Identities (user_id, account_type, ts, event_id) of the rows, in statement order."""
        return self._rows.keys(self._start, self._end)

    def distinct_rows(self) -> int:
        """Number of distinct row identities: what TDengine reports as affected rows.

        Rows with the same (subtable, ts, event_id) inside one statement count once.
        """
        return len(set(self.row_keys()))

    def __repr__(self) -> str:
        return f"InsertStatement(rows={self.rows}, nbytes={self.nbytes})"


def check_database_name(name: str) -> str:
    """Return ``name`` if it is a safe TDengine database name, else raise :class:`OptionsError`.

    Allowed: ``[A-Za-z_][A-Za-z0-9_]{0,63}`` and not a reserved word (any case).
    """
    if not isinstance(name, str) or _IDENTIFIER.fullmatch(name) is None:
        raise OptionsError(
            "database",
            f"{name!r} is not a plain identifier: use 1-64 letters, digits or '_', "
            "not starting with a digit",
        )
    if name.upper() in RESERVED_WORDS:
        raise OptionsError("database", f"{name!r} is a TDengine reserved word")
    return name


def quote_identifier(name: str) -> str:
    """Return the checked database name in backquotes, e.g. ``ledger`` → ```ledger```."""
    return f"`{check_database_name(name)}`"


def subtable_name(user_id: int, account_type: int) -> str:
    """Return the subtable name ``u{user_id}_a{account_type}``, built from integers only.

    Raises :class:`RowValueError` unless ``user_id`` is an int in 0..2**63-1 and
    ``account_type`` an int in 0..127 (``bool`` is refused).
    """
    if type(user_id) is not int or not 0 <= user_id <= INT64_MAX:
        raise RowValueError(f"user_id must be an int in 0..2**63-1, got {user_id!r}")
    if type(account_type) is not int or not 0 <= account_type <= 127:
        raise RowValueError(f"account_type must be an int in 0..127, got {account_type!r}")
    return f"u{user_id}_a{account_type}"


def check_events(events: Iterable[object]) -> None:
    """Raise :class:`RowValueError` naming the first event whose values are out of range."""
    _validated(events)


def _validated(events: Iterable[object]) -> list[Any]:
    batch = events if isinstance(events, list | tuple) else list(events)
    try:
        return msgspec.convert(batch, _ROW_LIST, from_attributes=True)
    except msgspec.ValidationError as exc:
        raise RowValueError(f"invalid balance event value: {exc}") from None


def _validated_parts(
    events: list[object] | tuple[object, ...],
) -> tuple[list[Tags], list[Values]]:
    """``events`` validated, as tags and as values (the checks of :func:`check_events`)."""
    try:
        return (
            msgspec.convert(events, _TAGS_LIST, from_attributes=True),
            msgspec.convert(events, _VALUES_LIST, from_attributes=True),
        )
    except msgspec.ValidationError:
        pass
    _validated(events)  # raises, naming the first refused value in row order
    raise AssertionError("events refused in parts but not as rows")  # pragma: no cover


class InsertBuilder:
    """Builds INSERT statements for one database; keeps rendered subtable headers.

    A worker writes the same subtables batch after batch, so each subtable's header
    (```db`.`u7_a1` USING `db`.`balance_events` TAGS (7,1) VALUES (``) is rendered
    once and kept, up to ``header_cache_size`` subtables (then the cache starts over).

    Parameters
    ----------
    database:
        Database name; checked with :func:`check_database_name` and backquoted.
    max_statement_bytes:
        Largest statement length in bytes, in :data:`MIN_STATEMENT_BYTES` ..
        :data:`MAX_SQL_BYTES`. A statement of exactly this length is allowed.
    header_cache_size:
        Most subtable headers kept between calls.
    """

    __slots__ = ("_database", "_headers", "_limit", "_max_cached", "_table_prefix", "_using")

    def __init__(
        self,
        database: str,
        *,
        max_statement_bytes: int = DEFAULT_MAX_STATEMENT_BYTES,
        header_cache_size: int = 1 << 18,
    ) -> None:
        if (
            type(max_statement_bytes) is not int
            or not MIN_STATEMENT_BYTES <= max_statement_bytes <= MAX_SQL_BYTES
        ):
            raise StatementSizeError(
                f"max_statement_bytes must be an int in {MIN_STATEMENT_BYTES}..{MAX_SQL_BYTES}, "
                f"got {max_statement_bytes!r}"
            )
        db = quote_identifier(database).encode("ascii")
        self._database = database
        self._limit = max_statement_bytes
        self._max_cached = header_cache_size
        self._table_prefix = b") " + db + b".`u"
        self._using = b"` USING " + db + b".`" + STABLE_NAME.encode("ascii") + b"` TAGS ("
        self._headers: dict[int, bytes] = {}

    @property
    def database(self) -> str:
        """The database the statements write to."""
        return self._database

    @property
    def max_statement_bytes(self) -> int:
        """The statement size limit in bytes."""
        return self._limit

    def _header(self, subtable: int) -> bytes:
        """``) `db`.`u7_a1` USING `db`.`balance_events` TAGS (7,1) VALUES (`` of a
        subtable (``user_id << 7 | account_type``): it closes the row before it and opens
        the first row of the subtable."""
        header = self._headers.get(subtable)
        return header if header is not None else self._headers_of([subtable], [None])[0]

    def _headers_of(self, subtables: list[int], cached: list[bytes | None]) -> list[bytes]:
        """The headers of ``subtables``, given those found in the cache (else ``None``):
        the others rendered at once, and kept unless more than the cache holds."""
        prefix, using = self._table_prefix, self._using
        rendered: dict[int, bytes] = {}
        missing = list(compress(subtables, map(is_, cached, repeat(None))))
        # From validated ints: user_id in 0..2**63-1, account_type in 0..127.
        for subtable, user_id, account_type in zip(missing, *tags_of(missing), strict=True):
            rendered[subtable] = b"%s%d_a%d%s%d,%d) VALUES (" % (
                prefix, user_id, account_type, using, user_id, account_type,
            )  # fmt: skip
        if len(self._headers) + len(rendered) > self._max_cached:
            self._headers.clear()
        if len(rendered) <= self._max_cached:
            self._headers.update(rendered)
        # Every subtable is cached or rendered now: no None is left.
        return cast(list[bytes], list(map(rendered.get, subtables, cached)))

    def build(self, events: Iterable[object]) -> list[InsertStatement]:
        """Build the INSERT statements that write ``events``.

        Returns
        -------
        list[InsertStatement]
            In order; empty when there are no events.

        Raises
        ------
        RowValueError
            A value is not an int in range of its column (nothing is built).
        StatementSizeError
            A single row cannot fit in a statement (impossible with the allowed sizes).
        """
        batch = events if isinstance(events, Sequence) else list(events)
        columns = trade_event_columns(batch)
        if columns is not None:  # the engine's TradeRows, checked on the trades' values
            users, accounts = columns["user_id"], columns["account_type"]
            ts, event_id = columns["ts"], columns["event_id"]
            rows: Sequence[Any] = list(zip(*(columns[name] for name, _ in COLUMNS), strict=True))
        else:
            tags, rows = _validated_parts(batch if isinstance(batch, list | tuple) else [*batch])
            users, accounts = list(map(_BY_USER, tags)), list(map(_BY_ACCOUNT, tags))
            ts, event_id = list(map(_BY_TS, rows)), list(map(_BY_EVENT_ID, rows))
        count = len(rows)
        if not count:
            return []
        # Every row rendered by one call of msgspec's JSON encoder (ints, true/false,
        # null): b'[[c1,...],[c1,...]]' split into b'c1,...' per row. In input order:
        # the rows lie in memory in that order, and encoding them in sorted order instead
        # is several times slower. (A Values struct and a tuple of the same values
        # encode alike.)
        texts = _ENCODE(rows).replace(b"null", b"NULL")[2:-2].split(b"],[")
        # Rows in identity order (the later of two rows with one identity wins).
        subtables = subtable_keys(users, accounts)
        order: Sequence[int] = range(count)
        if count > 1:
            order = identity_order(subtables, ts, event_id)
            pick = itemgetter(*order)
            texts, subtables = list(pick(texts)), list(pick(subtables))
        # Each row is preceded by b') (' when the row before it is of the same subtable,
        # else by its subtable's header (which closes the row before and opens this one).
        prefixes = [_ROW_GAP] * count
        starts = run_starts(subtables)
        first_subtables = [subtables[start] for start in starts]
        cached = list(map(self._headers.get, first_subtables))
        headers = (
            self._headers_of(first_subtables, cached)
            if None in cached
            else cast(list[bytes], cached)
        )
        for start, header in zip(starts, headers, strict=True):
            prefixes[start] = header
        return self._statements(prefixes, texts, _Rows(subtables, order, ts, event_id))

    def _statements(
        self, prefixes: list[bytes], texts: list[bytes], rows: _Rows
    ) -> list[InsertStatement]:
        """Cut the sorted rows (each a prefix and its values) into statements within the
        limit, each as full as it can be; a subtable cut at a boundary continues in the
        next statement under its header repeated."""
        count = len(texts)
        # ends[i]: bytes of rows 0..i-1 with their prefixes (a header's ')' included).
        ends = list(accumulate(map(add, map(len, prefixes), map(len, texts)), initial=0))
        limit = self._limit
        statements: list[InsertStatement] = []
        first = 0
        while first < count:
            # A statement: INSERT INTO, the first row's header without its ')', the first
            # row's values, the other rows with their prefixes, and the ')' of the last.
            head = self._header(rows.subtables[first])
            # (The header's ')' dropped, the last row's added: len(head) in all.)
            fixed = len(_INSERT) + len(head) - len(prefixes[first])
            end = bisect_right(ends, limit - fixed + ends[first], first + 1) - 1
            if end <= first:
                raise StatementSizeError(
                    f"one row of a subtable does not fit in max_statement_bytes={limit}"
                )
            parts: list[bytes] = [_CLOSE] * (2 * (end - first) + 1)
            parts[0:-1:2] = prefixes[first:end]
            parts[1::2] = texts[first:end]
            parts[0] = _INSERT + head[1:]
            sql = b"".join(parts).decode("ascii")
            statements.append(InsertStatement(sql, rows, first, end))
            first = end
        return statements


def build_insert_statements(
    database: str,
    events: Iterable[object],
    *,
    max_statement_bytes: int = DEFAULT_MAX_STATEMENT_BYTES,
) -> list[InsertStatement]:
    """Build the INSERT statements that write ``events`` to ``database``.

    A one-off :class:`InsertBuilder`; see :meth:`InsertBuilder.build`. Long-lived
    callers keep an :class:`InsertBuilder` to reuse rendered headers.
    """
    return InsertBuilder(database, max_statement_bytes=max_statement_bytes).build(events)
