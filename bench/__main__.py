"""``python -m bench``: every benchmark in turn."""

import sys

from bench import bench_core

sys.exit(bench_core.main(sys.argv[1:]))
