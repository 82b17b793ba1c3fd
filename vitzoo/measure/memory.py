"""Peak memory of a block (CPU resident set, CUDA max-allocated), and out-of-memory: recognised, then freed."""

from __future__ import annotations

import gc
import threading

import torch

from vitzoo.machine import current_rss


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
