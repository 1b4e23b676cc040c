"""``python -m standins.tdengine_double``: run the TDengine REST stand-in in the foreground."""

from standins.tdengine_double.cli import main

raise SystemExit(main())
