"""Timing one call after another: host clock (with a device sync on MPS) or CUDA events, and percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch


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


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), q in [0, 100]."""
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)
