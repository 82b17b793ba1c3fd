"""One prepared model on one device: warm-up, timed rounds, and the search for the largest batch that fits.

``vitzoo.measure.bench`` drives it over models and batch sizes; this module times one batch size. Each timed run also
records the load average and the CPU time other processes took meanwhile (``vitzoo.measure.cpu.ContentionMeter``).
Time is bounded where a slow CPU (bf16 emulated on AVX2) would otherwise run for tens of minutes: the ``-b auto``
search stops growing the batch once one pass takes longer than ``BenchOptions.auto_max_pass_s``, and with
``seconds`` the warm-up stops after that many seconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vitzoo.machine import available_ram, trim_memory
from vitzoo.measure.cpu import ContentionMeter
from vitzoo.measure.memory import CpuMemoryMeter, CudaMemoryMeter, free_memory, is_oom
from vitzoo.measure.timing import make_timer, percentile

if TYPE_CHECKING:
    from vitzoo.measure.options import BenchOptions

Report = Callable[[str, int, int], None]  # (phase, step, total)


class Runner:
    """A model prepared for ``options`` (eval mode, dtype, device, memory format, compile): runs and times passes.

    The caller hands over a model it may change (``vitzoo.measure.bench`` copies the user's model first when needed).
    """

    def __init__(
        self, model: nn.Module, options: BenchOptions, img_size: int, device: torch.device, threads: int
    ) -> None:
        self.options, self.img_size, self.device, self.threads = options, img_size, device, threads
        self.memory = CudaMemoryMeter(device) if device.type == "cuda" else CpuMemoryMeter()
        if options.precision == "cast":
            model = model.to(options.torch_dtype)
        model = model.to(device)
        if options.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = torch.compile(model, dynamic=False) if options.compile else model
        self.first_call_s: float | None = None

    def inputs(self, batch: int) -> torch.Tensor:
        dtype = self.options.torch_dtype if self.options.precision == "cast" else torch.float32
        x = torch.randn(batch, 3, self.img_size, self.img_size, device=self.device).to(dtype)
        return x.contiguous(memory_format=torch.channels_last) if self.options.channels_last else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.options.precision == "autocast" and self.options.dtype != "fp32":
            with torch.autocast(self.device.type, dtype=self.options.torch_dtype):
                return self.model(x)
        return self.model(x)

    def context(self):
        """The autograd mode of a pass: inference mode (``vitzoo.measure.training`` records a graph instead)."""
        return torch.inference_mode()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def timed_pass(self, x: torch.Tensor) -> float:
        """Seconds of one synchronised pass."""
        t0 = time.perf_counter()
        self.forward(x)
        self.sync()
        return time.perf_counter() - t0

    def probe(self, batch: int) -> tuple[float | None, float]:
        """One pass at ``batch``: (memory it used in bytes or None, seconds it took). Raises on OOM."""
        x = self.inputs(batch)
        if self.device.type == "cpu":
            trim_memory()
        with self.context(), self.memory:
            self._first_call(x)
            seconds = self.timed_pass(x)
        return self.memory.peak_bytes, seconds

    def _first_call(self, x: torch.Tensor) -> None:
        if self.first_call_s is None:
            self.first_call_s = self.timed_pass(x)

    def measure(self, batch: int, report: Report) -> dict[str, Any]:
        """Warm up, then time ``rounds`` rounds; returns the measured fields of a BenchResult."""
        opt = self.options
        x = self.inputs(batch)
        if self.device.type == "cpu":
            trim_memory()
        with self.context(), self.memory:
            self._first_call(x)
            last = self.first_call_s or 0.0
            warm_start = time.perf_counter()
            for i in range(opt.warmup):
                report("warmup", i + 1, opt.warmup)
                last = self.timed_pass(x)
                if opt.seconds is not None and time.perf_counter() - warm_start >= opt.seconds:
                    break  # a slow model: enough warm-up for a time-bounded run
            iters = opt.iters
            if opt.seconds is not None:  # calibrate on the last synchronised pass
                if opt.warmup == 0:
                    last = self.timed_pass(x)
                iters = max(1, round(opt.seconds / opt.rounds / max(last, 1e-6)))
            timer = make_timer(self.device)
            latencies: list[float] = []
            rates: list[float] = []
            with ContentionMeter(self.threads) as load:
                for r in range(opt.rounds):
                    report("timing", r * iters, opt.rounds * iters)
                    per_pass, wall = timer.time(lambda: self.forward(x), iters)
                    latencies += per_pass
                    rates.append(batch * iters / wall)
            report("timing", opt.rounds * iters, opt.rounds * iters)
        contention = load.result
        assert contention is not None
        return {
            "img_per_s": statistics.median(rates),
            "round_img_per_s": tuple(rates),
            "latency_ms": 1e3 * statistics.median(latencies),
            "latency_p90_ms": 1e3 * percentile(latencies, 90),
            "latency_p99_ms": 1e3 * percentile(latencies, 99),
            "memory_mib": None if self.memory.peak_bytes is None else self.memory.peak_bytes / 2**20,
            "memory_kind": self.memory.kind,
            "iters": iters,
            "rounds": opt.rounds,
            "load_start": contention.load_start,
            "load_end": contention.load_end,
            "other_cpu": contention.other_cpu,
            "contended": contention.contended,
        }


def auto_batch(runner: Runner, options: BenchOptions, probe_report: Callable[[int], None]) -> tuple[int | None, str]:
    """Largest batch that runs: out-of-memory on CUDA/MPS; on CPU, a predicted RSS within 80% of free RAM; and
    everywhere, one pass within ``options.auto_max_pass_s`` seconds (batch 1 always qualifies)."""
    budget = available_ram() if runner.device.type == "cpu" else None
    limit = options.auto_max_pass_s
    per_image: list[float] = []
    per_image_s: list[float] = []
    failures: list[int] = []
    too_slow: list[int] = []

    def fits(batch: int) -> bool:
        if budget is not None and per_image and per_image[-1] * batch > 0.8 * budget:
            failures.append(batch)
            return False
        if batch > 1 and per_image_s and per_image_s[-1] * batch > limit:  # predicted too slow: do not run it
            too_slow.append(batch)
            return False
        probe_report(batch)
        used, seconds, oom = None, 0.0, False
        try:
            used, seconds = runner.probe(batch)
        except Exception as e:
            if not is_oom(e):
                raise
            oom = True
        if oom:
            free_memory(runner.device)
            failures.append(batch)
            return False
        if used:
            per_image.append(used / batch)
        per_image_s.append(seconds / batch)
        if batch > 1 and seconds > limit:
            too_slow.append(batch)
            return False
        return True

    found = search_batch(fits, options.max_batch)
    note = f"auto: largest batch <= {options.max_batch} that fits"
    if failures:
        note += f" (did not fit: {', '.join(map(str, sorted(failures)))})"
    if too_slow:
        note += f"; one pass kept within {limit:g} s (too slow: {', '.join(map(str, sorted(too_slow)))})"
    return found, note


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
