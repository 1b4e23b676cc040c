"""``python -m bench``: every benchmark in turn (core, TDengine statements, worker)."""

import sys

from bench import bench_core, bench_tdengine, bench_worker

bench_core.main([])
bench_tdengine.main([])
sys.exit(bench_worker.main([]))
