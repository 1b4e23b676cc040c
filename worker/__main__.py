"""``python -m worker``: the ``balance-sink`` command."""

import sys

from worker.commands.cli import main

sys.exit(main())
