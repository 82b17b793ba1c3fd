"""Inference timing harness: throughput, latency percentiles, peak memory, achieved TFLOP/s and % of GEMM peak.

Method: build the model once per name; for each batch size, warm up (this includes ``torch.compile``), then run
``rounds`` timed rounds of ``iters`` forward passes under ``torch.inference_mode``. Every pass is timed on its own
(CUDA events recorded around it, one synchronisation per round; ``perf_counter`` on CPU), so latency is per batch
and throughput is the median over rounds of ``batch x iters / round time``. CUDA out-of-memory is recorded as an
``oom`` result for that batch size, memory is freed and the run goes on; ``batch_sizes="auto"`` searches the
largest batch that fits. A model that fails for another reason gives an ``error`` result; the others still run.

Nothing here prints: progress goes to an optional callback, results are frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from vitzoo.errors import ConfigError
from vitzoo.loading import DTYPES
from vitzoo.models.layers import set_fused_kernels
from vitzoo.peak import (
    CpuMemoryMeter,
    CudaMemoryMeter,
    available_ram,
    current_rss,
    free_memory,
    gemm_peak,
    is_oom,
    make_timer,
    num_threads,
    percentile,
    resolve_device,
    search_batch,
    trim_memory,
)

__all__ = ["DTYPES", "BenchOptions", "BenchResult", "Progress", "bench_models", "benchmark_model",
           "is_oom", "parse_batch_sizes", "resolve_device"]  # fmt: skip

Status = Literal["ok", "oom", "error"]


@dataclass(frozen=True)
class BenchOptions:
    """What to measure and how. ``batch_sizes`` is a tuple of sizes or ``"auto"`` (largest that fits)."""

    device: str = "cpu"  # cpu | cuda | cuda:N | mps
    dtype: str = "fp32"  # fp32 | bf16 | fp16
    precision: Literal["cast", "autocast"] = "cast"  # cast weights+inputs to dtype, or fp32 weights + autocast
    batch_sizes: tuple[int, ...] | Literal["auto"] = (16,)
    img_size: int | None = None  # None: the resolution of the model's default checkpoint
    compile: bool = False  # torch.compile (inductor); its compile time is reported apart
    channels_last: bool = False  # NHWC memory format (helps the ResNets)
    fused: bool = True  # vitzoo's fused CPU kernels (oneDNN linear + bias/GELU/residual); False: plain aten
    threads: int | None = None  # CPU intra-op threads during the run; None: torch's current setting
    warmup: int = 3  # untimed passes per batch size (the first one compiles)
    iters: int = 10  # timed passes per round; ignored when ``seconds`` is set
    seconds: float | None = None  # timed seconds per batch size, split over the rounds
    rounds: int = 3  # timed rounds; throughput is their median
    max_batch: int = 1024  # upper bound of the "auto" search
    pretrained: bool = False  # load the checkpoint (speed does not depend on it; random weights work offline)
    gemm_peak: bool = True  # measure the GEMM roofline once per (device, dtype) for the % of peak column
    backend: str = "torch"  # torch | onnxruntime | openvino (vitzoo.backends: the exported ONNX graph)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.precision not in ("cast", "autocast"):
            raise ConfigError(f"precision must be 'cast' or 'autocast', not {self.precision!r}")
        if self.batch_sizes != "auto" and (
            not self.batch_sizes or not all(isinstance(b, int) and b > 0 for b in self.batch_sizes)
        ):
            raise ConfigError(f"batch sizes must be positive integers or 'auto', not {self.batch_sizes!r}")
        for name in ("warmup", "iters", "rounds", "max_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "warmup" else 1):
                raise ConfigError(f"{name} must be a positive integer, not {value!r}")
        if self.seconds is not None and not self.seconds > 0:
            raise ConfigError(f"seconds must be > 0, not {self.seconds!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer, not {self.threads!r}")
        if self.backend != "torch":  # backend hook: vitzoo.backends checks the others
            from vitzoo.backends import check_backend

            check_backend(self)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


@dataclass(frozen=True)
class BenchResult:
    """One (model, batch size) measurement. Throughput in images/s, latency in ms per batch, memory in MiB."""

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
    fused: bool = False  # vitzoo's fused CPU inference kernels were on
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

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON-able) for tables, export and the results store."""
        d = dataclasses.asdict(self)
        d["round_img_per_s"] = list(self.round_img_per_s)
        return d


@dataclass(frozen=True)
class Progress:
    """What the harness is doing, for a progress bar: ``step`` of ``total`` in ``phase``."""

    model: str
    batch_size: int | None
    phase: Literal["build", "warmup", "probe", "timing", "done"]
    step: int = 0
    total: int = 0


ProgressFn = Callable[[Progress], None]


def parse_batch_sizes(text: str) -> tuple[int, ...] | Literal["auto"]:
    """``"16"``, ``"1,8,64"`` or ``"auto"``; anything else raises ConfigError."""
    text = text.strip().lower()
    if text == "auto":
        return "auto"
    if not re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
        raise ConfigError(f"batch size must be an integer, a comma-separated list (1,8,64) or 'auto', not {text!r}")
    sizes = tuple(int(t) for t in text.split(","))
    if 0 in sizes:
        raise ConfigError("batch sizes must be >= 1")
    return tuple(dict.fromkeys(sizes))


class _Runner:
    """One prepared model on one device: makes inputs, runs passes, measures one batch size."""

    def __init__(self, model: nn.Module, options: BenchOptions, img_size: int, device: torch.device) -> None:
        self.options, self.img_size, self.device = options, img_size, device
        self.memory = CudaMemoryMeter(device) if device.type == "cuda" else CpuMemoryMeter()
        model = set_fused_kernels(model.eval(), options.fused)
        if options.precision == "cast":
            model = model.to(options.torch_dtype)
        model = model.to(device)
        if options.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.compiled = options.compile
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

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def probe(self, batch: int) -> float | None:
        """One pass at ``batch``; returns the memory it used (bytes, None if unknown). Raises on OOM."""
        x = self.inputs(batch)
        if self.device.type == "cpu":
            trim_memory()
        with torch.inference_mode(), self.memory:
            self._first_call(x)
            self.forward(x)
            self.sync()
        return self.memory.peak_bytes

    def _first_call(self, x: torch.Tensor) -> None:
        if self.first_call_s is None:
            t0 = time.perf_counter()
            self.forward(x)
            self.sync()
            self.first_call_s = time.perf_counter() - t0

    def measure(self, batch: int, report: Callable[[str, int, int], None]) -> dict[str, Any]:
        """Warm up, then time ``rounds`` rounds; returns the measured fields of a BenchResult."""
        opt = self.options
        x = self.inputs(batch)
        if self.device.type == "cpu":
            trim_memory()
        with torch.inference_mode(), self.memory:
            self._first_call(x)
            for i in range(opt.warmup):
                report("warmup", i + 1, opt.warmup)
                self.forward(x)
            self.sync()
            iters = opt.iters
            if opt.seconds is not None:  # calibrate on one synchronised pass
                t0 = time.perf_counter()
                self.forward(x)
                self.sync()
                iters = max(1, round(opt.seconds / opt.rounds / max(time.perf_counter() - t0, 1e-6)))
            timer = make_timer(self.device)
            latencies: list[float] = []
            rates: list[float] = []
            for r in range(opt.rounds):
                report("timing", r * iters, opt.rounds * iters)
                per_pass, wall = timer.time(lambda: self.forward(x), iters)
                latencies += per_pass
                rates.append(batch * iters / wall)
            report("timing", opt.rounds * iters, opt.rounds * iters)
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
        }


def _make_runner(model: nn.Module, options: BenchOptions, img_size: int, device: torch.device) -> _Runner:
    """Backend hook: vitzoo's torch runner, or one of vitzoo.backends (ONNX Runtime, OpenVINO)."""
    if options.backend == "torch":
        return _Runner(model, options, img_size, device)
    from vitzoo.backends import make_runner

    return make_runner(model, options, img_size, device)


def _macs_of(model: nn.Module, img_size: int) -> int:
    """MACs per image of an arbitrary module, counted on one random image."""
    from vitzoo.flops import counted_macs

    param = next(model.parameters(), None)
    x = torch.randn(1, 3, img_size, img_size)
    if param is not None:
        x = x.to(param.device, param.dtype)
    return counted_macs(model, x)[0]


def benchmark_model(
    model: nn.Module,
    options: BenchOptions,
    *,
    name: str = "model",
    img_size: int = 224,
    macs_per_image: int | None = None,
    progress: ProgressFn | None = None,
    rss_baseline: int | None = None,
) -> list[BenchResult]:
    """Measure one model at every batch size of ``options`` (or the largest that fits, with ``"auto"``).

    ``macs_per_image`` defaults to a ``FlopCounterMode`` count. Out-of-memory at a batch size gives an ``oom``
    result and the run goes on; any other failure gives one ``error`` result.
    """
    device = resolve_device(options.device)
    report = progress or (lambda p: None)
    params = sum(p.numel() for p in model.parameters())
    macs = macs_per_image
    if macs is None:
        try:
            macs = _macs_of(model, img_size)
        except Exception:  # a model that cannot run one image fails below, with its own error
            macs = None
    gflops = None if macs is None else 2 * macs / 1e9
    with num_threads(options.threads) as threads:
        common = {**_setting(name, options, img_size, threads), "params": params, "gflops": gflops}
        peak = gemm_peak(device, options.torch_dtype).tflops if options.gemm_peak else None
        try:
            runner = _make_runner(model, options, img_size, device)
        except Exception as e:
            status, error = ("oom" if is_oom(e) else "error"), _short(e)
        else:
            status = error = None
        if status is not None:
            free_memory(device)  # after the except block: the traceback no longer holds the tensors
            return [BenchResult(batch_size=0, status=status, error=error, **common)]
        if rss_baseline is not None and isinstance(runner.memory, CpuMemoryMeter):
            runner.memory.baseline = rss_baseline
        sizes, note = options.batch_sizes, None
        if sizes == "auto":
            try:
                found, note = _auto_batch(runner, options, name, report)
            except Exception as e:  # not an OOM: the model itself fails
                return [BenchResult(batch_size=0, status="error", error=_short(e), **common)]
            if found is None:
                return [BenchResult(batch_size=1, status="oom", note=note, error="batch 1 does not fit", **common)]
            sizes = (found,)
        results: list[BenchResult] = []
        queue = list(sizes)
        while queue:
            batch = queue.pop(0)
            report(Progress(name, batch, "warmup", 0, options.warmup))
            try:
                fields = runner.measure(batch, lambda phase, i, n, b=batch: report(Progress(name, b, phase, i, n)))
            except Exception as e:
                status, error = ("oom" if is_oom(e) else "error"), _short(e)
            else:
                status = error = None
            if status is not None:
                free_memory(device)
                results.append(BenchResult(batch_size=batch, status=status, error=error, note=note, **common))
                if status == "error":
                    break  # a broken model stays broken at other batch sizes
                if options.batch_sizes == "auto" and batch > 1:  # the probe fitted, the timed run did not
                    queue.append(batch // 2)
                    note = f"{note}; backed off from {batch}"
                continue
            tflops = None if gflops is None else gflops * fields["img_per_s"] / 1e3
            results.append(
                BenchResult(
                    batch_size=batch,
                    status="ok",
                    tflops=tflops,
                    peak_tflops=peak,
                    pct_peak=None if not (peak and tflops) else 100 * tflops / peak,
                    compile_s=runner.first_call_s if options.compile else None,
                    note=note,
                    **fields,
                    **common,
                )
            )
            report(Progress(name, batch, "done"))
    return results


def _auto_batch(runner: _Runner, options: BenchOptions, name: str, report: ProgressFn) -> tuple[int | None, str]:
    """Largest batch that runs: out-of-memory on CUDA/MPS; on CPU, a predicted RSS within 80% of free RAM."""
    budget = available_ram() if runner.device.type == "cpu" else None
    per_image: list[float] = []
    failures: list[int] = []

    def fits(batch: int) -> bool:
        if budget is not None and per_image and per_image[-1] * batch > 0.8 * budget:
            failures.append(batch)
            return False
        report(Progress(name, batch, "probe"))
        used, oom = None, False
        try:
            used = runner.probe(batch)
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
        return True

    found = search_batch(fits, options.max_batch)
    note = f"auto: largest batch <= {options.max_batch} that fits"
    if failures:
        note += f" (did not fit: {', '.join(map(str, sorted(failures)))})"
    return found, note


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def _build(name: str, options: BenchOptions) -> tuple[nn.Module, int, int]:
    """(model, img_size, closed-form MACs per image) for a registry name, on the CPU in fp32."""
    from vitzoo.analytic import count_macs
    from vitzoo.factory import create, resolve_config

    _, _, config = resolve_config(name, img_size=options.img_size)
    if options.pretrained:
        from vitzoo.loading import load

        model = load(name, img_size=options.img_size)
    else:
        model = create(name, img_size=options.img_size)
    return model, config.img_size, count_macs(config)


def bench_models(names: Sequence[str], options: BenchOptions, progress: ProgressFn | None = None) -> list[BenchResult]:
    """Benchmark registry models (``arch`` or ``arch.tag``). Names and the device are checked before anything
    runs; a model that then fails to build or run gives an ``error`` result and the others are still measured.
    """
    from vitzoo.factory import resolve_config

    resolve_device(options.device)
    for name in names:
        resolve_config(name, img_size=options.img_size)  # unknown names / bad sizes: ConfigError up front
    report = progress or (lambda p: None)
    results: list[BenchResult] = []
    for name in names:
        report(Progress(name, None, "build"))
        if options.gemm_peak:  # measured before the baseline, so its buffers do not count as the model's
            with num_threads(options.threads):
                gemm_peak(options.device, options.torch_dtype)
        trim_memory()
        baseline = current_rss()
        try:
            model, img_size, macs = _build(name, options)
        except Exception as e:
            if isinstance(e, ConfigError):
                raise
            results.append(_failed(name, options, e))
            continue
        results += benchmark_model(
            model, options, name=name, img_size=img_size, macs_per_image=macs, progress=report, rss_baseline=baseline
        )
        del model
        free_memory(torch.device(options.device))
    return results


def _setting(name: str, options: BenchOptions, img_size: int, threads: int) -> dict[str, Any]:
    """The BenchResult fields that describe what was run."""
    keys = ("dtype", "precision", "compile", "channels_last", "fused", "backend")
    return {"model": name, "img_size": img_size, "device": options.device, "threads": threads,
            **{k: getattr(options, k) for k in keys}}  # fmt: skip


def _failed(name: str, options: BenchOptions, error: BaseException) -> BenchResult:
    threads = options.threads or torch.get_num_threads()
    status: Status = "oom" if is_oom(error) else "error"
    return BenchResult(batch_size=0, status=status, error=_short(error),
                       **_setting(name, options, options.img_size or 0, threads))  # fmt: skip
