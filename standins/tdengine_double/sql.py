"""Tokenizer and parser of the SQL subset the stand-in accepts.

taosc lower-cases a statement outside quotes before parsing it, so every error message
quotes the lower-cased text; :func:`lower_outside_quotes` does the same here. Anything
outside the subset is rejected with 0x2600 ``syntax error near "<rest>"``, quoting the
statement from the token where this parser gave up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from standins.tdengine_double.catalog import DataType, make_type
from standins.tdengine_double.errors import TDengineError, par_syntax_error

__all__ = (
    "TOKEN_RE",
    "Between",
    "BinaryOp",
    "Cast",
    "ColumnDefAst",
    "ColumnRef",
    "CreateDatabase",
    "CreateStable",
    "Describe",
    "DropDatabase",
    "DropStable",
    "Expr",
    "FuncCall",
    "InList",
    "IsNull",
    "Literal",
    "Not",
    "Parser",
    "SelectItem",
    "SelectStmt",
    "ShowDatabases",
    "ShowStables",
    "ShowTables",
    "Statement",
    "TableName",
    "Token",
    "UseDatabase",
    "lower_outside_quotes",
    "tokenize",
    "unquote_string",
)

_QUOTED: Final = re.compile(
    r"""('(?:[^'\\]|\\.|'')*(?:'|$)|"(?:[^"\\]|\\.|"")*(?:"|$)|`[^`]*(?:`|$))""", re.S
)


def lower_outside_quotes(sql: str) -> str:
    """Lower-case ``sql`` except inside '...', "..." and `...` (taosc's ``strntolower``)."""
    parts = _QUOTED.split(sql)
    return "".join(p if i % 2 else p.lower() for i, p in enumerate(parts))


class Token(NamedTuple):
    """One lexical token; ``pos``/``end`` index into the lower-cased statement."""

    kind: str
    """id, qid (backquoted), str, int, float, hex, bin, dur, op, bad, eof."""
    text: str
    pos: int
    end: int


TOKEN_RE: Final = re.compile(
    r"""(?P<ws>\s+)
    |(?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    |(?P<qid>`[^`]*`)
    |(?P<hex>0x[0-9a-f]+(?![0-9a-z_]))
    |(?P<bin>0b[01]+(?![0-9a-z_]))
    |(?P<float>(?:\d+\.\d*|\.\d+)(?:e[+-]?\d+)?|\d+e[+-]?\d+)
    |(?P<dur>\d+[a-z](?![0-9a-z_]))
    |(?P<int>\d+)
    |(?P<id>[a-z_][a-z0-9_]*)
    |(?P<op><=|>=|<>|!=|==|[(),.*=<>+\-;/%])
    |(?P<bad>.)""",
    re.X | re.S,
)


def tokenize(lowered: str) -> list[Token]:
    """Split a lower-cased statement into tokens, ending with an ``eof`` token."""
    out: list[Token] = []
    append = out.append
    for m in TOKEN_RE.finditer(lowered):
        kind = m.lastgroup
        if kind == "ws" or kind is None:
            continue
        append(Token(kind, m.group(), m.start(), m.end()))
    append(Token("eof", "", len(lowered), len(lowered)))
    return out


_ESCAPES: Final[dict[str, str]] = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", '"': '"'}


def unquote_string(text: str) -> str:
    """The content of a quoted literal, with escapes resolved as TDengine's ``trimString``."""
    delim = text[0]
    body = text[1:-1]
    if "\\" not in body and delim * 2 not in body:
        return body
    out: list[str] = []
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        if ch == delim and i + 1 < n and body[i + 1] == delim:
            out.append(delim)
            i += 2
            continue
        if ch == "\\" and i + 1 < n:
            nxt = body[i + 1]
            if nxt in "%_x":
                out.append(ch + nxt)
            else:
                out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


RESERVED: Final = frozenset(
    (
        "all",
        "and",
        "as",
        "asc",
        "between",
        "bigint",
        "binary",
        "bool",
        "by",
        "cast",
        "composite",
        "count",
        "create",
        "database",
        "databases",
        "desc",
        "describe",
        "distinct",
        "double",
        "drop",
        "duration",
        "exists",
        "float",
        "from",
        "group",
        "if",
        "in",
        "insert",
        "int",
        "into",
        "is",
        "keep",
        "key",
        "like",
        "limit",
        "max",
        "min",
        "nchar",
        "not",
        "now",
        "null",
        "offset",
        "or",
        "order",
        "precision",
        "primary",
        "select",
        "show",
        "smallint",
        "stable",
        "stables",
        "sum",
        "table",
        "tables",
        "tag",
        "tags",
        "timestamp",
        "tinyint",
        "today",
        "union",
        "unsigned",
        "use",
        "user",
        "using",
        "value",
        "values",
        "varchar",
        "where",
    )
)
"""Keywords that cannot be used as bare identifiers (a subset of TDengine's list)."""


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class TableName:
    """A possibly db-qualified table name."""

    db: str | None
    name: str
    pos: int
    end: int


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """A column, tag or ``tbname`` reference."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant; ``kind`` is int, float, str, bool or null."""

    value: object
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class FuncCall:
    """count/sum/min/max/avg/server_version; ``star`` for ``count(*)``."""

    name: str
    args: tuple[Expr, ...]
    star: bool
    text: str


@dataclass(frozen=True, slots=True)
class Cast:
    """``CAST(expr AS type)``."""

    expr: Expr
    type: DataType
    text: str


@dataclass(frozen=True, slots=True)
class BinaryOp:
    """A comparison (= != < <= > >=) or AND/OR."""

    op: str
    left: Expr
    right: Expr
    text: str


@dataclass(frozen=True, slots=True)
class Not:
    """``NOT expr``."""

    expr: Expr
    text: str


@dataclass(frozen=True, slots=True)
class InList:
    """``expr [NOT] IN (v, ...)``."""

    expr: Expr
    values: tuple[Literal, ...]
    negated: bool
    text: str


@dataclass(frozen=True, slots=True)
class IsNull:
    """``expr IS [NOT] NULL``."""

    expr: Expr
    negated: bool
    text: str


@dataclass(frozen=True, slots=True)
class Between:
    """``expr [NOT] BETWEEN lo AND hi``."""

    expr: Expr
    low: Expr
    high: Expr
    negated: bool
    text: str


Expr = ColumnRef | Literal | FuncCall | Cast | BinaryOp | Not | InList | IsNull | Between


@dataclass(frozen=True, slots=True)
class SelectItem:
    """One output expression, its alias and its original text."""

    expr: Expr
    alias: str | None
    text: str


@dataclass(slots=True)
class SelectStmt:
    """A single-table SELECT."""

    items: list[SelectItem]
    star: bool
    table: TableName | None
    where: Expr | None = None
    group_by: list[Expr] = field(default_factory=list)
    order_by: list[tuple[Expr, bool]] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class CreateDatabase:
    """``CREATE DATABASE`` with the options the stand-in understands (minutes for times)."""

    name: str
    if_not_exists: bool
    precision: str | None
    keep_minutes: tuple[int, ...] | None
    duration_minutes: int | None
    wal_level: int | None
    vgroups: int | None
    buffer: int | None


@dataclass(frozen=True, slots=True)
class ColumnDefAst:
    """A column or tag definition as written."""

    name: str
    type: DataType
    key_keyword: str | None
    """``primary`` or ``composite`` when the column carries a key clause."""
    pos: int


@dataclass(frozen=True, slots=True)
class CreateStable:
    """``CREATE STABLE``."""

    table: TableName
    if_not_exists: bool
    columns: tuple[ColumnDefAst, ...]
    tags: tuple[ColumnDefAst, ...]


@dataclass(frozen=True, slots=True)
class ShowDatabases:
    """``SHOW DATABASES``."""


@dataclass(frozen=True, slots=True)
class ShowStables:
    """``SHOW [db.]STABLES``."""

    db: str | None


@dataclass(frozen=True, slots=True)
class ShowTables:
    """``SHOW [db.]TABLES``."""

    db: str | None


@dataclass(frozen=True, slots=True)
class Describe:
    """``DESCRIBE [db.]table``."""

    table: TableName


@dataclass(frozen=True, slots=True)
class DropDatabase:
    """``DROP DATABASE [IF EXISTS] db``."""

    name: str
    if_exists: bool


@dataclass(frozen=True, slots=True)
class DropStable:
    """``DROP STABLE [IF EXISTS] [db.]st``."""

    table: TableName
    if_exists: bool


@dataclass(frozen=True, slots=True)
class UseDatabase:
    """``USE db`` (accepted, has no effect over stateless REST)."""

    name: str


Statement = (
    SelectStmt
    | CreateDatabase
    | CreateStable
    | ShowDatabases
    | ShowStables
    | ShowTables
    | Describe
    | DropDatabase
    | DropStable
    | UseDatabase
)

_CMP_OPS: Final = frozenset({"=", "==", "!=", "<>", "<", "<=", ">", ">="})
_AGGREGATES: Final = frozenset({"count", "sum", "min", "max", "avg"})
_DURATION_MINUTES: Final[dict[str, int]] = {"m": 1, "h": 60, "d": 1440}


class Parser:
    """Recursive-descent parser over the tokens of one lower-cased statement."""

    def __init__(
        self, lowered: str, tokens: list[Token] | None = None, *, pk_keyword: str = "composite"
    ) -> None:
        self.sql = lowered
        self.tokens = tokens if tokens is not None else tokenize(lowered)
        self.i = 0
        self.pk_keyword = pk_keyword
        """The composite-key keyword this server version accepts (the other is an error)."""

    # ------------------------------------------------------------- helpers
    @property
    def tok(self) -> Token:
        """The current token."""
        return self.tokens[self.i]

    def advance(self) -> Token:
        """Consume and return the current token."""
        t = self.tokens[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    def error(self, at: Token | None = None) -> TDengineError:
        """0x2600 quoting the statement from ``at`` (default: the current token)."""
        t = at or self.tok
        return par_syntax_error(self.sql[t.pos :])

    def is_word(self, *words: str) -> bool:
        """Whether the current token is one of ``words`` (unquoted)."""
        t = self.tok
        return t.kind == "id" and t.text in words

    def accept(self, *words: str) -> bool:
        """Consume the current token if it is one of ``words``."""
        if self.is_word(*words):
            self.i += 1
            return True
        return False

    def expect(self, *words: str) -> Token:
        """Consume one of ``words`` or fail with 0x2600."""
        if not self.is_word(*words):
            raise self.error()
        return self.advance()

    def accept_op(self, op: str) -> bool:
        """Consume the operator ``op`` if it is next."""
        t = self.tok
        if t.kind == "op" and t.text == op:
            self.i += 1
            return True
        return False

    def expect_op(self, op: str) -> Token:
        """Consume the operator ``op`` or fail with 0x2600."""
        t = self.tok
        if t.kind == "op" and t.text == op:
            self.i += 1
            return t
        raise self.error()

    def ident(self) -> str:
        """An identifier: bare (not reserved) or backquoted (case kept, no dots)."""
        t = self.tok
        if t.kind == "id" and t.text not in RESERVED:
            self.i += 1
            return t.text
        if t.kind == "qid" and len(t.text) > 2 and "." not in t.text:
            self.i += 1
            return t.text[1:-1]
        raise self.error()

    def table_name(self) -> TableName:
        """``name`` or ``db.name``."""
        start = self.tok
        first = self.ident()
        if self.tok.kind == "op" and self.tok.text == ".":
            self.i += 1
            second = self.ident()
            return TableName(first, second, start.pos, self.tokens[self.i - 1].end)
        return TableName(None, first, start.pos, self.tokens[self.i - 1].end)

    def end_of_statement(self) -> None:
        """Allow one trailing ``;`` and nothing after it."""
        self.accept_op(";")
        if self.tok.kind != "eof":
            raise self.error()

    def text_from(self, start: Token) -> str:
        """Statement text from ``start`` to the last consumed token."""
        return self.sql[start.pos : self.tokens[self.i - 1].end]

    # ---------------------------------------------------------- statements
    def statement(self) -> Statement:
        """Parse one non-INSERT statement."""
        t = self.tok
        if self.accept("select"):
            stmt: Statement = self.select_body()
        elif self.accept("create"):
            if self.accept("database"):
                stmt = self.create_database()
            elif self.accept("stable"):
                stmt = self.create_stable()
            else:
                raise self.error()
        elif self.accept("show"):
            stmt = self.show()
        elif self.accept("describe", "desc"):
            stmt = Describe(self.table_name())
        elif self.accept("drop"):
            stmt = self.drop()
        elif self.accept("use"):
            stmt = UseDatabase(self.ident())
        else:
            raise self.error(t)
        self.end_of_statement()
        return stmt

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
            else:
                raise self.error()
        return CreateDatabase(name, ine, precision, keep, duration, wal_level, vgroups, buffer)

    def int_value(self) -> int:
        t = self.tok
        if t.kind != "int":
            raise self.error()
        self.advance()
        return int(t.text)

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

    def data_type(self) -> DataType:
        t = self.tok
        if t.kind != "id":
            raise self.error()
        word = t.text
        if word in ("tinyint", "smallint", "int", "bigint"):
            self.advance()
            name = "INT" if word == "int" else word.upper()
            if self.accept("unsigned"):
                name += " UNSIGNED"
            return make_type(name)
        if word in ("timestamp", "bool", "float", "double"):
            self.advance()
            return make_type(word.upper())
        if word in ("varchar", "binary", "nchar"):
            self.advance()
            self.expect_op("(")
            n = self.tok
            if n.kind != "int":
                raise self.error()
            self.advance()
            self.expect_op(")")
            return make_type(word.upper(), int(n.text))
        raise self.error()

    def column_def(self, allow_key: bool) -> ColumnDefAst:
        start = self.tok
        name = self.ident()
        dtype = self.data_type()
        key: str | None = None
        if allow_key and self.is_word(self.pk_keyword):
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
        db: str | None = None
        if not self.is_word("stables", "tables"):
            start = self.tok
            nxt = self.tokens[self.i + 1]
            if not (nxt.kind == "op" and nxt.text == "."):
                raise self.error(start)
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
        raise self.error()

    # -------------------------------------------------------------- select
    def select_body(self) -> SelectStmt:
        items: list[SelectItem] = []
        star = False
        if self.accept_op("*"):
            star = True
        else:
            items.append(self.select_item())
            while self.accept_op(","):
                items.append(self.select_item())
        table: TableName | None = None
        if self.accept("from"):
            table = self.table_name()
        stmt = SelectStmt(items, star, table)
        if table is None:
            if star or (self.tok.kind != "eof" and not self.is_op(";")):
                raise self.error()
            return stmt
        if self.accept("where"):
            stmt.where = self.expr()
        if self.accept("group"):
            self.expect("by")
            stmt.group_by.append(self.expr())
            while self.accept_op(","):
                stmt.group_by.append(self.expr())
        if self.accept("order"):
            self.expect("by")
            while True:
                e = self.expr()
                desc = False
                if self.accept("desc"):
                    desc = True
                else:
                    self.accept("asc")
                stmt.order_by.append((e, desc))
                if not self.accept_op(","):
                    break
        if self.accept("limit"):
            stmt.limit = self.int_value()
            if self.accept("offset"):
                stmt.offset = self.int_value()
        return stmt

    def is_op(self, op: str) -> bool:
        t = self.tok
        return t.kind == "op" and t.text == op

    def select_item(self) -> SelectItem:
        start = self.tok
        e = self.expr()
        text = self.text_from(start)
        alias: str | None = None
        bare_alias = self.tok.kind == "qid" or (
            self.tok.kind == "id" and self.tok.text not in RESERVED
        )
        if self.accept("as") or bare_alias:
            alias = self.ident()
        return SelectItem(e, alias, text)

    def expr(self) -> Expr:
        start = self.tok
        left = self.and_expr()
        while self.accept("or"):
            right = self.and_expr()
            left = BinaryOp("or", left, right, self.text_from(start))
        return left

    def and_expr(self) -> Expr:
        start = self.tok
        left = self.not_expr()
        while self.accept("and"):
            right = self.not_expr()
            left = BinaryOp("and", left, right, self.text_from(start))
        return left

    def not_expr(self) -> Expr:
        start = self.tok
        if self.accept("not"):
            inner = self.not_expr()
            return Not(inner, self.text_from(start))
        return self.predicate()

    def predicate(self) -> Expr:
        start = self.tok
        left = self.primary()
        t = self.tok
        if t.kind == "op" and t.text in _CMP_OPS:
            self.advance()
            right = self.primary()
            op = "=" if t.text == "==" else ("!=" if t.text == "<>" else t.text)
            return BinaryOp(op, left, right, self.text_from(start))
        negated = False
        if self.is_word("not") and self.tokens[self.i + 1].kind == "id":
            nxt = self.tokens[self.i + 1].text
            if nxt in ("in", "between"):
                self.advance()
                negated = True
        if self.accept("in"):
            self.expect_op("(")
            values = [self.literal()]
            while self.accept_op(","):
                values.append(self.literal())
            self.expect_op(")")
            return InList(left, tuple(values), negated, self.text_from(start))
        if self.accept("between"):
            low = self.primary()
            self.expect("and")
            high = self.primary()
            return Between(left, low, high, negated, self.text_from(start))
        if negated:
            raise self.error()
        if self.accept("is"):
            neg = self.accept("not")
            self.expect("null")
            return IsNull(left, neg, self.text_from(start))
        return left

    def literal(self) -> Literal:
        start = self.tok
        sign = ""
        if (
            start.kind == "op"
            and start.text in "+-"
            and self.tokens[self.i + 1].kind
            in (
                "int",
                "float",
            )
        ):
            sign = "-" if start.text == "-" else ""
            self.advance()
        t = self.tok
        if t.kind == "int":
            self.advance()
            return Literal(int(sign + t.text), "int", self.text_from(start))
        if t.kind in ("hex", "bin"):
            self.advance()
            return Literal(int(t.text, 0), "int", self.text_from(start))
        if t.kind == "float":
            self.advance()
            return Literal(float(sign + t.text), "float", self.text_from(start))
        if sign:
            raise self.error()
        if t.kind == "str":
            self.advance()
            return Literal(unquote_string(t.text), "str", t.text)
        if t.kind == "id" and t.text in ("true", "false"):
            self.advance()
            return Literal(t.text == "true", "bool", t.text)
        if t.kind == "id" and t.text == "null":
            self.advance()
            return Literal(None, "null", t.text)
        raise self.error()

    def primary(self) -> Expr:
        start = self.tok
        if self.accept_op("("):
            inner = self.expr()
            self.expect_op(")")
            return inner
        if start.kind in ("int", "float", "str", "hex", "bin") or (
            start.kind == "op" and start.text in "+-"
        ):
            return self.literal()
        if start.kind == "id" and start.text in ("true", "false", "null"):
            return self.literal()
        if start.kind == "id" and self.tokens[self.i + 1].kind == "op":
            nxt = self.tokens[self.i + 1].text
            if nxt == "(" and start.text == "cast":
                self.i += 2
                inner = self.expr()
                self.expect("as")
                target = self.data_type()
                self.expect_op(")")
                return Cast(inner, target, self.text_from(start))
            if nxt == "(" and (start.text in _AGGREGATES or start.text == "server_version"):
                self.i += 2
                if start.text == "server_version":
                    self.expect_op(")")
                    return FuncCall("server_version", (), False, self.text_from(start))
                if start.text == "count" and self.accept_op("*"):
                    self.expect_op(")")
                    return FuncCall("count", (), True, self.text_from(start))
                arg = self.expr()
                self.expect_op(")")
                return FuncCall(start.text, (arg,), False, self.text_from(start))
        if start.kind == "id" and start.text == "tbname":
            self.advance()
            return ColumnRef("tbname", start.text)
        name = self.ident()
        if self.is_op(".") and self.tokens[self.i + 1].kind in ("id", "qid"):
            # qualified column: table.column (the qualifier is checked by the planner)
            self.advance()
            t = self.tok
            if t.kind == "id" and t.text == "tbname":
                self.advance()
                name = "tbname"
            else:
                name = self.ident()
        return ColumnRef(name, self.text_from(start))
