"""A fake taos-ws-py for the stmt2 child process: the recording fake, plus hangs and crashes.

The child gets its taos-ws-py from a picklable factory, so tests pass
``functools.partial(ChildFake, ...)``. A child is a fresh process: what must happen once
across restarts (hang, then answer after the restart) is keyed by a marker file that the
first child creates.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from tests.unit.fake_taosws import FakeTaosws, Stage

HANG_S = 600.0
"""How long a hanging call sleeps: far past any test's timeout (the child is killed)."""


@dataclass
class ChildFake(FakeTaosws):
    """:class:`FakeTaosws` whose ``stage`` hangs or exits the process, once per marker.

    ``hang_once`` / ``crash_once`` are marker paths: the first call reaching ``stage``
    creates the file and hangs (sleeps :data:`HANG_S`) or exits at once (``os._exit``,
    as a crash would); later children see the file and answer normally.
    """

    stage: Stage = "execute"
    hang_once: str | None = None
    crash_once: str | None = None
    hang_always: bool = False
    noisy: bool = False
    """Print, log and warn at ``stage`` (a child must show none of it)."""

    def fail(self, stage: Stage) -> None:
        if stage == self.stage and self.noisy:
            print("noise on stdout")
            print("noise on stderr", file=sys.stderr, flush=True)
            os.write(2, b"noise on fd 2\n")
            logging.getLogger("taosws").error("noise logged")
            warnings.warn("noise warned", stacklevel=1)
        if stage == self.stage:
            if self.hang_always or _first(self.hang_once):
                time.sleep(HANG_S)
            if _first(self.crash_once):
                os._exit(70)
        super().fail(stage)


def _first(marker: str | None) -> bool:
    if marker is None:
        return False
    try:
        Path(marker).touch(exist_ok=False)
    except FileExistsError:
        return False
    return True
