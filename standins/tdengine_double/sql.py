"""Statement-level parser of the non-INSERT statements the stand-in accepts.

Anything outside the subset is rejected with 0x2600 ``syntax error near "<rest>"``,
quoting the lower-cased statement from the token where this parser gave up.
"""

from __future__ import annotations

from typing import Final

from standins.tdengine_double.errors import TDengineError, not_implemented
from standins.tdengine_double.expressions import UNIMPLEMENTED_WORDS, ExprParser
from standins.tdengine_double.lexer import Token, unquote_string
from standins.tdengine_double.statements import (
    ColumnDefAst,
    CreateDatabase,
    CreateStable,
    Delete,
    Describe,
    DropDatabase,
    DropStable,
    ShowCreateDatabase,
    ShowCreateStable,
    ShowDatabases,
    ShowStables,
    ShowTables,
    Statement,
    UseDatabase,
)

__all__ = ("Parser",)

_DURATION_MINUTES: Final[dict[str, int]] = {"m": 1, "h": 60, "d": 1440}
_DB_OPTIONS: Final = frozenset(
    {
        *("cachemodel", "cachesize", "comp", "wal_fsync_period", "maxrows", "minrows"),
        *("pages", "pagesize", "tsdb_pagesize", "replica", "single_stable", "strict"),
        *("wal_retention_period", "wal_retention_size", "stt_trigger", "table_prefix"),
        *("table_suffix", "keep_time_offset", "encrypt_algorithm", "s3_chunkpages"),
        *("s3_keeplocal", "s3_compact", "compact_interval", "compact_time_range"),
        *("compact_time_offset", "dnodes"),
    }
)
"""CREATE DATABASE options TDengine takes and the stand-in does not implement."""


class Parser(ExprParser):
    """Recursive-descent parser over the tokens of one lower-cased statement."""

    def __init__(
        self,
        lowered: str,
        tokens: list[Token] | None = None,
        *,
        key_keywords: tuple[str, ...] = ("composite", "primary"),
    ) -> None:
        super().__init__(lowered, tokens)
        self.key_keywords = key_keywords
        """The composite-key keywords this server version accepts (others are an error)."""

    # ---------------------------------------------------------- statements
    def statement(self) -> Statement:
        """Parse one non-INSERT statement (up to its first ``;``)."""
        t = self.tok
        if self.accept("select"):
            stmt: Statement = self.select_body()
        elif self.accept("create"):
            if self.accept("database"):
                stmt = self.create_database()
            elif self.accept("stable"):
                stmt = self.create_stable()
            else:
                raise self.unimplemented("CREATE")
        elif self.accept("show"):
            stmt = self.show()
        elif self.accept("describe", "desc"):
            stmt = Describe(self.table_name())
        elif self.accept("drop"):
            stmt = self.drop()
        elif self.accept("use"):
            stmt = UseDatabase(self.ident())
        elif self.accept("delete"):
            self.expect("from")
            table = self.table_name()
            stmt = Delete(table, self.expr() if self.accept("where") else None)
        elif t.kind == "id" and t.text in UNIMPLEMENTED_WORDS:
            raise not_implemented(f"{t.text.upper()} statements")
        else:
            raise self.error(t)
        self.end_of_statement()
        return stmt

    def unimplemented(self, verb: str) -> TDengineError:
        """0x0100 for ``<verb> <word>`` the stand-in lacks; 0x2600 if no word follows."""
        t = self.tok
        if t.kind != "id":
            return self.error()
        return not_implemented(f"{verb} {t.text.upper()}")

    def if_not_exists(self) -> bool:
        if self.accept("if"):
            self.expect("not")
            self.expect("exists")
            return True
        return False

    def if_exists(self) -> bool:
        if self.accept("if"):
            self.expect("exists")
            return True
        return False

    def create_database(self) -> CreateDatabase:
        ine = self.if_not_exists()
        name = self.ident()
        precision: str | None = None
        keep: tuple[int, ...] | None = None
        duration: int | None = None
        wal_level: int | None = None
        vgroups: int | None = None
        buffer: int | None = None
        while self.tok.kind == "id" and self.tok.text not in ("",):
            word = self.tok.text
            if word == "precision":
                self.advance()
                t = self.tok
                if t.kind != "str":
                    raise self.error()
                self.advance()
                precision = unquote_string(t.text)
            elif word == "keep":
                self.advance()
                values = [self.duration_value()]
                while self.accept_op(","):
                    values.append(self.duration_value())
                keep = tuple(values)
            elif word == "duration":
                self.advance()
                duration = self.duration_value()
            elif word == "wal_level":
                self.advance()
                wal_level = self.int_value()
            elif word == "vgroups":
                self.advance()
                vgroups = self.int_value()
            elif word == "buffer":
                self.advance()
                buffer = self.int_value()
            elif word in _DB_OPTIONS:
                raise not_implemented(f"database option {word.upper()}")
            else:
                raise self.error()
        return CreateDatabase(name, ine, precision, keep, duration, wal_level, vgroups, buffer)

    def duration_value(self) -> int:
        """A KEEP/DURATION value in minutes: plain days, or a number with m/h/d."""
        t = self.tok
        if t.kind == "int":
            self.advance()
            return int(t.text) * 1440
        if t.kind == "dur" and t.text[-1] in _DURATION_MINUTES:
            self.advance()
            return int(t.text[:-1]) * _DURATION_MINUTES[t.text[-1]]
        raise self.error()

    def column_def(self, allow_key: bool) -> ColumnDefAst:
        start = self.tok
        name = self.ident()
        dtype = self.data_type()
        key: str | None = None
        if allow_key and self.is_word(*self.key_keywords):
            key = self.advance().text
            self.expect("key")
        return ColumnDefAst(name, dtype, key, start.pos)

    def create_stable(self) -> CreateStable:
        ine = self.if_not_exists()
        table = self.table_name()
        self.expect_op("(")
        cols = [self.column_def(True)]
        while self.accept_op(","):
            cols.append(self.column_def(True))
        self.expect_op(")")
        self.expect("tags")
        self.expect_op("(")
        tags = [self.column_def(False)]
        while self.accept_op(","):
            tags.append(self.column_def(False))
        self.expect_op(")")
        return CreateStable(table, ine, tuple(cols), tuple(tags))

    def show(self) -> Statement:
        if self.accept("databases"):
            return ShowDatabases()
        if self.accept("create"):
            if self.accept("database"):
                return ShowCreateDatabase(self.ident())
            if self.accept("stable"):
                return ShowCreateStable(self.table_name())
            raise self.unimplemented("SHOW CREATE")
        db: str | None = None
        if not self.is_word("stables", "tables"):
            nxt = self.tokens[min(self.i + 1, len(self.tokens) - 1)]
            if not (nxt.kind == "op" and nxt.text == "."):
                raise self.unimplemented("SHOW")
            db = self.ident()
            self.expect_op(".")
        word = self.expect("stables", "tables").text
        return ShowStables(db) if word == "stables" else ShowTables(db)

    def drop(self) -> Statement:
        if self.accept("database"):
            ie = self.if_exists()
            return DropDatabase(self.ident(), ie)
        if self.accept("stable"):
            ie = self.if_exists()
            return DropStable(self.table_name(), ie)
        raise self.unimplemented("DROP")
