"""balance-sink: exact, idempotent trade-settlement ledger rows from Kafka into TDengine."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("balance-sink")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ("__version__",)
