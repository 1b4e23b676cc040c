"""An in-repo stand-in for TDengine's REST API (taosAdapter ``/rest/sql``), for tests and demos.

It is not TDengine. It answers the SQL subset balance-sink sends with taosAdapter's exact
JSON, measured against REST traffic recorded from a real TDengine 3.3.6.6
(``tests/tdengine_conformance/recorded``: all 408 recorded steps match). It never answers
success with invented data:

- SQL it cannot parse is ``0x2600 syntax error near "<rest>"``, as TDengine says;
- SQL TDengine accepts but the stand-in does not implement (other statements, JOIN,
  INTERVAL, arithmetic, functions beyond the list below, database options it ignores...)
  is **0x0100** (TDengine's "Operation not supported") with a desc that starts
  ``not implemented by the TDengine stand-in:`` and names what is missing.

Supported statements (identifiers bare or backquoted, ``db.`` prefix or ``/rest/sql/<db>``;
a statement ends at its first ``;`` and the rest is not read):

- ``CREATE DATABASE [IF NOT EXISTS] db [PRECISION 'ms'|'us'|'ns'] [KEEP v[,v[,v]]]
  [DURATION v] [WAL_LEVEL n] [VGROUPS n] [BUFFER n]``; ``DROP DATABASE [IF EXISTS]``;
  ``SHOW DATABASES``; ``SHOW CREATE DATABASE``; ``USE db`` (no effect, REST is stateless).
- ``CREATE STABLE [IF NOT EXISTS] db.st (ts TIMESTAMP, k BIGINT COMPOSITE|PRIMARY KEY, ...)
  TAGS (...)``; types TIMESTAMP, BOOL, [UNSIGNED] TINYINT/SMALLINT/INT/BIGINT, FLOAT,
  DOUBLE, VARCHAR/BINARY(n), NCHAR(n); ``DROP STABLE``; ``SHOW [db.]STABLES``;
  ``SHOW [db.]TABLES``; ``DESCRIBE db.t``; ``SHOW CREATE STABLE db.st``.
- ``INSERT INTO`` with any number of clauses ``db.t [USING db.st [(tags)] TAGS (...)]
  [(cols)] VALUES (...)...`` and the super-table form ``db.st (tbname, ..., ts, ...)``.
- ``DELETE FROM db.t [WHERE <comparisons of the timestamp column, ANDed>]``.
- ``SELECT`` of integer constants and ``SERVER_VERSION()`` without FROM; single-table
  ``SELECT [DISTINCT]`` of columns, tags, ``tbname``, ``*``, COUNT/SUM/MIN/MAX/AVG,
  ``LAST_ROW(*|col)``, ``CAST(x AS BIGINT)``, ``[AS] alias`` with WHERE (comparisons,
  AND/OR/NOT, IN, BETWEEN, IS [NOT] NULL), PARTITION BY, GROUP BY, ORDER BY, LIMIT/OFFSET;
  ``information_schema.ins_databases``.

Confirmed by the recording (3.3.6.6, default configuration): ``SHOW DATABASES`` has one
column, ``name``, and the precision is in ``ins_databases``; ``DESCRIBE`` has 7 columns
and the key column's note is ``COMPOSITE KEY`` even when created with ``PRIMARY KEY``
(both keywords are accepted); a wrong password is HTTP 200 + code 855; BIGINT out of range
is ``invalid bigint data``; a BIGINT ``SUM`` wraps silently (2^63-1 twice gives -2);
``MIN(ts)`` is 0x2802; COUNT over no rows gives one 0 row, SUM over no rows no row and
over only NULLs one NULL row; GROUP BY on tags gives a group per table with COUNT 0 when
none of its rows match; ``DELETE`` with a non-time condition is 0x2655; a missing table
is "Fail to get table info, error: Table does not exist" for a query and "Table does not
exist" for DESCRIBE (0x2603); a query on a missing database is 0x0388 "Fail to get table
info, error: Database not exist"; an unknown database in the URL is ignored (then 0x2616
"Database not specified"); ``SELECT 1; SELECT 2`` answers the first; ``tbname`` in a
result is VARCHAR(270); ``SERVER_VERSION()`` is VARCHAR as long as the version.

Choices on points the recording leaves UNCONFIRMED (each pinned by a test): a row outside
the KEEP window fails the whole statement and nothing of it is stored (nor its USING
subtables); the write window uses the first KEEP value; ``MAX(ts)`` fails like
``MIN(ts)``; an empty tag group gives no row when the query has no COUNT (as an empty
ungrouped aggregate); encode/compress of SMALLINT, unsigned, FLOAT, DOUBLE, VARCHAR and
NCHAR columns follow TDengine's compression docs; DDL without a database is 0x2616; the
system databases' ``ins_databases`` values other than ``name`` and ``precision`` ('ms')
were not recorded, so a query that would show them is 0x0100; behaviour of emulated
server versions before 3.3.6.6 (``--server-version``) comes from documentation only.
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
