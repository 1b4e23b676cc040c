"""``python -m worker.tdengine_double``: run the TDengine REST stand-in in the foreground."""

from worker.tdengine_double.cli import main

raise SystemExit(main())
