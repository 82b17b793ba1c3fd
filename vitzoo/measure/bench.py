"""Inference timing harness: throughput, latency percentiles, peak memory, achieved TFLOP/s and % of GEMM peak.

Method: build the model once per name; for each batch size, warm up (this includes ``torch.compile``), then run
``rounds`` timed rounds of ``iters`` forward passes under ``torch.inference_mode``. Every pass is timed on its own
(CUDA events recorded around it, one synchronisation per round; ``perf_counter`` on CPU), so latency is per batch
and throughput is the median over rounds of ``batch x iters / round time``. CUDA out-of-memory is recorded as an
``oom`` result for that batch size, memory is freed and the run goes on; ``batch_sizes="auto"`` searches the
largest batch that fits (and whose pass takes at most ``auto_max_pass_s``). A model that fails for another reason
gives an ``error`` result; the others still run. ``iter_bench`` yields each result as soon as it is measured, so a
caller can store it before the next model starts. On CPU the entry points (``iter_bench``, ``benchmark_model``,
and ``vitzoo bench`` through ``prepare_process``) make the process keep the memory it frees for reuse
(``vitzoo.machine.reuse_freed_memory``), as ONNX Runtime's arena does: otherwise glibc page-faults a pass's big
activations in afresh each time (measured in benchmarks/results/heap-reuse-*.md). ``bench_environment`` only
reports which heap is in use.

Which kernels ran is part of every result: vitzoo's fused oneDNN kernels where this CPU supports the dtype
(``vitzoo.measure.cpu.fused_kernels``), else aten, with the reason in ``kernels_note``. So is contention: the load
average and the CPU time other processes took during the timed rounds (``contended`` flags a result they slowed down).
``benchmark_model`` leaves the caller's model as it was (a copy is cast or moved; eval mode and flags are restored).

Nothing here prints: progress goes to an optional callback, results are frozen dataclasses.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitzoo.errors import first_line
from vitzoo.machine import current_rss, heap_mode, reuse_freed_memory, trim_memory
from vitzoo.measure.cpu import fused_kernels
from vitzoo.measure.device import num_threads, resolve_device
from vitzoo.measure.fused import attention_kernel_of, fused_kernels_set
from vitzoo.measure.memory import CpuMemoryMeter, free_memory, is_oom
from vitzoo.measure.options import BenchOptions, BenchResult, Progress, ProgressFn, Status, parse_batch_sizes
from vitzoo.measure.roofline import gemm_peak
from vitzoo.measure.runner import Runner, auto_batch

__all__ = ["BenchOptions", "BenchResult", "Progress", "bench_environment", "bench_models", "benchmark_model",
           "check_names", "iter_bench", "kernels_for", "parse_batch_sizes", "prepare_process"]  # fmt: skip


def _make_runner(model: nn.Module, options: BenchOptions, img_size: int, device: torch.device, threads: int) -> Runner:
    """Backend hook: vitzoo's torch runner (a training step with ``mode="train"``), or one of
    vitzoo.measure.backends (ONNX Runtime, OpenVINO)."""
    if options.mode == "train":
        from vitzoo.measure.training import TrainRunner

        return TrainRunner(model, options, img_size, device, threads)
    if options.backend == "torch":
        return Runner(model, options, img_size, device, threads)
    from vitzoo.measure.backends import make_runner

    return make_runner(model, options, img_size, device, threads)


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
    result and the run goes on; any other failure gives one ``error`` result. ``model`` is left as it was: when
    the run casts it, moves it or changes its memory format, a copy is measured (pass a model already in the
    target dtype and device to save that memory); eval mode and the fused-kernel flags are restored.
    """
    return list(_measure(model, options, name, img_size, macs_per_image, progress, rss_baseline, owned=False))


def _measure(
    model: nn.Module,
    options: BenchOptions,
    name: str,
    img_size: int,
    macs_per_image: int | None,
    progress: ProgressFn | None,
    rss_baseline: int | None,
    owned: bool,
) -> Iterator[BenchResult]:
    """``benchmark_model``, one result at a time; ``owned``: the model is the harness's own and may be changed."""
    device = resolve_device(options.device)
    prepare_process(options)
    report = progress or (lambda p: None)
    params = sum(p.numel() for p in model.parameters())
    macs = macs_per_image
    if options.mode == "train":  # forward + backward, counted
        from vitzoo.measure.flops import counted_train_macs

        try:
            macs = counted_train_macs(model.config)
        except Exception:  # a module without a vitzoo config: no FLOP figures
            macs = None
    elif macs is None:
        try:
            macs = _macs_of(model, img_size)
        except Exception:  # a model that cannot run one image fails below, with its own error
            macs = None
    gflops = None if macs is None else 2 * macs / 1e9
    fused, _ = kernels_for(options)
    with num_threads(options.threads) as threads, contextlib.ExitStack() as stack:
        common = {**_setting(name, options, img_size, threads), "params": params, "gflops": gflops,
                  "weights_sha256": getattr(model, "weights_sha256", None),
                  "attention": _attention(model, options, fused)}  # fmt: skip
        peak = gemm_peak(device, options.torch_dtype).tflops if options.gemm_peak else None
        try:  # copying, casting or moving the model may run out of memory: an "oom" result like any other
            model = stack.enter_context(_borrowed(model, options, device, fused, owned))
            runner = _make_runner(model, options, img_size, device, threads)
        except Exception as e:
            status, error = ("oom" if is_oom(e) else "error"), first_line(e)
        else:
            status = error = None
        if status is not None:
            free_memory(device)  # after the except block: the traceback no longer holds the tensors
            yield BenchResult(batch_size=0, status=status, error=error, **common)
            return
        if rss_baseline is not None and isinstance(runner.memory, CpuMemoryMeter):
            runner.memory.baseline = rss_baseline
        sizes, note = options.batch_sizes, None
        if sizes == "auto":
            try:
                found, note = auto_batch(runner, options, lambda b: report(Progress(name, b, "probe")))
            except Exception as e:  # not an OOM: the model itself fails
                yield BenchResult(batch_size=0, status="error", error=first_line(e), **common)
                return
            if found is None:
                yield BenchResult(batch_size=1, status="oom", note=note, error="batch 1 does not fit", **common)
                return
            sizes = (found,)
        queue = list(sizes)
        while queue:
            batch = queue.pop(0)
            report(Progress(name, batch, "warmup", 0, options.warmup))
            try:
                fields = runner.measure(batch, lambda phase, i, n, b=batch: report(Progress(name, b, phase, i, n)))
            except Exception as e:
                status, error = ("oom" if is_oom(e) else "error"), first_line(e)
            else:
                status = error = None
            if status is not None:
                free_memory(device)
                yield BenchResult(batch_size=batch, status=status, error=error, note=note, **common)
                if status == "error":
                    break  # a broken model stays broken at other batch sizes
                if options.batch_sizes == "auto" and batch > 1:  # the probe fitted, the timed run did not
                    queue.append(batch // 2)
                    note = f"{note}; backed off from {batch}"
                continue
            tflops = None if gflops is None else gflops * fields["img_per_s"] / 1e3
            report(Progress(name, batch, "done"))
            yield BenchResult(
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


def prepare_process(options: BenchOptions) -> None:
    """Apply the process-wide settings a benchmark runs under, once: on CPU, freed memory kept for reuse
    (``vitzoo.machine.reuse_freed_memory``; ``VITZOO_HEAP=system`` keeps glibc's defaults), so freed activations
    are reused, not page-faulted in afresh every pass. Called by the harness's entry points and ``vitzoo bench``
    before anything is measured; the setting stays for the life of the process."""
    if options.device == "cpu":
        reuse_freed_memory()


def bench_environment(options: BenchOptions) -> dict[str, Any]:
    """The environment stored with each result (``vitzoo.measure.env``); a non-torch backend adds its version, and
    on CPU ``heap`` says whether freed memory is reused (``vitzoo.machine.heap_mode``). A query: it changes nothing
    (``prepare_process`` is what changes the heap)."""
    from vitzoo.measure.env import environment

    env = environment(options.device)
    if options.device == "cpu":
        env["heap"] = heap_mode()
    if options.backend != "torch":
        from vitzoo.measure.backends import backend_version

        env["backend"] = backend_version(options.backend)
    return env


def kernels_for(options: BenchOptions) -> tuple[bool, str | None]:
    """Whether the fused kernels run for ``options`` here, and why not (``vitzoo.measure.cpu.fused_kernels``)."""
    if options.backend != "torch":
        return False, f"{options.backend} runs the exported ONNX graph"
    if options.mode == "train":
        return False, "training runs aten (the fused kernels are for inference)"
    return fused_kernels(
        options.fused, device=options.device, dtype=options.dtype, precision=options.precision, compile=options.compile
    )


def _attention(model: nn.Module, options: BenchOptions, fused: bool) -> str | None:
    """What the torch backend's model attends with (``vitzoo.measure.fused.attention_kernel_of``); None on others."""
    return attention_kernel_of(model, options.torch_dtype, fused) if options.backend == "torch" else None


def _changes_tensors(model: nn.Module, options: BenchOptions, device: torch.device) -> bool:
    """Whether preparing ``model`` for ``options`` would cast, move or re-layout its tensors."""
    if options.mode == "train":  # a training step changes the weights: never the caller's own
        return True
    tensors = [*model.parameters(), *model.buffers()]
    dtype = options.torch_dtype if options.precision == "cast" else None
    return (
        any(t.device.type != device.type or (device.index is not None and t.device.index != device.index)
            for t in tensors)
        or (dtype is not None and any(t.is_floating_point() and t.dtype != dtype for t in tensors))
        or (options.channels_last and any(t.dim() == 4 for t in tensors))
    )  # fmt: skip


@contextlib.contextmanager
def _borrowed(
    model: nn.Module, options: BenchOptions, device: torch.device, fused: bool, owned: bool
) -> Iterator[nn.Module]:
    """The model to run, in eval mode with the fused kernels set: the harness's own model as is; the caller's
    model itself when only flags change (restored afterwards), else a deep copy that is cast or moved."""
    if not owned and _changes_tensors(model, options, device):
        model, owned = copy.deepcopy(model), True
    saved = None if owned else [(m, m.training) for m in model.modules()]
    try:
        with fused_kernels_set(model.eval(), fused):  # undone on exit: the classes, and the blocked weight copies
            yield model
    finally:
        for m, training in saved or ():
            m.training = training


def _macs_of(model: nn.Module, img_size: int) -> int:
    """MACs per image of an arbitrary module, counted on one random image."""
    from vitzoo.measure.flops import counted_macs

    param = next(model.parameters(), None)
    x = torch.randn(1, 3, img_size, img_size)
    if param is not None:
        x = x.to(param.device, param.dtype)
    return counted_macs(model, x)[0]


def _build(name: str, options: BenchOptions) -> tuple[nn.Module, int, int]:
    """(model, img_size, closed-form MACs per image) for a registry name or a weight file, on the CPU in fp32."""
    from vitzoo.models.factory import create
    from vitzoo.weights.loading import ZeroHeadWarning, is_path, load
    from vitzoo.zoo.analytic import count_macs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroHeadWarning)  # a zeroed head runs as fast as any other
        if is_path(name):  # a file: its own weights and architecture
            model = load(Path(name), img_size=options.img_size)
        elif options.pretrained:
            model = load(name, img_size=options.img_size)
        else:
            model = create(name, img_size=options.img_size)
    return model, model.config.img_size, count_macs(model.config)


def check_names(names: Sequence[str], options: BenchOptions) -> None:
    """Raise ConfigError, before anything runs, for an unavailable device, an unknown name, a bad size or a
    weight file that is missing or a directory."""
    from vitzoo.weights.loading import is_path
    from vitzoo.weights.names import check_source
    from vitzoo.weights.sources import check_cache, check_published

    resolve_device(options.device)
    for name in names:
        check_source(name, img_size=options.img_size, read=True)  # a bad weight file: one line, as flops says it
    if options.pretrained and not all(is_path(n) for n in names):
        check_cache()  # a cache path that is a file: one line, not an error row per model
        for name in names:
            if not is_path(name):
                check_published(name)


def iter_bench(
    names: Sequence[str], options: BenchOptions, progress: ProgressFn | None = None
) -> Iterator[BenchResult]:
    """Benchmark registry models (``arch`` or ``arch.tag``) or weight files, yielding each result once measured.

    Names, files and the device are checked when this is called, before anything runs; a model that then fails
    to build or run gives an ``error`` result and the others are still measured.
    """
    check_names(names, options)
    prepare_process(options)
    return _iter_bench(list(names), options, progress or (lambda p: None))


def _iter_bench(names: list[str], options: BenchOptions, report: ProgressFn) -> Iterator[BenchResult]:
    for name in names:
        if options.gemm_peak:  # measured before the baseline, so its buffers do not count as the model's
            report(Progress(name, None, "peak"))
            with num_threads(options.threads):
                gemm_peak(options.device, options.torch_dtype)
        trim_memory()
        baseline = current_rss()
        report(Progress(name, None, "build"))
        try:
            model, img_size, macs = _build(name, options)
        except Exception as e:
            yield _failed(name, options, e)
            continue
        yield from _measure(model, options, name, img_size, macs, report, baseline, owned=True)
        del model
        free_memory(torch.device(options.device))


def bench_models(names: Sequence[str], options: BenchOptions, progress: ProgressFn | None = None) -> list[BenchResult]:
    """``iter_bench`` as a list: every result of every model."""
    return list(iter_bench(names, options, progress))


def _setting(name: str, options: BenchOptions, img_size: int, threads: int) -> dict[str, Any]:
    """The BenchResult fields that describe what was run (the kernels: what this machine runs, not the request)."""
    keys = ("dtype", "precision", "compile", "channels_last", "backend", "mode", "grad_checkpointing")
    fused, why = kernels_for(options)
    return {"model": name, "img_size": img_size, "device": options.device, "threads": threads,
            "fused": fused, "kernels": "fused" if fused else "aten", "kernels_note": why,
            **{k: getattr(options, k) for k in keys}}  # fmt: skip


def _failed(name: str, options: BenchOptions, error: BaseException) -> BenchResult:
    threads = options.threads or torch.get_num_threads()
    status: Status = "oom" if is_oom(error) else "error"
    return BenchResult(batch_size=0, status=status, error=first_line(error),
                       **_setting(name, options, options.img_size or 0, threads))  # fmt: skip
