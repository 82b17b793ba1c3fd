"""Measuring: the bench harness and its backends, the GEMM roofline, FLOP counts, the machine, the results store."""

from __future__ import annotations

from vitzoo.lazy import lazy_exports

# Public name -> defining module, imported on first use (as ``vitzoo``'s own names): importing the package
# stays cheap.
_API = {
    "BenchOptions": "vitzoo.measure.bench",
    "BenchResult": "vitzoo.measure.bench",
    "bench_models": "vitzoo.measure.bench",
    "benchmark_model": "vitzoo.measure.bench",
    "iter_bench": "vitzoo.measure.bench",
    "count_flops": "vitzoo.measure.flops",
    "counted_macs": "vitzoo.measure.flops",
    "ResultStore": "vitzoo.measure.store",
    "set_fused_kernels": "vitzoo.measure.fused",
    "fuse_for_cpu": "vitzoo.measure.fused",
    "unfuse": "vitzoo.measure.fused",
    "gemm_peak": "vitzoo.measure.roofline",
    "measure_gemm_peak": "vitzoo.measure.roofline",
    "run_matrix": "vitzoo.measure.matrix",
    "MatrixOptions": "vitzoo.measure.matrix",
}
__all__ = sorted([*_API])

__getattr__, __dir__ = lazy_exports(__name__, _API)
