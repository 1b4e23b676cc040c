"""Pure TDengine SQL for balance events: identifiers and multi-table INSERT statements.

No I/O here. :func:`build_insert_statements` turns BalanceEvents into INSERT
statements of the multi-table auto-create form::

    INSERT INTO `db`.`u0_a1` USING `db`.`balance_events` TAGS (0,1) VALUES (...) (...)
     `db`.`u7_a1` USING `db`.`balance_events` TAGS (7,1) VALUES (...)

(one line in reality). Values are positional in schema order, one subtable per
(user_id, account_type), subtables ascending, rows ascending by (ts, event_id)
within a subtable, and every statement at most ``max_statement_bytes`` long.

Every value is checked to be an ``int`` (``bool`` for ``is_maker``) in range of
its column type before it is rendered; rendering goes through msgspec's JSON
encoder, so no value is ever spliced into SQL as text. The encoder's output for
ints, ``true``/``false`` and ``null`` is SQL once brackets become parentheses.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Annotated, Final

import msgspec

from worker.tdengine.errors import OptionsError, RowValueError, StatementSizeError

__all__ = (
    "COLUMNS",
    "DEFAULT_MAX_STATEMENT_BYTES",
    "MAX_SQL_BYTES",
    "MIN_STATEMENT_BYTES",
    "RESERVED_WORDS",
    "STABLE_NAME",
    "TAGS",
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

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_INT32_MIN: Final = -(1 << 31)
_INT32_MAX: Final = (1 << 31) - 1

_BigInt = Annotated[int, msgspec.Meta(ge=_INT64_MIN, le=_INT64_MAX)]
_Int = Annotated[int, msgspec.Meta(ge=_INT32_MIN, le=_INT32_MAX)]
_TinyInt = Annotated[int, msgspec.Meta(ge=-128, le=127)]

RowKey = tuple[int, int, int, int]
"""A row's identity: (user_id, account_type, ts, event_id)."""


class _Row(msgspec.Struct, array_like=True, gc=False):
    """A validated event in rendering order: the two tags, then the columns in schema order.

    msgspec checks types and ranges in C when events are converted to this type;
    ``bool`` is not accepted for ``int`` fields, nor ``int`` for ``is_maker``.
    Subtable names are built from the tags, so they are restricted further: a user id
    is never negative, and an account type is in 0..127.
    """

    user_id: Annotated[int, msgspec.Meta(ge=0, le=_INT64_MAX)]
    account_type: Annotated[int, msgspec.Meta(ge=0, le=127)]
    ts: _BigInt
    event_id: _BigInt
    event_type: _TinyInt
    trade_id: _BigInt
    debit_asset: _Int | None
    debit_amt: _BigInt | None
    credit_asset: _Int
    credit_amt: _BigInt
    fee: _BigInt
    fee_asset: _Int
    is_maker: bool
    from_user: _BigInt | None


_ROW_LIST = list[_Row]
_ENCODE = msgspec.json.Encoder().encode
_BY_EVENT_ID = attrgetter("event_id")
_BY_TS = attrgetter("ts")
_BY_ACCOUNT = attrgetter("account_type")
_BY_USER = attrgetter("user_id")
_BY_SUBTABLE = attrgetter("user_id", "account_type")
_ROW_KEY = attrgetter("user_id", "account_type", "ts", "event_id")
_INSERT = b"INSERT INTO"
_ROW_GAP = b") ("
_CLOSE = b")"
_SHORT_RUN = 16  # rows looked at before searching the whole rest for a subtable's end


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

    __slots__ = ("_segments", "nbytes", "rows", "sql")

    def __init__(
        self, sql: str, rows: int, segments: tuple[tuple[Sequence[_Row], int, int], ...]
    ) -> None:
        self.sql = sql
        self.rows = rows
        self.nbytes = len(sql)
        self._segments = segments

    def row_keys(self) -> list[RowKey]:
        """Identities (user_id, account_type, ts, event_id) of the rows, in statement order."""
        keys: list[RowKey] = []
        for rows, start, end in self._segments:
            keys.extend(map(_ROW_KEY, rows[start:end]))
        return keys

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
    if type(user_id) is not int or not 0 <= user_id <= _INT64_MAX:
        raise RowValueError(f"user_id must be an int in 0..2**63-1, got {user_id!r}")
    if type(account_type) is not int or not 0 <= account_type <= 127:
        raise RowValueError(f"account_type must be an int in 0..127, got {account_type!r}")
    return f"u{user_id}_a{account_type}"


def check_events(events: Iterable[object]) -> None:
    """Raise :class:`RowValueError` naming the first event whose values are out of range."""
    _validated(events)


def _validated(events: Iterable[object]) -> list[_Row]:
    batch = events if isinstance(events, list | tuple) else list(events)
    try:
        return msgspec.convert(batch, _ROW_LIST, from_attributes=True)
    except msgspec.ValidationError as exc:
        raise RowValueError(f"invalid balance event value: {exc}") from None


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
        self._table_prefix = b" " + db + b".`u"
        self._using = b"` USING " + db + b".`" + STABLE_NAME.encode("ascii") + b"` TAGS ("
        self._headers: dict[tuple[int, int], tuple[bytes, bytes]] = {}

    @property
    def database(self) -> str:
        """The database the statements write to."""
        return self._database

    @property
    def max_statement_bytes(self) -> int:
        """The statement size limit in bytes."""
        return self._limit

    def _render(self, key: tuple[int, int]) -> tuple[bytes, bytes]:
        """Return (row separator b'],[u,a,', header) for subtable ``key``."""
        headers = self._headers
        if len(headers) >= self._max_cached:
            headers.clear()
        user_id, account_type = key
        tags = b"%d,%d" % key
        entry = (
            b"],[" + tags + b",",
            b"%s%d_a%d%s%s) VALUES ("
            % (self._table_prefix, user_id, account_type, self._using, tags),
        )
        headers[key] = entry
        return entry

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
        rows = _validated(events)
        if not rows:
            return []
        # Four stable sorts on one int each: much cheaper than one sort on 4-tuples,
        # and near-free on input already in order. Rows with the same identity keep
        # their input order, so the later one is written last (and wins).
        rows.sort(key=_BY_EVENT_ID)
        rows.sort(key=_BY_TS)
        rows.sort(key=_BY_ACCOUNT)
        rows.sort(key=_BY_USER)

        # Rows are sorted, so each subtable is one contiguous run, rendered by one call
        # of msgspec's JSON encoder (ints, true/false, null) and a few byte replaces.
        get_header = self._headers.get
        render = self._render
        limit = self._limit
        statements: list[InsertStatement] = []
        parts: list[bytes] = [_INSERT]
        size = len(_INSERT)
        first_row = 0  # the current statement's first row, in sorted order

        def flush() -> None:
            # parts = [INSERT INTO, (header, values, ')') per subtable]. Every header
            # holds two '(' (TAGS, and VALUES opening the first row) and every further
            # row one, so rows = '(' count - headers.
            nonlocal parts, size, first_row
            sql = b"".join(parts)
            count = sql.count(b"(") - (len(parts) - 1) // 3
            segment = ((rows, first_row, first_row + count),)
            statements.append(InsertStatement(sql.decode("ascii"), count, segment))
            first_row += count
            parts = [_INSERT]
            size = len(_INSERT)

        total = len(rows)
        low = 0  # the current subtable's first row
        key = _BY_SUBTABLE(rows[0])
        entry = get_header(key) or render(key)
        while low < total:
            # The subtable's rows end where its key changes: a short look first, since
            # most subtables hold few rows of a batch, then the rest of the list.
            probe = low + _SHORT_RUN
            if probe < total:
                high = bisect_right(rows, key, low + 1, probe, key=_BY_SUBTABLE)
                if high == probe:
                    high = bisect_right(rows, key, probe, total, key=_BY_SUBTABLE)
            else:
                high = bisect_right(rows, key, low + 1, total, key=_BY_SUBTABLE)
            separator, header = entry
            # b'[[u,a,c1,...],[u,a,c1,...]]' -> b'c1,...) (c1,...': the header's '('
            # opens the first row and _CLOSE ends the last. Every row of the run starts
            # with the same tags, and ']' only ever closes a row.
            values = _ENCODE(rows[low:high])[len(separator) - 1 : -2]
            if high - low > 1:
                values = values.replace(separator, _ROW_GAP)
            values = values.replace(b"null", b"NULL")
            low = high
            if high < total:
                key = _BY_SUBTABLE(rows[high])
                entry = get_header(key) or render(key)
            needed = len(header) + len(values) + 1
            if size + needed <= limit:
                parts += (header, values, _CLOSE)
                size += needed
                continue
            # Slow path: the subtable's rows continue in the next statement(s).
            while True:
                room = limit - size - len(header) - 1
                if len(values) <= room:
                    parts += (header, values, _CLOSE)
                    size += len(header) + len(values) + 1
                    break
                # Last row boundary b') (' that keeps the piece values[:cut] in room.
                cut = values.rfind(_ROW_GAP, 0, room + 3) if room > 0 else -1
                if cut < 0:
                    if len(parts) == 1:
                        raise StatementSizeError(
                            f"one row of a subtable does not fit in max_statement_bytes={limit}"
                        )
                else:
                    parts += (header, values[:cut], _CLOSE)
                    values = values[cut + 3 :]
                flush()
        if len(parts) > 1:
            flush()
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
