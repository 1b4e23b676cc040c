"""Expression and SELECT parsing, with the token helpers every statement parser uses."""

from __future__ import annotations

from typing import Final

from standins.tdengine_double.catalog import DataType, make_type
from standins.tdengine_double.errors import TDengineError, not_implemented, par_syntax_error
from standins.tdengine_double.lexer import RESERVED, Token, tokenize, unquote_string
from standins.tdengine_double.statements import (
    Between,
    BinaryOp,
    Cast,
    ColumnRef,
    Expr,
    FuncCall,
    InList,
    IsNull,
    Literal,
    Not,
    SelectItem,
    SelectStmt,
    TableName,
)

__all__ = ("ExprParser",)

_CMP_OPS: Final = frozenset({"=", "==", "!=", "<>", "<", "<=", ">", ">="})
_ARITHMETIC: Final = frozenset({"+", "-", "*", "/", "%"})
_AGGREGATES: Final = frozenset({"count", "sum", "min", "max", "avg"})
_FUNCTIONS: Final = _AGGREGATES | {"server_version", "last_row", "cast"}
_PATTERN_OPS: Final = frozenset({"like", "match", "nmatch", "regexp", "contains"})
UNIMPLEMENTED_WORDS: Final = frozenset(
    {
        # statements
        *("alter", "balance", "compact", "explain", "flush", "grant", "kill", "merge"),
        *("pause", "redistribute", "reset", "restore", "resume", "revoke", "split", "trim"),
        # SELECT clauses
        *("interval", "sliding", "fill", "slimit", "soffset", "session", "state_window"),
        *("event_window", "count_window", "having", "join", "inner", "left", "right", "full"),
        *("outer", "semi", "anti", "asof", "window", "union", "range", "every"),
        *("except", "intersect", "jlimit"),
    }
)
"""TDengine keywords the stand-in does not implement: met where a statement could
continue, they are answered with 0x0100 (not implemented), not with a syntax error."""
_TYPE_WORDS: Final = frozenset({"json", "varbinary", "geometry", "decimal"})
"""TDengine column types the stand-in does not implement."""


class ExprParser:
    """Recursive-descent parser over the tokens of one lower-cased statement: SELECT part."""

    def __init__(self, lowered: str, tokens: list[Token] | None = None) -> None:
        self.sql = lowered
        self.tokens = tokens if tokens is not None else tokenize(lowered)
        self.i = 0

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

    def text_from(self, start: Token) -> str:
        """Statement text from ``start`` to the last consumed token."""
        return self.sql[start.pos : self.tokens[self.i - 1].end]

    def int_value(self) -> int:
        t = self.tok
        if t.kind != "int":
            raise self.error()
        self.advance()
        return int(t.text)

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
        if word in _TYPE_WORDS:
            raise not_implemented(f"type {word.upper()}")
        raise self.error()

    # -------------------------------------------------------------- select
    def select_body(self) -> SelectStmt:
        distinct = self.accept("distinct")
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
            if self.is_op("("):
                raise not_implemented("subqueries")
            table = self.table_name()
            if self.is_op(","):
                raise not_implemented("joins")
        stmt = SelectStmt(items, star, table, distinct=distinct)
        if table is None:
            if star or distinct or (self.tok.kind != "eof" and not self.is_op(";")):
                raise self.error()
            return stmt
        if self.accept("where"):
            stmt.where = self.expr()
        if self.accept("partition"):
            self.expect("by")
            stmt.partition_by = self.expr_list()
        if self.accept("group"):
            self.expect("by")
            stmt.group_by = self.expr_list()
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
            if self.is_op(","):
                raise not_implemented("LIMIT offset, count")
            if self.accept("offset"):
                stmt.offset = self.int_value()
        return stmt

    def expr_list(self) -> list[Expr]:
        """``expr [, expr ...]``."""
        out = [self.expr()]
        while self.accept_op(","):
            out.append(self.expr())
        return out

    def end_of_statement(self) -> None:
        """A ``;`` ends the statement and what follows is never read (TDengine runs the
        first statement only); anything else left over is an error."""
        if self.accept_op(";") or self.tok.kind == "eof":
            return
        t = self.tok
        if t.kind == "id" and t.text in UNIMPLEMENTED_WORDS:
            raise not_implemented(f'{t.text.upper()} (near "{self.sql[t.pos : t.pos + 63]}")')
        raise self.error()

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
        left = self.operand()
        t = self.tok
        if t.kind == "op" and t.text in _CMP_OPS:
            self.advance()
            right = self.operand()
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
            low = self.operand()
            self.expect("and")
            high = self.operand()
            return Between(left, low, high, negated, self.text_from(start))
        if negated:
            raise self.error()
        if self.is_word(*_PATTERN_OPS):
            raise not_implemented(f"{self.tok.text.upper()} conditions")
        if self.accept("is"):
            neg = self.accept("not")
            self.expect("null")
            return IsNull(left, neg, self.text_from(start))
        return left

    def operand(self) -> Expr:
        """A primary expression; arithmetic on it is valid TDengine the stand-in lacks."""
        e = self.primary()
        t = self.tok
        if t.kind == "op" and t.text in _ARITHMETIC:
            raise not_implemented(f'arithmetic (near "{self.sql[t.pos : t.pos + 63]}")')
        return e

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
            if nxt == "(" and start.text not in _FUNCTIONS:
                raise not_implemented(f"function {start.text}()")
            if nxt == "(":
                self.i += 2
                if start.text == "server_version":
                    self.expect_op(")")
                    return FuncCall("server_version", (), False, self.text_from(start))
                if start.text in ("count", "last_row") and self.accept_op("*"):
                    self.expect_op(")")
                    return FuncCall(start.text, (), True, self.text_from(start))
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
