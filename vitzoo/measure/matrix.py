"""The deployment matrix: every runtime x precision of one model in one interleaved run, each with its speed and
its fidelity to the fp32 PyTorch model.

Method. The model is built once in fp32 (random weights unless ``pretrained``; a zero head is then re-drawn, seeded,
so that logits and top-1 mean something) and exported once to ONNX for the runtimes. Each cell
(``vitzoo.measure.engines``) is built (int8: quantized, calibrated on ``MatrixData.calib``), warmed up at the
throughput batch and at batch 1 (which compiles what compiles), and run on the fidelity images in chunks of the
throughput batch (the last chunk padded), whose logits ``vitzoo.measure.fidelity.compare`` sets against the fp32
PyTorch model's on the same images. Then the timed rounds: each round times every cell in turn, the order reversed
every other round, so load changes on the machine hit all cells alike: ``iters`` passes at the throughput batch
(img/s: the median over rounds; ms per batch) and ``latency_iters`` passes at batch 1 (p50/p90/p99 over all rounds).
Memory is the growth of the process's RSS while the cell was built and warmed up (over the RSS before it was built):
the heap keeps freed memory for reuse (as ``vitzoo bench`` does), so a cell built after others may reuse their freed
activations and show less. % of roofline divides achieved (T)OP/s (2 x MACs per image, all counted in the cell's
precision) by the GEMM peak of the matching precision (``vitzoo.measure.roofline``; int8: ``torch._int_mm``),
measured before and after the timed rounds (the larger of the two: on a shared machine load only lowers it). A cell
that cannot run here is a ``skipped`` row with the reason; one that fails is an ``error`` row; the others still run.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vitzoo.errors import ConfigError, first_line
from vitzoo.machine import current_rss, reuse_freed_memory, trim_memory
from vitzoo.measure.cpu import ContentionMeter
from vitzoo.measure.device import num_threads
from vitzoo.measure.engines import DEFAULT_TORCH_INT8, INT8_METHODS, Cell, Engine, build, cells, why_not
from vitzoo.measure.fidelity import compare
from vitzoo.measure.memory import CpuMemoryMeter
from vitzoo.measure.results import MatrixResult
from vitzoo.measure.timing import percentile

DTYPES = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class MatrixOptions:
    """What the matrix runs and how long it times each cell."""

    backends: tuple[str, ...] = ("torch",)
    dtypes: tuple[str, ...] = ("fp32",)
    batch_size: int = 16  # the throughput batch
    rounds: int = 3
    iters: int = 3  # passes at the throughput batch per cell and round
    latency_iters: int = 5  # passes at batch 1 per cell and round
    warmup: int = 2
    threads: int | None = None
    gemm_peak: bool = True

    def __post_init__(self) -> None:
        for name in ("batch_size", "rounds", "iters", "latency_iters"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ConfigError(f"warmup must be a non-negative integer, not {self.warmup!r}")
        for b in self.backends:
            if b not in INT8_METHODS:
                raise ConfigError(f"unknown backend {b!r}; use one of {', '.join(INT8_METHODS)}")
        for d in self.dtypes:
            if d not in DTYPES:
                raise ConfigError(f"the matrix runs dtypes {', '.join(DTYPES)}, not {d!r}")
        if not self.backends or not self.dtypes:
            raise ConfigError("name at least one backend and one dtype")


@dataclass(frozen=True)
class MatrixData:
    """The images the matrix calibrates on and measures fidelity on (NCHW float32, preprocessed for the model)."""

    calib: np.ndarray
    calib_source: str
    images: np.ndarray
    images_source: str
    labels: np.ndarray | None = None  # the fidelity images' labels, in the model's class indices


def synthetic_data(img_size: int, calib: int = 32, images: int = 32) -> MatrixData:
    """A fixed synthetic set: seeded N(0, 1) pixels (already normalised), calibration and fidelity images apart."""
    from vitzoo.exporting import synthetic_images

    c, record = synthetic_images(calib, img_size, seed=0)
    x, shown = synthetic_images(images, img_size, seed=1)
    return MatrixData(c, record.source, x, shown.source)


Report = Callable[[str], None]


def run_matrix(
    model: nn.Module, name: str, options: MatrixOptions, data: MatrixData | None = None, report: Report | None = None
) -> list[MatrixResult]:
    """Run every cell of ``options`` on ``model`` (put in eval mode, otherwise left as it is; cells work on copies
    in fp32); one result per cell, in ``cells`` order."""
    say = report or (lambda text: None)
    reuse_freed_memory()
    img_size = model.config.img_size
    data = data or synthetic_data(img_size)
    if any(p.dtype != torch.float32 for p in model.parameters()):
        model = copy.deepcopy(model).float()  # the reference and every cell start from fp32
    model.eval()
    with num_threads(options.threads) as threads, tempfile.TemporaryDirectory(prefix="vitzoo-matrix-") as tmp:
        return _run(model, name, options, data, Path(tmp), threads, say)


def _reference(model: nn.Module, images: np.ndarray, batch: int) -> np.ndarray:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).float().numpy()

    return logits_of(run, images, batch)


def logits_of(run: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch: int) -> np.ndarray:
    """``run`` over ``images`` in chunks of ``batch`` (the last one padded by repeating its last image)."""
    out = []
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
        out.append(np.asarray(run(np.ascontiguousarray(chunk)), dtype=np.float32)[:n])
    return np.concatenate(out)


def _peaks(dtypes: tuple[str, ...]) -> dict[str, tuple[float | None, str | None]]:
    """The GEMM roofline of each precision: (TFLOP/s or TOP/s, None) or (None, why there is none)."""
    from vitzoo.measure.roofline import measure_gemm_peak

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.int8}
    peaks: dict[str, tuple[float | None, str | None]] = {}
    for d in dtypes:
        try:
            peaks[d] = (measure_gemm_peak("cpu", torch_dtype[d], seconds=0.3).tflops, None)
        except Exception as e:  # no kernel for it here: no roofline, and the table says why
            peaks[d] = (None, f"no {d} GEMM roofline: {first_line(e)[:100]}")
    return peaks


def _run(
    model: nn.Module, name: str, options: MatrixOptions, data: MatrixData, work: Path, threads: int, say: Report
) -> list[MatrixResult]:
    from vitzoo.zoo.analytic import count_macs

    if isinstance(getattr(model, "head", None), nn.Linear) and not model.head.weight.any():
        model = copy.deepcopy(model)  # the caller's model stays as it is
        with torch.no_grad():  # random weights: a zero head would make every logit 0 and top-1 meaningless
            model.head.weight.normal_(0, 0.02, generator=torch.Generator().manual_seed(0))
    B = options.batch_size
    common = {"model": name, "batch_size": B, "img_size": model.config.img_size, "threads": threads,
              "params": sum(p.numel() for p in model.parameters()), "gflops": 2 * count_macs(model.config) / 1e9,
              "weights_sha256": getattr(model, "weights_sha256", None), "rounds": options.rounds,
              "iters": options.iters, "fid_images": len(data.images), "fid_source": data.images_source}  # fmt: skip
    say("fp32 PyTorch reference logits")
    ref = _reference(model, data.images, B)
    todo = cells(options.backends, options.dtypes)
    reasons = {c: why_not(c) for c in todo}
    onnx_path = None
    if any(c.backend != "torch" and reasons[c] is None for c in todo):
        say("exporting the ONNX graph")
        from vitzoo.exporting import onnx_program

        onnx_path = work / "model.onnx"
        onnx_program(model).save(str(onnx_path))
    say("measuring the GEMM rooflines")
    peaks = _peaks(options.dtypes) if options.gemm_peak else {}
    rng = np.random.default_rng(2)
    x_batch = rng.standard_normal((B, 3, common["img_size"], common["img_size"]), dtype=np.float32)
    x_one = np.ascontiguousarray(x_batch[:1])
    built: dict[Cell, tuple[Engine, dict]] = {}
    failed: dict[Cell, str] = {}
    for cell in todo:
        if reasons[cell] is not None:
            continue
        say(f"{cell.backend} {cell.label}: building")
        try:
            built[cell] = _prepare(cell, model, onnx_path, data, ref, threads, work, options, x_batch, x_one)
        except Exception as e:
            failed[cell] = first_line(e)
    times: dict[Cell, tuple[list[float], list[float], list[float]]] = {c: ([], [], []) for c in built}
    order = list(built)
    with ContentionMeter(threads) as load:
        for r in range(options.rounds):
            say(f"timed round {r + 1} of {options.rounds}")
            for cell in order if r % 2 == 0 else reversed(order):
                run = built[cell][0].run
                rates, per_batch, per_one = times[cell]
                t0 = time.perf_counter()
                for _ in range(options.iters):
                    t1 = time.perf_counter()
                    run(x_batch)
                    per_batch.append(time.perf_counter() - t1)
                rates.append(B * options.iters / (time.perf_counter() - t0))
                for _ in range(options.latency_iters):
                    t1 = time.perf_counter()
                    run(x_one)
                    per_one.append(time.perf_counter() - t1)
    contention = load.result
    assert contention is not None
    if options.gemm_peak:  # once more after the rounds, the larger counts: other tenants only ever lower a peak
        say("measuring the GEMM rooflines again")
        after = _peaks(options.dtypes)
        peaks = {d: max(peaks[d], after[d], key=lambda p: p[0] or 0.0) for d in peaks}
    busy = {"load_start": contention.load_start, "load_end": contention.load_end,
            "other_cpu": contention.other_cpu, "contended": contention.contended}  # fmt: skip
    results = []
    for cell in todo:
        default = cell.method in (None, DEFAULT_TORCH_INT8) or cell.backend != "torch"
        base = {**common, "backend": cell.backend, "dtype": cell.dtype, "method": cell.method, "default": default}
        if cell in reasons and reasons[cell] is not None:
            results.append(MatrixResult(status="skipped", error=reasons[cell], **base))
        elif cell in failed:
            results.append(MatrixResult(status="error", error=failed[cell], **base))
        else:
            results.append(_result(base, built[cell], times[cell], peaks.get(cell.dtype), busy))
    return _pick_torch_int8(results)


def _pick_torch_int8(results: list[MatrixResult]) -> list[MatrixResult]:
    """Make torch's default int8 row the fastest non-degraded one measured (the fastest at all if every one is
    degraded); with none measured, ``DEFAULT_TORCH_INT8`` stays the default."""
    rows = [r for r in results if r.backend == "torch" and r.dtype == "int8" and r.status == "ok"]
    if not rows:
        return results
    pick = max([r for r in rows if not r.degraded] or rows, key=lambda r: r.img_per_s or 0.0)
    return [dataclasses.replace(r, default=r is pick) if any(r is x for x in rows) else r for r in results]


def _prepare(
    cell: Cell, model: nn.Module, onnx_path: Path | None, data: MatrixData, ref: np.ndarray, threads: int,
    work: Path, options: MatrixOptions, x_batch: np.ndarray, x_one: np.ndarray,
) -> tuple[Engine, dict]:  # fmt: skip
    """Build, warm up and check one cell: the engine and its measured fields (memory, fidelity, times)."""
    trim_memory()
    with CpuMemoryMeter(current_rss()) as memory:
        engine = build(cell, model, onnx_path, data.calib, threads, work)
        t0 = time.perf_counter()
        for _ in range(max(1, options.warmup)):
            engine.run(x_batch)
        engine.run(x_one)  # compiles batch 1 where the cell compiles per shape
        warmup_s = time.perf_counter() - t0
    got = logits_of(engine.run, data.images, options.batch_size)
    fid = compare(ref, got, data.labels)
    fields = {"note": engine.note, "prepare_s": engine.prepare_s, "warmup_s": warmup_s,
              "memory_mib": None if memory.peak_bytes is None else memory.peak_bytes / 2**20,
              "calib_images": len(data.calib) if cell.dtype == "int8" and cell.method != "dynamic" and
              cell.method != "torchao" else None,
              "max_abs_err": fid.max_abs_err, "mean_abs_err": fid.mean_abs_err, "top1_agreement": fid.top1_agreement,
              "top1_accuracy": fid.top1_accuracy, "ref_top1_accuracy": fid.ref_top1_accuracy,
              "degraded": fid.degraded, "degraded_why": fid.degraded_why}  # fmt: skip
    if fields["calib_images"]:
        fields["calib_source"] = data.calib_source
    return engine, fields


def _result(
    base: dict, built: tuple[Engine, dict], times: tuple[list[float], list[float], list[float]],
    peak: tuple[float | None, str | None] | None, busy: dict,
) -> MatrixResult:  # fmt: skip
    _, fields = built
    rates, per_batch, per_one = times
    img_per_s = statistics.median(rates)
    tflops = base["gflops"] * img_per_s / 1e3
    peak_tflops, peak_note = peak or (None, None)
    return MatrixResult(
        status="ok", **base, **fields, **busy, img_per_s=img_per_s, round_img_per_s=tuple(rates),
        latency_ms=1e3 * statistics.median(per_batch), latency_b1_ms=1e3 * statistics.median(per_one),
        latency_b1_p90_ms=1e3 * percentile(per_one, 90), latency_b1_p99_ms=1e3 * percentile(per_one, 99),
        tflops=tflops, peak_tflops=peak_tflops, peak_note=peak_note,
        pct_peak=None if not peak_tflops else 100 * tflops / peak_tflops,
    )  # fmt: skip
