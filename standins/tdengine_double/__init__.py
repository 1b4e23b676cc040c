"""An in-repo stand-in for TDengine's REST API (taosAdapter ``/rest/sql``), for tests and demos.

It is not TDengine. It accepts the SQL subset balance-sink sends, answers with
taosAdapter's exact JSON shapes, and never accepts what a real server would reject:
anything outside the subset is ``0x2600 syntax error near "<rest>"``.

Supported statements (identifiers bare or backquoted, ``db.`` prefix or ``/rest/sql/<db>``):

- ``CREATE DATABASE [IF NOT EXISTS] db [PRECISION 'ms'|'us'|'ns'] [KEEP v[,v[,v]]]
  [DURATION v] [WAL_LEVEL n] [VGROUPS n] [BUFFER n]``; ``DROP DATABASE [IF EXISTS]``;
  ``SHOW DATABASES``; ``USE db`` (no effect, REST is stateless).
- ``CREATE STABLE [IF NOT EXISTS] db.st (ts TIMESTAMP, k BIGINT COMPOSITE KEY, ...)
  TAGS (...)`` (``PRIMARY KEY`` before server version 3.3.6.3); types TIMESTAMP, BOOL,
  [UNSIGNED] TINYINT/SMALLINT/INT/BIGINT, FLOAT, DOUBLE, VARCHAR/BINARY(n), NCHAR(n);
  ``DROP STABLE``; ``SHOW [db.]STABLES``; ``SHOW [db.]TABLES``; ``DESCRIBE db.t``.
- ``INSERT INTO`` with any number of clauses ``db.t [USING db.st [(tags)] TAGS (...)]
  [(cols)] VALUES (...)...`` and the super-table form ``db.st (tbname, ..., ts, ...)``.
- ``SELECT SERVER_VERSION()`` and single-table ``SELECT`` of columns, tags, ``tbname``,
  ``*``, COUNT/SUM/MIN/MAX/AVG, ``CAST(x AS BIGINT)``, ``[AS] alias`` with WHERE
  (comparisons, AND/OR/NOT, IN, BETWEEN, IS [NOT] NULL), GROUP BY, ORDER BY, LIMIT/OFFSET.

Choices on points the fact sheet leaves UNCONFIRMED (each pinned by a test): a wrong
password is HTTP 200 + code 855; ``PRIMARY KEY`` is refused from 3.3.6.3 on; a row
outside the KEEP window fails the whole statement and nothing of it is stored (nor
its USING subtables); the write window uses the first KEEP value; BIGINT out of range
is ``invalid bigint data``; a SUM that overflows BIGINT fails with 0x0224 (TDengine
wraps; ``sum_overflow="wrap"`` imitates that); COUNT over no rows gives one 0 row and
other aggregates give no row; SELECT/DDL without a database is 0x2616.
"""

from standins.tdengine_double.cli import main
from standins.tdengine_double.engine import DEFAULT_SERVER_VERSION, MAX_SQL_BYTES, Engine
from standins.tdengine_double.errors import TDengineError
from standins.tdengine_double.server import TDengineDouble

__all__ = (
    "DEFAULT_SERVER_VERSION",
    "MAX_SQL_BYTES",
    "Engine",
    "TDengineDouble",
    "TDengineError",
    "main",
)


def __dir__() -> tuple[str, ...]:
    return __all__
