"""An in-repo stand-in for TDengine's REST API (taosAdapter ``/rest/sql``), for tests and demos.

It is not TDengine. It accepts the SQL subset balance-sink sends, answers with
taosAdapter's exact JSON shapes, and never accepts what a real server would reject;
anything it does not know is a syntax error. See ``docs`` in the module docstrings of
:mod:`~worker.tdengine_double.sql`, :mod:`~worker.tdengine_double.insert` and
:mod:`~worker.tdengine_double.engine` for the supported subset.
"""

from worker.tdengine_double.cli import main
from worker.tdengine_double.engine import DEFAULT_SERVER_VERSION, MAX_SQL_BYTES, Engine
from worker.tdengine_double.errors import TDengineError
from worker.tdengine_double.faults import FaultInjector
from worker.tdengine_double.server import TDengineDouble

__all__ = (
    "DEFAULT_SERVER_VERSION",
    "MAX_SQL_BYTES",
    "Engine",
    "FaultInjector",
    "TDengineDouble",
    "TDengineError",
    "main",
)


def __dir__() -> tuple[str, ...]:
    return __all__
