"""Which INSERTs TDengine reads with its VALUES parser, and how the grammar fails the rest.

taosc hands an INSERT to its fast VALUES parser (:mod:`standins.tdengine_double.insert`)
only when a ``USING``, ``VALUES`` or ``FILE`` token comes before any ``SELECT``
(``qIsInsertValuesSql``). Any other INSERT is parsed by the SQL grammar as ``INSERT
INTO full_table_name [(col_name_list)] query``, so a misspelt ``VALUE``, or a statement
that stops after the table name, fails there: 0x2600 ``syntax error near "<rest>"`` at
the first token the grammar cannot take, 0x2601 ``Incomplete SQL statement`` when the
statement ended first. 3.3.6.13 answers so, and before it looks up any table.
"""

from __future__ import annotations

from typing import Final

from standins.tdengine_double.errors import TDengineError, not_implemented, par_syntax_error
from standins.tdengine_double.lexer import RESERVED, TOKEN_RE, Token, tokenize

__all__ = ("insert_query_error", "is_insert_values")

_VALUES_WORDS: Final = frozenset({"using", "values", "file"})
_KEYWORDS: Final = RESERVED | {"tbname", "file", "tags", "using", "values", "import"}
"""Words the grammar reads as keywords, never as a column or table name."""


def is_insert_values(lowered: str) -> bool:
    """Whether a ``USING``, ``VALUES`` or ``FILE`` token comes before any ``SELECT``.

    Scans lazily: in the INSERTs writers send, one of them is among the first tokens,
    so a statement of megabytes is not tokenized here.
    """
    for match in TOKEN_RE.finditer(lowered):
        if match.lastgroup != "id":
            continue
        word = match.group()
        if word in _VALUES_WORDS:
            return True
        if word == "select":
            return False
    return False


def insert_query_error(lowered: str) -> TDengineError:
    """The grammar's error for an INSERT the VALUES parser does not take."""
    tokens = tokenize(lowered)
    at = 0

    def fail(token: Token) -> TDengineError:
        return par_syntax_error(lowered[token.pos :])  # "" at eof: incomplete

    def take(*words: str) -> Token | None:
        nonlocal at
        token = tokens[at]
        if token.kind == "id" and token.text in words:
            at += 1
            return None
        return token

    def name() -> Token | None:
        nonlocal at
        token = tokens[at]
        if token.kind == "qid" or (token.kind == "id" and token.text not in _KEYWORDS):
            at += 1
            return None
        return token

    def op(text: str) -> bool:
        nonlocal at
        if tokens[at].kind == "op" and tokens[at].text == text:
            at += 1
            return True
        return False

    bad = take("insert") or take("into") or name()
    if bad is not None:
        return fail(bad)
    if op(".") and (bad := name()) is not None:
        return fail(bad)
    if op("("):
        while True:
            if (bad := name()) is not None:
                return fail(bad)
            if op(")"):
                break
            if not op(","):
                return fail(tokens[at])
    token = tokens[at]
    if token.text in ("select", "(") and token.kind in ("id", "op"):
        return not_implemented("INSERT ... SELECT")
    return fail(token)
