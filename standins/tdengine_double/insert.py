"""The INSERT statement: a schema-aware parser that mirrors TDengine's insert parser.

TDengine parses INSERT table clause by table clause, fetching each table's schema
before reading its values, and reports literal problems as 0x0216 ``syntax error near
'<text>' (<reason>)``. This module follows the same order and messages, and returns the
rows to write; it never writes anything itself, so a failing statement stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from standins.tdengine_double import errors as E
from standins.tdengine_double.catalog import (
    PRECISION_UNITS,
    ColumnDef,
    Database,
    DataType,
    StableDef,
    SubTable,
)
from standins.tdengine_double.errors import TDengineError, invalid_operation, sql_syntax_error
from standins.tdengine_double.lexer import RESERVED, TOKEN_RE, Token, unquote_string
from standins.tdengine_double.literals import (
    FAST_CONVERTERS,
    FAST_HEADER,
    FAST_ROW,
    FAST_VALUE,
    FastConvert,
    FastMiss,
    fast_name,
    number,
    rounded,
)
from standins.tdengine_double.timefmt import parse_datetime, today_ticks

__all__ = ("InsertParser", "TableRows")

_VALUE_KINDS: Final = frozenset({"int", "str", "float", "hex", "bin", "dur"})
_VALUE_WORDS: Final = frozenset({"now", "today", "true", "false", "null"})
_MISSING: Final = object()


@dataclass(slots=True)
class TableRows:
    """Rows for one subtable from one table clause of an INSERT."""

    db: Database
    stable: StableDef
    tbname: str
    tags: tuple[object, ...]
    create: bool
    """True when this statement creates the subtable (USING or super-table form)."""
    columns: tuple[int, ...]
    """Indices (into ``stable.columns``) of the bound columns, in bound order."""
    rows: list[list[object]] = field(default_factory=list)


@dataclass(slots=True)
class _Value:
    """A value token after ``checkAndTrimValue``: kind, text, and where it starts."""

    kind: str
    text: str
    """Unquoted content for strings; the token text otherwise (sign included)."""
    pos: int


class InsertParser:
    """Parse one INSERT statement against the catalog.

    ``lookup_db`` returns a database by name (or None); ``now_ticks`` gives the current
    time in a precision; ``pk_keyword`` is unused here but kept for symmetry with DDL.
    """

    def __init__(
        self,
        lowered: str,
        *,
        default_db: str | None,
        lookup_db: Callable[[str], Database | None],
        now_ticks: Callable[[str], int],
    ) -> None:
        self.sql = lowered
        self._scan_pos = 0
        self._ahead: list[Token] = []
        self.prev_end = 0
        self.default_db = default_db
        self.lookup_db = lookup_db
        self.now_ticks = now_ticks
        self.out: list[TableRows] = []
        self.using_seen: dict[tuple[str, str], TableRows] = {}
        self.total_rows = 0
        self._converters: dict[tuple[str, tuple[int, ...]], list[FastConvert]] = {}
        self.primary_ts: ColumnDef | None = None
        """The timestamp column of the table being read (its value can't be NULL)."""

    # ------------------------------------------------------------ tokens
    def peek(self, k: int = 0) -> Token:
        """The ``k``-th unconsumed token (scanned lazily: VALUES rows are rarely tokenized)."""
        ahead = self._ahead
        if len(ahead) > k:
            return ahead[k]
        sql = self.sql
        while len(ahead) <= k:
            pos = self._scan_pos
            while True:
                m = TOKEN_RE.match(sql, pos)
                if m is None:
                    ahead.append(Token("eof", "", len(sql), len(sql)))
                    break
                pos = m.end()
                kind = m.lastgroup
                if kind != "ws" and kind is not None:
                    ahead.append(Token(kind, m.group(), m.start(), pos))
                    break
            self._scan_pos = pos
            if ahead[-1].kind == "eof":
                while len(ahead) <= k:
                    ahead.append(ahead[-1])
        return ahead[k]

    @property
    def tok(self) -> Token:
        return self.peek(0)

    def next(self) -> Token:
        t = self.peek(0)
        if t.kind != "eof":
            del self._ahead[0]
            self.prev_end = t.end
        return t

    def mark(self) -> int:
        """Where the next unconsumed token starts (for :meth:`seek`)."""
        return self.peek(0).pos

    def seek(self, pos: int) -> None:
        """Continue reading at ``pos``."""
        self._ahead.clear()
        self._scan_pos = pos

    def rest(self, t: Token) -> str:
        return self.sql[t.pos :]

    def is_op(self, t: Token, op: str) -> bool:
        return t.kind == "op" and t.text == op

    def is_word(self, t: Token, word: str) -> bool:
        return t.kind == "id" and t.text == word

    def expect_word(self, word: str, message: str) -> Token:
        """The next token, which must be ``word``; else the syntax error ``message``."""
        t = self.next()
        if not self.is_word(t, word):
            raise sql_syntax_error(self.rest(t), message)
        return t

    def expect_op(self, op: str, message: str) -> Token:
        """The next token, which must be ``op``; else the syntax error ``message``."""
        t = self.next()
        if not self.is_op(t, op):
            raise sql_syntax_error(self.rest(t), message)
        return t

    # --------------------------------------------------------- statement
    def parse(self) -> list[TableRows]:
        """Parse the whole statement; returns one entry per table clause."""
        self.expect_word("insert", "keyword INSERT is expected")
        self.expect_word("into", "keyword INTO is expected")
        while True:
            t = self.tok
            if self.is_op(t, ";") and self.peek(1).kind == "eof":
                self.next()
                t = self.tok
            if t.kind == "eof":
                if self.total_rows == 0:
                    raise invalid_operation("no data in sql")
                return self.out
            if t.kind not in ("id", "qid", "str"):
                raise sql_syntax_error(self.rest(t), "table_name is expected")
            if not self.fast_using_clause():
                self.table_clause()

    def table_name(self) -> tuple[str | None, str, int]:
        """``[db.]name`` as (db, name, end offset); backquotes keep case."""
        first = self.next()
        db: str | None = None
        name = self.name_of(first)
        if self.is_op(self.tok, ".") and self.peek(1).kind in ("id", "qid"):
            self.next()
            db = name
            name = self.name_of(self.next())
        return db, name, self.prev_end

    def name_of(self, t: Token) -> str:
        if t.kind == "qid":
            return t.text[1:-1]
        if t.kind == "str":
            return unquote_string(t.text)
        if t.kind == "id" and t.text not in RESERVED:
            return t.text
        raise sql_syntax_error(self.rest(t), "table_name is expected")

    def resolve_db(self, db: str | None) -> Database:
        name = db if db is not None else self.default_db
        if name is None:
            raise invalid_operation("db is not specified")
        found = self.lookup_db(name)
        if found is None:
            raise TDengineError(E.DB_NOT_EXIST, "Database not exist")
        return found

    def skip_parentheses(self) -> int:
        """Skip a balanced ``( ... )`` whose ``(`` was just consumed; returns its start."""
        start = self.mark()
        depth = 1
        while True:
            t = self.next()
            if t.kind == "eof":
                raise sql_syntax_error(None, ") expected")
            if self.is_op(t, "("):
                depth += 1
            elif self.is_op(t, ")"):
                depth -= 1
                if depth == 0:
                    return start

    def table_clause(self) -> None:
        db_name, name, name_end = self.table_name()
        db = self.resolve_db(db_name)
        pre_bound: int | None = None
        if self.is_op(self.tok, "("):
            self.next()
            pre_bound = self.skip_parentheses()
        if self.is_word(self.tok, "using"):
            self.next()
            self.using_clause(db, name, pre_bound)
            return
        stable = db.stables.get(name)
        if stable is not None:
            self.supertable_clause(db, stable, pre_bound, name_end)
            return
        sub = db.subtables.get(name)
        if sub is None:
            raise TDengineError(E.TABLE_NOT_EXIST, "Table does not exist")
        target = TableRows(db, db.stables[sub.stable], name, sub.tags, False, ())
        self.columns_and_values(target, pre_bound)

    # ------------------------------------------------------------- USING
    def using_clause(self, db: Database, name: str, pre_bound: int | None) -> None:
        key = (db.name, name)
        seen = self.using_seen.get(key)
        if seen is not None:
            self.ignore_using()
            target = TableRows(db, seen.stable, name, seen.tags, seen.create, ())
            self.columns_and_values(target, pre_bound)
            return
        st_db_name, st_name, _ = self.table_name()
        st_db = self.resolve_db(st_db_name)
        stable = st_db.stables.get(st_name)
        if stable is None:
            raise TDengineError(E.TABLE_NOT_EXIST, "Table does not exist")
        bound_tags = tuple(range(len(stable.tags)))
        if self.is_op(self.tok, "("):
            self.next()
            bound_tags = self.bound_columns(stable.tags, is_tags=True)
        tag_values = self.tags_clause(stable, bound_tags, db.precision)
        self.table_options()
        existing = db.subtables.get(name)
        if existing is not None:
            if existing.stable != stable.name or st_db is not db:
                raise TDengineError(
                    E.TABLE_IN_OTHER_STABLE, "Table already exists in other stables"
                )
            target = TableRows(db, stable, name, existing.tags, False, ())
        else:
            if name in db.stables:
                raise invalid_operation("create table only from super table is allowed")
            target = TableRows(db, stable, name, tag_values, True, ())
        self.using_seen[key] = target
        self.columns_and_values(target, pre_bound)

    def fast_using_clause(self) -> bool:
        """``db.t USING db.st TAGS (literals)`` read in one regex step, if it is that plain.

        Returns False (having consumed nothing) whenever anything is unusual; the
        token-by-token path then handles the clause and its errors.
        """
        start = self.mark()
        m = FAST_HEADER.match(self.sql, start)
        if m is None:
            return False
        names = [fast_name(m.group(i)) for i in range(1, 5)]
        if None in names:
            return False
        db_name, name, st_db_name, st_name = (str(n) for n in names)
        db = self.lookup_db(db_name)
        st_db = self.lookup_db(st_db_name)
        if db is None or st_db is None or (db.name, name) in self.using_seen:
            return False
        stable = st_db.stables.get(st_name)
        if stable is None or name in db.stables:
            return False
        raw = FAST_VALUE.findall(m.group(5))
        if len(raw) != len(stable.tags):
            return False
        try:
            tags = tuple(
                FAST_CONVERTERS[t.type.kind](t.type)(text)
                for t, text in zip(stable.tags, raw, strict=True)
            )
        except FastMiss:
            return False
        existing = db.subtables.get(name)
        if existing is not None:
            if existing.stable != stable.name or st_db is not db:
                return False
            target = TableRows(db, stable, name, existing.tags, False, ())
        else:
            target = TableRows(db, stable, name, tags, True, ())
        self.seek(m.end())
        self.prev_end = m.end()
        self.using_seen[(db.name, name)] = target
        self.columns_and_values(target, None)
        return True

    def ignore_using(self) -> None:
        self.table_name()
        t = self.next()
        if self.is_op(t, "("):
            self.skip_parentheses()
            t = self.next()
        if not self.is_word(t, "tags"):
            raise sql_syntax_error(self.rest(t), "TAGS is expected")
        self.expect_op("(", "( is expected")
        self.skip_parentheses()
        self.table_options()

    def table_options(self) -> None:
        while self.is_word(self.tok, "ttl") or self.is_word(self.tok, "comment"):
            word = self.next().text
            t = self.next()
            if word == "ttl" and t.kind != "int":
                raise sql_syntax_error(self.rest(t), "Invalid option ttl")
            if word == "comment" and t.kind != "str":
                raise sql_syntax_error(self.rest(t), "Invalid option comment")

    def tags_clause(
        self, stable: StableDef, bound: tuple[int, ...], precision: str
    ) -> tuple[object, ...]:
        self.expect_word("tags", "TAGS is expected")
        self.expect_op("(", "( is expected")
        values: list[object] = [None] * len(stable.tags)
        for n, index in enumerate(bound):
            if n > 0 and self.is_op(self.tok, ","):
                self.next()
            v = self.value_token(for_tag=True)
            if v.kind == "dur":
                raise sql_syntax_error(self.sql[v.pos :], "not expected tags values")
            values[index] = self.convert(v, stable.tags[index], precision)
        t = self.next()
        if self.is_op(t, ","):
            raise TDengineError(E.TAGS_NOT_MATCHED, "Tags number not matched")
        if not self.is_op(t, ")"):
            raise sql_syntax_error(self.rest(t), ") is expected")
        return tuple(values)

    # ------------------------------------------------------ bound columns
    def bound_columns(
        self, schema: tuple[ColumnDef, ...], *, is_tags: bool, extra: tuple[str, ...] = ()
    ) -> tuple[int, ...]:
        """Read ``name, ...)`` (the ``(`` is consumed); indices into ``schema``.

        Names in ``extra`` (``tbname`` and tag names for the super-table form) map to
        ``-1 - position in extra``.
        """
        names = {c.name: i for i, c in enumerate(schema)}
        for k, n in enumerate(extra):
            names.setdefault(n, -1 - k)
        used: list[int] = []
        while True:
            t = self.next()
            if self.is_op(t, ")"):
                break
            if self.is_op(t, ","):
                continue
            if t.kind == "eof":
                raise sql_syntax_error(None, ") expected")
            raw = t.text[1:-1] if t.kind == "qid" else t.text
            index = names.get(raw)
            if index is None:
                raise TDengineError(E.INVALID_COLUMN, f"Invalid column name: {raw}")
            if index in used:
                raise sql_syntax_error(raw, "duplicated column name")
            used.append(index)
        if not is_tags:
            if 0 not in used:
                raise invalid_operation("primary timestamp column can not be null")
            if len(schema) > 1 and schema[1].is_key and 1 not in used:
                raise invalid_operation("Primary key column should not be none")
        return tuple(used)

    def columns_and_values(self, target: TableRows, pre_bound: int | None) -> None:
        stable = target.stable
        all_columns = tuple(range(len(stable.columns)))
        if self.is_op(self.tok, "("):
            t = self.next()
            if pre_bound is not None:
                raise sql_syntax_error(self.rest(t), "keyword VALUES or FILE is expected")
            target.columns = self.bound_columns(stable.columns, is_tags=False)
        elif pre_bound is not None:
            resume = self.mark()
            self.seek(pre_bound)
            target.columns = self.bound_columns(stable.columns, is_tags=False)
            self.seek(resume)
        else:
            target.columns = all_columns
        self.data_clause(target)

    def data_clause(self, target: TableRows) -> None:
        t = self.next()
        if self.is_word(t, "file"):
            raise invalid_operation("proxy mode does not support csv loading")
        if not self.is_word(t, "values"):
            raise sql_syntax_error(self.rest(t), "keyword VALUES or FILE is expected")
        schema = [target.stable.columns[c] for c in target.columns]
        self.primary_ts = target.stable.columns[0]
        precision = target.db.precision
        key_pos = target.columns.index(1) if target.stable.key_column is not None else -1
        rows = target.rows
        key = (target.stable.storage, target.columns)
        fast = self._converters.get(key)
        if fast is None:
            fast = [FAST_CONVERTERS[c.type.kind](c.type) for c in schema]
            self._converters[key] = fast
        while True:
            self.fast_rows(rows, fast, key_pos)
            if not self.is_op(self.tok, "("):
                break
            self.next()
            rows.append(self.row(schema, precision, key_pos))
            t = self.next()
            if self.is_op(t, ","):
                raise TDengineError(E.INVALID_COLUMNS_NUM, "Illegal number of columns")
            if not self.is_op(t, ")"):
                raise sql_syntax_error(self.rest(t), ") expected")
        if not rows:
            raise sql_syntax_error(None, "no any data points")
        self.total_rows += len(rows)
        self.out.append(target)

    def fast_rows(
        self, rows: list[list[object]], converters: list[FastConvert], key_pos: int
    ) -> None:
        """Read rows of plain literals with one regex step each, as far as they go.

        Stops at the first row it does not fully accept; the slow path (:meth:`row`)
        then re-reads that row token by token and raises TDengine's exact error.
        """
        sql = self.sql
        pos = self.prev_end
        start = pos
        match = FAST_ROW.match
        findall = FAST_VALUE.findall
        width = len(converters)
        while True:
            m = match(sql, pos)
            if m is None:
                break
            raw = findall(m.group(1))
            if len(raw) != width:
                break
            try:
                values = [conv(text) for conv, text in zip(converters, raw, strict=True)]
            except FastMiss:
                break
            if key_pos >= 0 and values[key_pos] is None:
                break
            rows.append(values)
            pos = m.end()
        if pos != start:
            self.seek(pos)
            self.prev_end = pos

    def row(self, schema: list[ColumnDef], precision: str, key_pos: int) -> list[object]:
        values: list[object] = []
        last = len(schema) - 1
        for n, col in enumerate(schema):
            t = self.tok
            if self.is_op(t, ","):
                raise sql_syntax_error(self.sql[self.prev_end :], "invalid data or symbol")
            if self.is_op(t, ")"):
                raise TDengineError(E.INVALID_COLUMNS_NUM, "Illegal number of columns")
            v = self.value_token(for_tag=False)
            value = self.convert(v, col, precision)
            if n == key_pos and value is None:
                raise TDengineError(E.PK_IS_NULL, "Primary key column should not be null")
            values.append(value)
            if n < last:
                self.expect_op(",", ", expected")
        return values

    # ---------------------------------------------------- super-table form
    def supertable_clause(
        self, db: Database, stable: StableDef, pre_bound: int | None, name_end: int
    ) -> None:
        if pre_bound is None:
            raise sql_syntax_error(
                self.sql[name_end:],
                "(...tbname, ts...) bounded cols is expected for supertable insertion",
            )
        resume = self.mark()
        self.seek(pre_bound)
        extra = ("tbname", *(t.name for t in stable.tags))
        bound = self.bound_columns(stable.columns, is_tags=False, extra=extra)
        self.seek(resume)
        if -1 not in bound:
            raise invalid_operation("tbname column should not be null")
        self.expect_word("values", "keyword VALUES or FILE is expected")
        name_col = ColumnDef("tbname", DataType("VARCHAR", "str", 192))
        schema: list[ColumnDef] = []
        for b in bound:
            if b >= 0:
                schema.append(stable.columns[b])
            elif b == -1:
                schema.append(name_col)
            else:
                schema.append(stable.tags[-2 - b])
        key_pos = bound.index(1) if stable.key_column is not None else -1
        self.primary_ts = stable.columns[0]
        per_table: dict[str, TableRows] = {}
        count = 0
        while self.is_op(self.tok, "("):
            self.next()
            values = self.row(schema, db.precision, key_pos)
            t = self.next()
            if self.is_op(t, ","):
                raise TDengineError(E.INVALID_COLUMNS_NUM, "Illegal number of columns")
            if not self.is_op(t, ")"):
                raise sql_syntax_error(self.rest(t), ") expected")
            tbname = values[bound.index(-1)]
            if tbname is None:
                raise invalid_operation("tbname can not be null value")
            if tbname == "":
                raise invalid_operation("tbname can not be empty")
            if not isinstance(tbname, str) or "." in tbname:
                raise invalid_operation("Invalid tbname pseudo column")
            target = per_table.get(tbname)
            if target is None:
                target = self.subtable_for(db, stable, tbname, bound, values)
                per_table[tbname] = target
            target.rows.append([v for b, v in zip(bound, values, strict=True) if b >= 0])
            count += 1
        if count == 0:
            raise sql_syntax_error(None, "no any data points")
        self.total_rows += count
        self.out.extend(per_table.values())

    def subtable_for(
        self,
        db: Database,
        stable: StableDef,
        tbname: str,
        bound: tuple[int, ...],
        values: list[object],
    ) -> TableRows:
        columns = tuple(b for b in bound if b >= 0)
        key = (db.name, tbname)
        seen = self.using_seen.get(key)
        if seen is not None:
            return TableRows(db, stable, tbname, seen.tags, seen.create, columns)
        existing: SubTable | None = db.subtables.get(tbname)
        if existing is not None:
            if existing.stable != stable.name:
                raise TDengineError(
                    E.TABLE_IN_OTHER_STABLE, "Table already exists in other stables"
                )
            target = TableRows(db, stable, tbname, existing.tags, False, columns)
        else:
            tags: list[object] = [None] * len(stable.tags)
            for b, v in zip(bound, values, strict=True):
                if b <= -2:
                    tags[-2 - b] = v
            target = TableRows(db, stable, tbname, tuple(tags), True, columns)
        self.using_seen[key] = target
        return target

    # ------------------------------------------------------------- values
    def value_token(self, *, for_tag: bool) -> _Value:
        """The next value token, as ``checkAndTrimValue`` accepts it."""
        t = self.next()
        if (
            t.kind == "op"
            and t.text in "+-"
            and self.tok.kind in ("int", "float")
            and self.tok.pos == t.end
        ):
            num = self.next()
            return _Value(num.kind, t.text + num.text, t.pos)
        if t.kind in _VALUE_KINDS or (t.kind == "id" and t.text in _VALUE_WORDS):
            if t.kind == "str":
                return _Value("str", unquote_string(t.text), t.pos)
            if (
                t.kind == "id"
                and t.text in ("now", "today")
                and self.is_op(self.tok, "(")
                and self.is_op(self.peek(1), ")")
            ):
                self.next()
                self.next()
            return _Value(t.kind if t.kind != "id" else t.text, t.text, t.pos)
        raise sql_syntax_error(self.rest(t), "invalid data or symbol")

    def near(self, v: _Value) -> str:
        """What ``buildSyntaxErrMsg`` quotes: a string's content, else the rest of SQL."""
        return v.text if v.kind == "str" else self.sql[v.pos :]

    def convert(self, v: _Value, col: ColumnDef, precision: str) -> object:
        """Check and convert one literal for ``col``; raises TDengine's error on failure."""
        dtype = col.type
        kind = dtype.kind
        if v.kind == "null" or (
            v.kind == "str" and kind not in ("str", "nchar") and v.text.lower() == "null"
        ):
            if col is self.primary_ts:
                raise sql_syntax_error(self.near(v), "Primary timestamp column should not be null")
            return None
        if v.kind == "str" and v.text == "" and kind in ("int", "float"):
            raise sql_syntax_error("", "invalid numeric data")
        if kind == "int":
            return self.to_int(v, dtype)
        if kind == "bool":
            return self.to_bool(v)
        if kind == "ts":
            return self.to_ts(v, precision)
        if kind == "float":
            return self.to_float(v, dtype)
        text = v.text
        size = len(text.encode()) if kind == "str" else len(text)
        if size > dtype.length:
            raise TDengineError(E.VALUE_TOO_LONG, f"Value too long for column/tag: {col.name}")
        return text

    def to_int(self, v: _Value, dtype: DataType) -> int:
        parsed: int | None = None
        text = v.text
        try:
            if v.kind == "int":
                parsed = int(text, 10)
            elif v.kind in ("hex", "bin"):
                parsed = int(text, 0)
            elif v.kind == "str":
                stripped = text.strip()
                parsed = int(stripped, 0) if stripped[:2].lower() in ("0x", "0b") else int(stripped)
        except ValueError:
            parsed = None
        if parsed is None and v.kind in ("float", "str"):
            parsed = rounded(text)
        name = dtype.overflow_name
        if parsed is None:
            raise sql_syntax_error(self.near(v), f"invalid {name} data")
        if dtype.name == "BIGINT" or dtype.name == "BIGINT UNSIGNED":
            if not dtype.min_value <= parsed <= dtype.max_value:
                raise sql_syntax_error(self.near(v), f"invalid {name} data")
            return parsed
        if dtype.min_value == 0 and parsed < 0:
            raise sql_syntax_error(self.near(v), f"invalid {name} data")
        if not dtype.min_value <= parsed <= dtype.max_value:
            raise sql_syntax_error(self.near(v), f"{name} data overflow")
        return parsed

    def to_bool(self, v: _Value) -> int:
        if v.kind in ("true", "false"):
            return 1 if v.kind == "true" else 0
        if v.kind == "str" and v.text:
            low = v.text.lower()
            if low == "true":
                return 1
            if low == "false":
                return 0
            read = number(low)  # any other string is read as a number (strtod)
            if read is not None:
                return 0 if read == 0 else 1
        elif v.kind == "int":
            return 0 if int(v.text) == 0 else 1
        elif v.kind in ("hex", "bin"):
            return 0 if int(v.text, 0) == 0 else 1
        elif v.kind == "float":
            return 0 if float(v.text) == 0 else 1
        raise sql_syntax_error(self.near(v), "invalid bool data")

    def to_float(self, v: _Value, dtype: DataType) -> float:
        try:
            value = float(v.text) if v.kind in ("int", "float", "str") else None
        except ValueError:
            value = None
        if value is None or value != value or value in (float("inf"), float("-inf")):
            raise sql_syntax_error(self.near(v), "illegal float data")
        if dtype.length == 4 and abs(value) > 3.4028234663852886e38:
            raise sql_syntax_error(self.near(v), "illegal float data")
        return value

    def to_ts(self, v: _Value, precision: str) -> int:
        if v.kind == "now":
            return self.now_ticks(precision)
        if v.kind == "today":
            return today_ticks(self.now_ticks(precision), precision)
        value: int | None = None
        if v.kind == "int":
            value = int(v.text)
        elif v.kind == "str":
            value = parse_datetime(v.text, precision)
            if value is None:
                stripped = v.text.strip()
                if stripped.lstrip("+-").isdigit():
                    value = int(stripped)
                elif stripped.lower() == "now":
                    value = self.now_ticks(precision)
                elif stripped.lower() == "today":
                    value = today_ticks(self.now_ticks(precision), precision)
        if value is None or not -(2**63) <= value < 2**63:
            raise sql_syntax_error(self.near(v), "invalid timestamp")
        return value


def ticks_per_second(precision: str) -> int:
    """Ticks in one second for a precision (re-exported for the engine)."""
    return PRECISION_UNITS[precision]
