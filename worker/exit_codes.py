"""Every command's exit codes, in one place (the README's command table lists them).

- 0: done, everything asked for was done (``derive``, ``run``, ``replay``, ``audit``).
- 1: ``run`` stopped on a fatal condition; ``replay`` stopped before the end of its
  range; ``audit`` found a failed check.
- 2: bad usage, configuration, fee schedule (or, for ``replay``, a range that is gone):
  nothing was started.
- 3: ``derive`` rejected some lines; ``audit`` could not complete.
"""

from __future__ import annotations

from typing import Final

__all__ = (
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_FATAL",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_USAGE",
)

EXIT_OK: Final = 0
"""Done, and everything asked for was done."""
EXIT_FATAL: Final = 1
"""``run``: a fatal condition stopped the worker; nothing further was committed."""
EXIT_FAILED: Final = 1
"""``replay``: stopped before the end (the summary says how far); ``audit``: a check failed."""
EXIT_USAGE: Final = 2
"""Bad arguments, configuration or fee schedule: nothing was started."""
EXIT_CONFIG: Final = EXIT_USAGE
"""``run``, ``check-config``, ``init-db``: the configuration or fee schedule is invalid."""
EXIT_REJECTED: Final = 3
"""``derive``: at least one input line was rejected."""
EXIT_INCOMPLETE: Final = 3
"""``audit``: could not run to the end (TDengine or Kafka error): nothing is proven."""
