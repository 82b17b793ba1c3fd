"""Many processes, one result: torch.distributed sharding of evaluation, features and benchmarks, and ``--nproc``."""

from __future__ import annotations

from vitzoo.lazy import lazy_exports

# Public name -> defining module, imported on first use (as ``vitzoo``'s own names): importing the package
# stays cheap.
_API = {
    "evaluate_sharded": "vitzoo.parallel.sharded",
    "bench_data_parallel": "vitzoo.parallel.sharded",
    "bench_sweep": "vitzoo.parallel.sharded",
    "process_group": "vitzoo.parallel.distributed",
}
__all__ = sorted([*_API])

__getattr__, __dir__ = lazy_exports(__name__, _API)
