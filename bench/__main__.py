"""``python -m bench``: every benchmark in turn (core, TDengine statements, worker, replay,
audit)."""

import sys

from bench import bench_audit, bench_core, bench_replay, bench_tdengine, bench_worker

bench_core.main([])
bench_tdengine.main([])
codes = [bench_worker.main([]), bench_replay.main([]), bench_audit.main([])]
sys.exit(max(codes))
