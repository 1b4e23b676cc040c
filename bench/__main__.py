"""``python -m bench``: every benchmark in turn (core, TDengine statements, worker, replay,
audit, and with ``TDENGINE_URL`` the write paths' server ceiling)."""

import os
import sys

from bench import (
    bench_audit,
    bench_core,
    bench_replay,
    bench_tdengine,
    bench_worker,
    bench_write_paths,
)

bench_core.main([])
bench_tdengine.main([])
codes = [bench_worker.main([]), bench_replay.main([]), bench_audit.main([])]
if os.environ.get("TDENGINE_URL"):
    codes.append(bench_write_paths.main([]))
sys.exit(max(codes))
