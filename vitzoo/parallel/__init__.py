"""Many processes, one result: torch.distributed sharding of evaluation, features and benchmarks, and ``--nproc``."""

from __future__ import annotations

import importlib

# Public name -> defining module, imported on first use (as ``vitzoo``'s own names): importing the package
# stays cheap.
_API = {
    "evaluate_sharded": "vitzoo.parallel.sharded",
    "bench_data_parallel": "vitzoo.parallel.sharded",
    "bench_sweep": "vitzoo.parallel.sharded",
    "process_group": "vitzoo.parallel.distributed",
}
__all__ = sorted([*_API])


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
