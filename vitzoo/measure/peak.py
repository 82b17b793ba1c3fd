"""Measurement primitives (per-pass timers, peak-memory meters) and the GEMM roofline they measure.

The roofline is the matmul throughput this machine reaches for a dtype on the GEMMs of a ViT-B/16 forward pass
(batch 16 x 197 tokens: qkv, attention output, MLP in and out), through both the aten ``nn.Linear`` path and,
on CPU, oneDNN's linear; the best of them is the "peak" every benchmark result is compared with.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vitzoo.errors import ConfigError

__all__ = [
    "CpuMemoryMeter",
    "CpuTimer",
    "CudaMemoryMeter",
    "CudaTimer",
    "GemmPeak",
    "available_ram",
    "current_rss",
    "free_memory",
    "gemm_peak",
    "is_oom",
    "make_timer",
    "measure_gemm_peak",
    "num_threads",
    "percentile",
    "resolve_device",
    "search_batch",
    "trim_memory",
    "vit_gemm_shapes",
]


# -- timers --------------------------------------------------------------------------------------------


class CpuTimer:
    """Wall-clock time of each call; ``sync`` (MPS: ``torch.mps.synchronize``) ends each call on the device."""

    def __init__(self, sync: Callable[[], object] | None = None) -> None:
        self.sync = sync

    def time(self, fn: Callable[[], object], iters: int) -> tuple[list[float], float]:
        """Run ``fn`` ``iters`` times; returns (seconds per call, seconds for all)."""
        per, start = [], time.perf_counter()
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            if self.sync is not None:
                self.sync()
            per.append(time.perf_counter() - t0)
        return per, time.perf_counter() - start


class CudaTimer:
    """CUDA events around each call, one synchronisation at the end: no host stall between passes."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def time(self, fn: Callable[[], object], iters: int) -> tuple[list[float], float]:
        """Run ``fn`` ``iters`` times; returns (seconds per call, seconds for all) as measured on the GPU."""
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        torch.cuda.synchronize(self.device)
        for s, e in zip(starts, ends, strict=True):
            s.record()
            fn()
            e.record()
        torch.cuda.synchronize(self.device)
        per = [s.elapsed_time(e) / 1e3 for s, e in zip(starts, ends, strict=True)]  # elapsed_time is in ms
        return per, starts[0].elapsed_time(ends[-1]) / 1e3


def make_timer(device: torch.device) -> CpuTimer | CudaTimer:
    """The right timer for a device: CUDA events, host clock with a device sync per call (MPS), host clock."""
    if device.type == "cuda":
        return CudaTimer(device)
    return CpuTimer(torch.mps.synchronize if device.type == "mps" else None)


# -- memory --------------------------------------------------------------------------------------------


def current_rss() -> int | None:
    """Resident set size of this process in bytes (Linux ``/proc/self/statm``), or None where unknown."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class CpuMemoryMeter:
    """Peak RSS while the block runs (sampled every ``interval`` s by a thread), minus a baseline.

    The baseline is the RSS before the model was built, so the figure covers weights and activations, like
    CUDA's max-allocated. RSS also counts allocator caches, so read it as an upper bound.
    """

    kind = "cpu_rss_delta"

    def __init__(self, baseline: int | None = None, interval: float = 0.005) -> None:
        self.baseline = current_rss() if baseline is None else baseline
        self.interval = interval
        self.peak_bytes: float | None = None
        self._stop = threading.Event()
        self._max = 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._max = max(self._max, current_rss() or 0)

    def __enter__(self) -> CpuMemoryMeter:
        self._max = current_rss() or 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._max = max(self._max, current_rss() or 0)
        if self.baseline is not None and self._max:
            self.peak_bytes = max(self._max - self.baseline, 0)


class CudaMemoryMeter:
    """``torch.cuda.max_memory_allocated`` over the block (weights + activations + workspace)."""

    kind = "cuda_max_allocated"

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes: float | None = None

    def __enter__(self) -> CudaMemoryMeter:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_bytes = float(torch.cuda.max_memory_allocated(self.device))


# -- devices and memory ----------------------------------------------------------------------------------


def resolve_device(device: str) -> torch.device:
    """Check that a device string names an available device; raise ConfigError with the reason if not."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise ConfigError(f"device must be cpu, cuda, cuda:N or mps, not {device!r}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch was built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ConfigError(f"device {device!r} is not available: {why} (torch {torch.__version__})")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} is not available: {torch.cuda.device_count()} GPU(s) visible")
    if device == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' is not available on this machine")
    return torch.device(device)


def is_oom(error: BaseException) -> bool:
    """True for an out-of-memory error of any device (CUDA, MPS, or a failed CPU allocation)."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if isinstance(error, MemoryError) or (oom_type is not None and isinstance(error, oom_type)):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def free_memory(device: torch.device) -> None:
    """Return cached memory after a failure: collect garbage and empty the device allocator's cache."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def available_ram() -> int | None:
    """Free RAM in bytes (``MemAvailable`` of /proc/meminfo), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def trim_memory() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``), so that RSS deltas mean something."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# -- statistics and search -------------------------------------------------------------------------------


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``n`` CPU intra-op threads (None: unchanged); yields the count in effect."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), q in [0, 100]."""
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def search_batch(fits: Callable[[int], bool], max_batch: int) -> int | None:
    """Largest b <= max_batch with fits(b), assuming fitting is monotone: double, then bisect."""
    good, bad, b = 0, None, 1
    while b <= max_batch:
        if not fits(b):
            bad = b
            break
        good, b = b, b * 2
    if bad is None:
        if good == max_batch or fits(max_batch):
            return max_batch
        bad = max_batch
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good or None


# -- GEMM roofline ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GemmPeak:
    """Best matmul throughput measured for a device and dtype, and what each shape and kernel reached."""

    device: str
    dtype: str
    threads: int
    tflops: float  # the peak: best over shapes and kernels
    results: tuple[tuple[str, int, int, int, float], ...]  # (kernel, M, K, N, TFLOP/s)

    def as_dict(self) -> dict:
        """Plain data; one row per (kernel, shape) plus the peak."""
        return {
            "device": self.device,
            "dtype": self.dtype,
            "threads": self.threads,
            "peak_tflops": self.tflops,
            "results": [dict(zip(("kernel", "M", "K", "N", "tflops"), r, strict=True)) for r in self.results],
        }


def vit_gemm_shapes(tokens: int = 16 * 197, width: int = 768, mlp_dim: int = 3072) -> list[tuple[int, int, int]]:
    """(M, K, N) of the dense layers of one ViT block: qkv, attention output, MLP in, MLP out."""
    return [(tokens, width, 3 * width), (tokens, width, width), (tokens, width, mlp_dim), (tokens, mlp_dim, width)]


def _kernels(device: torch.device) -> dict[str, Callable]:
    """name -> prepare(x, W, b) -> call(): aten's nn.Linear path and, on CPU, oneDNN's linear (the weight plain,
    and pre-packed in its blocked layout as vitzoo's fused kernels keep it)."""
    kernels: dict[str, Callable] = {"aten": lambda x, w, b: functools.partial(F.linear, x, w, b)}
    mkldnn = getattr(torch.ops, "mkldnn", None)
    if device.type != "cpu" or not torch.backends.mkldnn.is_available() or not hasattr(mkldnn, "_linear_pointwise"):
        return kernels
    linear = torch.ops.mkldnn._linear_pointwise
    kernels["onednn"] = lambda x, w, b: functools.partial(linear, x, w, b, "none", [], "")
    if hasattr(mkldnn, "_reorder_linear_weight"):
        kernels["onednn_packed"] = lambda x, w, b: functools.partial(
            linear, x, torch.ops.mkldnn._reorder_linear_weight(w, x.shape[0]), b, "none", [], ""
        )
    return kernels


def measure_gemm_peak(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    shapes: list[tuple[int, int, int]] | None = None,
    seconds: float = 0.3,
) -> GemmPeak:
    """Time ``y = x W^T + b`` on each (M, K, N) for about ``seconds`` per shape and kernel; median per run."""
    device = torch.device(device)
    timer = make_timer(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    rows, errors = [], []
    with torch.inference_mode():
        for M, K, N in shapes or vit_gemm_shapes():
            x = torch.randn(M, K, generator=gen).to(device, dtype)
            w = (torch.randn(N, K, generator=gen) * K**-0.5).to(device, dtype)
            b = torch.randn(N, generator=gen).to(device, dtype)
            for name, prepare in _kernels(device).items():
                try:
                    call = prepare(x, w, b)
                    call()  # warm-up (and the check that the kernel takes this dtype)
                except RuntimeError as e:  # e.g. oneDNN bf16 on a CPU without AVX-512: the other kernels count
                    errors.append(f"{name}: {(str(e).strip() or type(e).__name__).splitlines()[0][:120]}")
                    continue
                once, _ = timer.time(call, 1)
                iters = max(1, min(200, round(seconds / max(once[0], 1e-6))))  # a slow (emulated) GEMM: once more
                per, _ = timer.time(call, iters)
                per = per + once if iters < 3 else per
                rows.append((name, M, K, N, 2 * M * K * N / statistics.median(per) / 1e12))
    dtype_name = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))
    if not rows:
        raise ConfigError(
            f"no matmul kernel runs in {dtype_name} on {device} ({', '.join(_kernels(device))} all failed: "
            f"{errors[-1] if errors else 'no shapes'})"
        )
    return GemmPeak(str(device), dtype_name, torch.get_num_threads(), max(r[-1] for r in rows), tuple(rows))


@functools.lru_cache(maxsize=16)
def _cached_peak(device: str, dtype: torch.dtype, threads: int) -> GemmPeak:
    return measure_gemm_peak(device, dtype)


def gemm_peak(device: str | torch.device, dtype: torch.dtype) -> GemmPeak:
    """The GEMM peak for (device, dtype, current threads), measured once per process."""
    return _cached_peak(str(torch.device(device)), dtype, torch.get_num_threads())
