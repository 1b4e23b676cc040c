"""TDengine error codes and messages, as the REST layer reports them (``code & 0xffff``).

Messages follow TDengine's own formats: ``terror.c`` texts, the parser's
``getSyntaxErrFormat`` formats and ``buildSyntaxErrMsg`` (which quotes at most 63 bytes
of the statement from the offending token). Every message is cut to 511 bytes, the size
of taosc's message buffer.

:data:`NOT_IMPLEMENTED` is the stand-in's own answer for SQL a real server accepts but
the stand-in does not implement: TDengine's "Operation not supported" code with a desc
that starts ``not implemented by the TDengine stand-in:`` (see :func:`not_implemented`).
"""

from __future__ import annotations

from typing import Final

from worker.errors import BalanceSinkError

__all__ = (
    "AUTH_FAILURE",
    "DB_ALREADY_EXISTS",
    "DB_NOT_EXIST",
    "DUPLICATED_COLUMN",
    "FUNC_PARA_TYPE",
    "GET_META_ERROR",
    "GROUPBY_LACK_EXPRESSION",
    "HTTP_INVALID_AUTH_TYPE",
    "HTTP_INVALID_BASIC_AUTH",
    "HTTP_INVALID_TAOSD_AUTH",
    "HTTP_NO_AUTH_INFO",
    "HTTP_NO_MSG_INPUT",
    "HTTP_NO_SQL_INPUT",
    "HTTP_PARAM_ERROR",
    "ILLEGAL_USE_AGG_FUNCTION",
    "INCOMPLETE_SQL",
    "INCORRECT_TIMESTAMP_VAL",
    "INVALID_COLUMN",
    "INVALID_COLUMNS_NUM",
    "INVALID_DB_OPTION",
    "INVALID_DELETE_WHERE",
    "INVALID_FIRST_COLUMN",
    "INVALID_OPERATION",
    "INVALID_VAR_COLUMN_LEN",
    "NOT_IMPLEMENTED",
    "NOT_IMPLEMENTED_PREFIX",
    "NOT_SELECTED_EXPRESSION",
    "NOT_SINGLE_GROUP",
    "PAR_DB_NOT_SPECIFIED",
    "PAR_SYNTAX_ERROR",
    "PK_COLUMN_TYPE",
    "PK_IS_NULL",
    "PK_SECOND_COLUMN",
    "SQL_SYNTAX_ERROR",
    "SQL_TOO_LONG",
    "STABLE_ALREADY_EXISTS",
    "TABLE_ALREADY_EXISTS",
    "TABLE_IN_OTHER_STABLE",
    "TABLE_NOT_EXIST",
    "TAGS_NOT_MATCHED",
    "TIMESTAMP_OUT_OF_RANGE",
    "VALUE_OUT_OF_RANGE",
    "VALUE_TOO_LONG",
    "TDengineError",
    "clip_message",
    "invalid_operation",
    "not_implemented",
    "par_syntax_error",
    "sql_syntax_error",
)

# common
NOT_IMPLEMENTED: Final = 0x0100
"""``TSDB_CODE_OPS_NOT_SUPPORT``; the stand-in's answer for what it does not implement."""
NOT_IMPLEMENTED_PREFIX: Final = "not implemented by the TDengine stand-in: "
# taosc / client
INVALID_OPERATION: Final = 0x0200
SQL_SYNTAX_ERROR: Final = 0x0216
SQL_TOO_LONG: Final = 0x0219
VALUE_OUT_OF_RANGE: Final = 0x0224
# mnode
AUTH_FAILURE: Final = 0x0357
STABLE_ALREADY_EXISTS: Final = 0x0360
DB_ALREADY_EXISTS: Final = 0x0381
DB_NOT_EXIST: Final = 0x0388
# tsdb / vnode
TABLE_ALREADY_EXISTS: Final = 0x0600
TIMESTAMP_OUT_OF_RANGE: Final = 0x060B
TABLE_IN_OTHER_STABLE: Final = 0x061D
# parser
PAR_SYNTAX_ERROR: Final = 0x2600
INCOMPLETE_SQL: Final = 0x2601  # the grammar ran out of tokens (3.3.6.13 answers so)
INVALID_COLUMN: Final = 0x2602
TABLE_NOT_EXIST: Final = 0x2603
ILLEGAL_USE_AGG_FUNCTION: Final = 0x2608
GROUPBY_LACK_EXPRESSION: Final = 0x260A
NOT_SELECTED_EXPRESSION: Final = 0x260B
NOT_SINGLE_GROUP: Final = 0x260C
TAGS_NOT_MATCHED: Final = 0x260D
PAR_DB_NOT_SPECIFIED: Final = 0x2616
INVALID_DB_OPTION: Final = 0x2619
INCORRECT_TIMESTAMP_VAL: Final = 0x2635
DUPLICATED_COLUMN: Final = 0x263C
INVALID_COLUMNS_NUM: Final = 0x263F
INVALID_FIRST_COLUMN: Final = 0x2641
INVALID_VAR_COLUMN_LEN: Final = 0x2642
VALUE_TOO_LONG: Final = 0x2653  # recorded on 3.3.6.6; the docs' table says 0x2610
INVALID_DELETE_WHERE: Final = 0x2655  # recorded on 3.3.6.6
GET_META_ERROR: Final = 0x2662
PK_SECOND_COLUMN: Final = 0x2678
PK_COLUMN_TYPE: Final = 0x2679
PK_IS_NULL: Final = 0x267B
FUNC_PARA_TYPE: Final = 0x2802
# taosAdapter (HTTP layer)
HTTP_NO_AUTH_INFO: Final = 0x1105
HTTP_NO_MSG_INPUT: Final = 0x1106
HTTP_NO_SQL_INPUT: Final = 0x1107
HTTP_INVALID_AUTH_TYPE: Final = 0x1122
HTTP_INVALID_BASIC_AUTH: Final = 0x1124
HTTP_INVALID_TAOSD_AUTH: Final = 0x1125
HTTP_PARAM_ERROR: Final = 0xFFFF

_MSG_BUF_BYTES: Final = 512
"""taosc's per-request message buffer (``ERROR_MSG_BUF_DEFAULT_SIZE``), NUL included."""
_NEAR_BYTES: Final = 63
"""``buildSyntaxErrMsg`` copies at most 63 bytes of the statement into its message."""


def _cut(text: str, limit: int) -> str:
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[:limit].decode(errors="replace")


def clip_message(text: str) -> str:
    """Cut a message to what fits in taosc's 512-byte message buffer."""
    return _cut(text, _MSG_BUF_BYTES - 1)


class TDengineError(BalanceSinkError):
    """A statement failed the way TDengine would fail it: REST ``code`` plus ``desc``."""

    def __init__(self, code: int, desc: str) -> None:
        self.code = code & 0xFFFF
        self.desc = clip_message(desc)
        super().__init__(f"[0x{self.code:04x}] {self.desc}")


def sql_syntax_error(near: str | None, info: str | None) -> TDengineError:
    """0x0216 as built by ``buildSyntaxErrMsg``: ``syntax error near '<near>' (<info>)``.

    ``near`` is the statement text from the offending token (or a literal's unquoted
    content); ``None`` reproduces the form that quotes ``info`` itself.
    """
    if near is None:
        return TDengineError(SQL_SYNTAX_ERROR, f"syntax error near '{info}'")
    shown = _cut(near, _NEAR_BYTES)
    if info is None:
        return TDengineError(SQL_SYNTAX_ERROR, f"syntax error near '{shown}'")
    return TDengineError(SQL_SYNTAX_ERROR, f"syntax error near '{shown}' ({info})")


def par_syntax_error(rest: str) -> TDengineError:
    """0x2600 from the grammar: ``syntax error near "<rest of the lower-cased statement>"``;
    0x2601 ``Incomplete SQL statement`` when nothing is left (the statement ended early)."""
    if not rest:
        return TDengineError(INCOMPLETE_SQL, "Incomplete SQL statement")
    return TDengineError(PAR_SYNTAX_ERROR, f'syntax error near "{rest}"')


def invalid_operation(msg: str) -> TDengineError:
    """0x0200 with a free-text message (``buildInvalidOperationMsg``)."""
    return TDengineError(INVALID_OPERATION, msg)


def not_implemented(what: str) -> TDengineError:
    """0x0100 for SQL TDengine accepts and the stand-in does not implement (``what``)."""
    return TDengineError(NOT_IMPLEMENTED, NOT_IMPLEMENTED_PREFIX + what)
