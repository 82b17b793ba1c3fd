"""What measuring returns: ``BenchResult`` (one bench row), ``MatrixResult`` (one deployment-matrix cell),
``FlopCount`` (compute per image) and ``GemmPeak`` (the GEMM roofline). Plain frozen dataclasses, no torch: the
results store (``vitzoo.measure.records``) reads and writes them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["BenchResult", "FlopCount", "GemmPeak", "MatrixResult", "Status"]

Status = Literal["ok", "oom", "error"]


@dataclass(frozen=True)
class BenchResult:
    """One (model, batch size) measurement. Throughput in images/s, latency in ms per batch, memory in MiB.

    In train mode a pass is one training step (forward, backward, clipping, SGD update) and ``gflops`` counts the
    forward and backward passes (``vitzoo.measure.flops.counted_train_macs``)."""

    model: str
    batch_size: int
    img_size: int
    status: Status
    device: str
    dtype: str
    precision: str
    compile: bool
    channels_last: bool
    threads: int
    fused: bool = False  # vitzoo's fused CPU inference kernels ran (requested and supported)
    kernels: str = "aten"  # "fused" | "aten": the path that ran
    kernels_note: str | None = None  # why aten ran (--aten, autocast, no bf16 oneDNN on this CPU, ...)
    attention: str | None = None  # what the torch model attended with: native (vitzoo's kernel), gemms, sdpa
    backend: str = "torch"  # what ran the model: torch, onnxruntime, openvino
    params: int | None = None
    gflops: float | None = None  # per image (2 x GMACs)
    img_per_s: float | None = None  # median over rounds
    latency_ms: float | None = None  # median per batch
    latency_p90_ms: float | None = None
    latency_p99_ms: float | None = None
    tflops: float | None = None  # achieved: gflops x img_per_s / 1000
    peak_tflops: float | None = None  # measured GEMM peak for this device and dtype
    pct_peak: float | None = None  # 100 x tflops / peak_tflops
    memory_mib: float | None = None  # CUDA: max allocated; CPU: peak RSS minus RSS before the model was built
    memory_kind: str | None = None  # "cuda_max_allocated" | "cpu_rss_delta"
    compile_s: float | None = None  # first call with torch.compile
    iters: int = 0  # timed passes per round
    rounds: int = 0
    round_img_per_s: tuple[float, ...] = ()
    error: str | None = None
    note: str | None = None  # e.g. how "auto" found the batch size
    load_start: float | None = None  # 1-minute load average before the timed rounds
    load_end: float | None = None  # and after them
    other_cpu: float | None = None  # cores other processes used during the timed rounds (/proc/stat)
    contended: bool | None = None  # other work probably slowed this measurement down
    weights_sha256: str | None = None  # the file the weights came from (``model.weights_sha256``); None: random
    mode: str = "inference"  # inference: forward passes; train: forward + backward + SGD step per pass
    grad_checkpointing: bool = False  # train: activations recomputed per block in backward

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON-able) for tables, export and the results store."""
        return _timed_as_dict(self)


@dataclass(frozen=True)
class MatrixResult:
    """One cell: speed at the throughput batch and batch 1, memory, % of roofline, and fidelity to fp32 PyTorch."""

    model: str
    backend: str
    dtype: str
    method: str | None
    status: str  # ok | skipped | error
    error: str | None = None  # why it was skipped or failed
    default: bool = True  # the runtime's default way to this precision (torch int8: DEFAULT_TORCH_INT8)
    note: str | None = None
    batch_size: int = 0
    img_size: int = 0
    threads: int = 0
    params: int | None = None
    gflops: float | None = None  # per image, 2 x MACs
    img_per_s: float | None = None
    round_img_per_s: tuple[float, ...] = ()
    latency_ms: float | None = None  # median ms per pass at the throughput batch
    latency_b1_ms: float | None = None  # batch 1: median, p90, p99 over every timed pass
    latency_b1_p90_ms: float | None = None
    latency_b1_p99_ms: float | None = None
    memory_mib: float | None = None
    memory_kind: str = "cpu_rss_delta_build_and_warmup"
    tflops: float | None = None  # achieved TFLOP/s (TOP/s for int8)
    peak_tflops: float | None = None
    pct_peak: float | None = None
    peak_note: str | None = None  # why there is no roofline for this precision
    prepare_s: float | None = None  # build and quantization (calibration)
    warmup_s: float | None = None  # the warm-up passes (compilation included)
    fid_images: int | None = None
    fid_source: str | None = None
    calib_images: int | None = None
    calib_source: str | None = None
    max_abs_err: float | None = None
    mean_abs_err: float | None = None
    top1_agreement: float | None = None
    top1_accuracy: float | None = None
    ref_top1_accuracy: float | None = None
    degraded: bool | None = None
    degraded_why: str | None = None
    rounds: int = 0
    iters: int = 0
    load_start: float | None = None
    load_end: float | None = None
    other_cpu: float | None = None
    contended: bool | None = None
    weights_sha256: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON-able) for tables, export and the results store."""
        return _timed_as_dict(self)


def _timed_as_dict(result: BenchResult | MatrixResult) -> dict[str, Any]:
    """A timed result's fields as plain data, its per-round throughputs a list."""
    d = dataclasses.asdict(result)
    d["round_img_per_s"] = list(result.round_img_per_s)
    return d


@dataclass(frozen=True)
class FlopCount:
    """Compute of one forward pass, per image. ``macs`` is the counted value; ``macs_closed_form`` must equal it."""

    model: str
    img_size: int
    params: int
    macs: int  # counted with FlopCounterMode (+ EXTRA_FORMULAS)
    macs_closed_form: int  # vitzoo.zoo.analytic.count_macs
    by_op: dict[str, int] = field(default_factory=dict)  # counted MACs per aten op (convolution, addmm, ...)

    @property
    def gmacs(self) -> float:
        """Giga multiply-accumulates per image."""
        return self.macs / 1e9

    @property
    def gflops(self) -> float:
        """Giga floating-point operations per image (2 x GMACs)."""
        return 2 * self.macs / 1e9

    @property
    def agree(self) -> bool:
        """True when the counter and the closed form give the same count."""
        return self.macs == self.macs_closed_form

    def as_dict(self) -> dict[str, Any]:
        """Plain data for tables, JSON and the results store."""
        return {
            "model": self.model,
            "img_size": self.img_size,
            "params": self.params,
            "gmacs": self.gmacs,
            "gflops": self.gflops,
            "macs": self.macs,
            "macs_closed_form": self.macs_closed_form,
            "agree": self.agree,
            "by_op": dict(self.by_op),
        }


@dataclass(frozen=True)
class GemmPeak:
    """Best matmul throughput measured for a device and dtype, and what each shape and kernel reached."""

    device: str
    dtype: str
    threads: int
    tflops: float  # the peak: best over shapes and kernels
    results: tuple[tuple[str, int, int, int, float], ...]  # (kernel, M, K, N, TFLOP/s)
    measured_at: str | None = None  # when a peak reused from the cache was measured (UTC); None: measured now

    def as_dict(self) -> dict:
        """Plain data; one row per (kernel, shape) plus the peak."""
        return {
            "device": self.device,
            "dtype": self.dtype,
            "threads": self.threads,
            "peak_tflops": self.tflops,
            "results": [dict(zip(("kernel", "M", "K", "N", "tflops"), r, strict=True)) for r in self.results],
        }
