"""balance-sink: exact, idempotent trade-settlement ledger rows from Kafka into TDengine."""

from __future__ import annotations

__all__ = ("__version__",)


def __getattr__(name: str) -> str:
    # Read on first use: importlib.metadata costs a stmt2 sender's child, which imports
    # this package but never needs the version, 20 ms and a few MiB.
    if name != "__version__":
        raise AttributeError(f"module 'worker' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("balance-sink")
    except PackageNotFoundError:  # pragma: no cover - a source tree without install
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found
