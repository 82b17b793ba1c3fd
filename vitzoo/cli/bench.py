"""`vitzoo bench`: measure inference speed (and `--peak`, the GEMM roofline), print and store each result."""

from __future__ import annotations

import sys
from typing import Any

import click

from vitzoo.cli._dist import is_main, scale_out
from vitzoo.cli._output import (
    Command,
    db_option,
    emit,
    err_console,
    fail,
    format_options,
    info,
    no_store_option,
    number,
    warn,
    weights_option,
)
from vitzoo.cli._preflight import refuse_unused
from vitzoo.errors import VitzooError
from vitzoo.zoo.formats import BACKENDS

EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C


# (key, header, formatter, priority): at 80 columns the highest priority numbers are left out first.
BENCH_COLUMNS = [
    ("model", "model", None, 0),
    ("batch_size", "batch", None, 1),
    ("img_size", "res", None, 6),
    ("status", "status", None, 2),
    ("img_per_s", "img/s", number(2), 3),
    ("latency_ms", "ms/batch p50", number(1), 4),
    ("latency_p90_ms", "p90", number(1), 10),
    ("latency_p99_ms", "p99", number(1), 11),
    ("memory_mib", "mem MiB", number(0), 8),
    ("gflops", "GFLOPs /img", number(2), 7),
    ("tflops", "TFLOP/s", number(3), 9),
    ("pct_peak", "% GEMM peak", number(1), 5),
]
PEAK_IGNORES = ("precision", "batch_size", "img_size", "compile_", "channels_last", "aten", "warmup", "iters",
                "seconds", "rounds", "max_batch", "backend", "weights", "sweep")  # fmt: skip
CONTENDED_COLUMN = ("contended", "busy CPU", lambda v: "yes" if v else "", 2.5)  # shown when a row is flagged


def _rows_with_env(rows: list[dict[str, Any]], env: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**row, **{f"env_{k}": v for k, v in env.items()}} for row in rows]


def _progress_callback(progress: Any, task: Any):
    def update(p) -> None:
        where = p.model if p.batch_size is None else f"{p.model} batch {p.batch_size}"
        progress.update(task, description=f"{where}: {p.phase}", completed=p.step, total=p.total or None)

    return update


def _line(r: Any) -> str:
    """One line per finished measurement, printed as it completes."""
    if r.status != "ok":
        return f"{r.model} batch {r.batch_size}: {r.status}: {r.error}"
    busy = f" [contended: other processes used {r.other_cpu} cores]" if r.contended else ""
    return f"{r.model} batch {r.batch_size}: {r.img_per_s:,.2f} img/s, {r.latency_ms:,.1f} ms/batch{busy}"


@click.command("bench", cls=Command)
@click.argument("names", nargs=-1, metavar="[NAME|PATTERN|FILE]...")
@click.option(
    "--device", default="cpu", show_default=True, metavar="DEVICE", help="Where to run: cpu, cuda, cuda:N or mps."
)
@click.option(
    "--dtype",
    default="fp32",
    show_default=True,
    metavar="fp32|bf16|fp16|int8[,...]",
    help="Precision of the run. A CPU without native bf16/fp16 gets a warning first (emulated: several times "
    "slower than fp32). A list (fp32,bf16,int8) or int8 runs the deployment matrix.",
)
@click.option(
    "--precision",
    type=click.Choice(["cast", "autocast"]),
    default="cast",
    show_default=True,
    help="cast: weights and inputs converted to --dtype; autocast: fp32 weights under torch.autocast.",
)
@click.option(
    "--batch-size",
    "-b",
    default="16",
    metavar="N|LIST|auto",
    show_default=True,
    help="Images per pass: N, a list such as 1,8,64, or auto (the largest that fits in memory, up to --max-batch, "
    "whose pass takes at most 10 s).",
)
@click.option("--img-size", type=int, default=None, metavar="PX", help="Input resolution (default: the checkpoint's).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (compile time reported apart).")
@click.option("--channels-last", is_flag=True, help="NHWC memory format (for the ResNets).")
@click.option(
    "--aten",
    is_flag=True,
    help="Plain aten kernels instead of vitzoo's fused CPU kernels (oneDNN linear with bias/GELU/residual; used "
    "only where this CPU's oneDNN supports the dtype, else aten, as the header says).",
)
@click.option("--threads", type=int, default=None, metavar="N", help="CPU intra-op threads (default: torch's).")
@click.option("--warmup", type=int, default=3, show_default=True, metavar="N", help="Untimed passes per batch size.")
@click.option("--iters", type=int, default=10, show_default=True, metavar="N", help="Timed passes per round.")
@click.option(
    "--seconds",
    type=float,
    metavar="S",
    default=None,
    help="Timed seconds per batch size instead of --iters (the warm-up then also stops after this long).",
)
@click.option("--rounds", type=int, default=3, show_default=True, metavar="N", help="Timed rounds (median reported).")
@click.option(
    "--max-batch", type=int, default=1024, show_default=True, metavar="N", help="Upper bound for --batch-size auto."
)
@click.option(
    "--backend",
    default="torch",
    show_default=True,
    metavar="|".join(BACKENDS) + "[,...]",
    help="What runs the model: vitzoo's PyTorch path, or its exported ONNX graph in ONNX Runtime / OpenVINO (CPU). "
    "A list runs the deployment matrix: every runtime x --dtype in one interleaved run, with img/s at -b, batch-1 "
    "latency, memory, %% of the roofline and fidelity to the fp32 PyTorch model (cells that cannot run say why).",
)
@click.option(
    "--mode",
    type=click.Choice(["inference", "train"]),
    default="inference",
    show_default=True,
    help="inference: forward passes under inference_mode; train: whole training steps (forward, backward, clipping, "
    "SGD with momentum; fp32 weights, --dtype bf16/fp16 as autocast): what fine-tuning costs.",
)
@click.option(
    "--grad-checkpointing",
    is_flag=True,
    help="With --mode train: recompute each block's activations in backward (less memory, one more forward pass).",
)
@click.option("--data", type=click.Path(), default=None, metavar="DIR",
              help="Matrix: an ImageFolder to calibrate int8 on and measure fidelity (and, with labels, top-1) on "
              "(default: fixed synthetic images).")  # fmt: skip
@click.option("--calib", type=int, default=32, show_default=True, metavar="N",
              help="Matrix: images static int8 calibrates on (apart from the fidelity images).")  # fmt: skip
@click.option("--fidelity-images", type=int, default=32, show_default=True, metavar="N",
              help="Matrix: images whose logits are compared with the fp32 PyTorch model's.")  # fmt: skip
@weights_option("random")
@click.option("--peak", is_flag=True, help="Measure only the GEMM roofline of --device/--dtype.")
@click.option("--sweep", is_flag=True, help="Under torchrun/--nproc: spread the models and batch sizes over the "
              "ranks (default: every rank runs each one at once, data-parallel).")  # fmt: skip
@db_option
@no_store_option
@format_options
@scale_out
def bench_cmd(names: tuple[str, ...], peak: bool, db: str | None, no_store: bool, fmt: str, **kw: Any) -> None:
    """Measure inference (or, with --mode train, training) speed: img/s, latency per batch (p50/p90/p99), peak
    memory, TFLOP/s, % of GEMM peak.

    NAME is a model (arch or arch.tag, see `vitzoo list`), a shell PATTERN of them ('vit-s*', quoted), or a
    weight file (.safetensors, .npz, .bin, .pth).
    Each model is warmed up, then timed for --rounds rounds of --iters passes under torch.inference_mode
    (CUDA events and synchronisation on GPUs). Out-of-memory at a batch size is recorded and the run goes on;
    with `-b auto` the largest batch that fits is found. Each result is printed and appended to the results
    database as soon as it is measured, so Ctrl-C keeps what was done (exit code 130). Results measured while
    other processes used the CPU are flagged. The exit code is 1 when any measurement failed.

    With several --backend or --dtype values, or int8, it runs the deployment matrix instead: each runtime in each
    precision (int8 quantized with the runtime's own tool, calibrated on --calib images of --data), timed in
    interleaved rounds, each compared with the fp32 PyTorch model on the same images; a cell whose top-1 agreement
    (accuracy, with labels) is below 99% of fp32's is marked DEGRADED.

    \b
    Examples:
      vitzoo bench vit-b16                            # fp32, batch 16, on the CPU
      vitzoo bench vit-b16 vit-s16 --dtype bf16 -b 1,16,64
      vitzoo bench bit-r50x1 --channels-last --compile --json
      vitzoo bench vit-l16 --device cuda --dtype bf16 -b auto
      vitzoo bench ./ti16.safetensors                 # a weight file
      vitzoo bench --peak --dtype bf16               # the GEMM roofline only
      vitzoo bench vit-b16 --mode train -b 8,32 --grad-checkpointing   # training steps: can I fine-tune it here?
      vitzoo bench vit-b16 --backend torch,onnxruntime,openvino --dtype fp32,bf16,int8 --data val/
    """
    from vitzoo.measure.bench import BenchOptions, check_names, parse_batch_sizes
    from vitzoo.weights.names import expand_sources

    if kw["sweep"] and not _distributed():
        raise VitzooError("--sweep spreads the runs over the ranks of a launch; add --nproc N (N >= 2) or run it "
                          "under torchrun")  # fmt: skip
    if peak:
        refuse_unused(PEAK_IGNORES, "with --peak (it measures the GEMM roofline, not a model)")
        if _distributed():
            raise VitzooError("--peak measures one device; run it without torchrun or --nproc")
        if names:
            fail("--peak measures the GEMM roofline only; run it without model names")
        from vitzoo.cli._bench_peak import run_peak

        return run_peak(kw["device"], kw["dtype"], kw["threads"], db, no_store, fmt)
    if not names:
        fail("name at least one model (see `vitzoo list`) or weight file, or use --peak")
    if "," in kw["backend"] + kw["dtype"] or "int8" in kw["dtype"] or kw["data"]:  # the deployment matrix
        if kw["mode"] == "train":
            fail("--mode train times one backend and dtype; the deployment matrix is inference only")
        if _distributed():
            fail("the deployment matrix runs in one process; run it without torchrun or --nproc")
        from vitzoo.cli._bench_matrix import run_matrix_cmd

        return run_matrix_cmd(names, kw, False if no_store else db, fmt)
    train = kw["mode"] == "train"
    options = BenchOptions(
        device=kw["device"],
        dtype=kw["dtype"],
        precision="autocast" if train and kw["dtype"] != "fp32" else kw["precision"],
        mode=kw["mode"],
        grad_checkpointing=kw["grad_checkpointing"],
        batch_sizes=parse_batch_sizes(kw["batch_size"]),
        img_size=kw["img_size"],
        compile=kw["compile_"],
        channels_last=kw["channels_last"],
        fused=not kw["aten"],
        threads=kw["threads"],
        warmup=kw["warmup"],
        iters=kw["iters"],
        seconds=kw["seconds"],
        rounds=kw["rounds"],
        max_batch=kw["max_batch"],
        pretrained=kw["weights"] == "pretrained",
        backend=kw["backend"],
    )
    names = tuple(expand_sources(names))  # vit-b* -> vit-b8 vit-b16 vit-b32
    check_names(names, options)  # unknown names, missing files, an unavailable device: before anything runs
    from vitzoo.measure.store import ResultStore

    store = None if no_store or not is_main() else ResultStore(db)  # so does a bad database
    if _distributed():
        from vitzoo.cli._bench_ranks import bench_ranks

        return bench_ranks(names, options, store, fmt, sweep=kw["sweep"], columns=BENCH_COLUMNS)
    results, interrupted, store_error = _run_bench(names, options, store)
    _report_bench(results, options, fmt)
    if store is not None and not store_error:
        info(f"{len(results)} result(s) appended to {store.path}")
    failed = [r for r in results if r.status != "ok"]
    if interrupted:
        info(f"interrupted: {len(results)} result(s) measured before Ctrl-C were kept")
        sys.exit(EXIT_INTERRUPTED)
    if store_error:
        fail(f"results could not be stored: {store_error}")
    if failed:
        fail(f"{len(failed)} of {len(results)} measurement(s) failed ({', '.join(sorted({r.status for r in failed}))})")


def _run_bench(names: tuple[str, ...], options: Any, store: Any) -> tuple[list[Any], bool, str | None]:
    """Run the benchmark, printing and storing each result as it completes; Ctrl-C stops it and keeps the rest.

    Returns (results, interrupted, the error that stopped storing or None).
    """
    from rich.markup import escape
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from vitzoo.cli._output import Progress
    from vitzoo.errors import VitzooError
    from vitzoo.measure.bench import bench_environment, iter_bench, kernels_for, prepare_process
    from vitzoo.measure.cpu import low_precision_warning
    from vitzoo.measure.records import record

    if slow := low_precision_warning(options.dtype, options.device):
        warn(slow)
    fused, why = kernels_for(options)
    if options.fused and not fused:
        info(f"kernels: aten ({why})")
    prepare_process(options)  # the heap the run uses, before the environment that records it
    env = bench_environment(options)
    if options.gemm_peak:
        _announce_cached_peak(options)
    results: list[Any] = []
    interrupted, store_error = False, None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),  # of the current phase: a slow (emulated) run shows how long it will take
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=None)
        try:
            for r in iter_bench(names, options, _progress_callback(progress, task)):
                results.append(r)
                progress.console.print(escape(_line(r)), highlight=False, soft_wrap=True)
                if store is not None and store_error is None:
                    try:
                        store.save(record(r, env={**env, "threads": r.threads}))
                    except VitzooError as e:  # keep measuring; the results are still printed
                        store_error = str(e)
                        progress.console.print(f"[yellow]warning:[/] {e}", highlight=False, soft_wrap=True)
        except KeyboardInterrupt:
            interrupted = True
    return results, interrupted, store_error


def _report_bench(results: list[Any], options: Any, fmt: str) -> None:
    """The results as a table (with the kernels and setting in its title), JSON or CSV; contention warned."""
    import torch

    from vitzoo.measure.bench import bench_environment, kernels_for

    env = bench_environment(options)
    env["threads"] = results[0].threads if results else torch.get_num_threads()
    rows = [r.as_dict() for r in results]
    busy = [r for r in results if r.contended]
    if busy:
        worst = max((r.other_cpu or 0.0) for r in busy)
        warn(f"{len(busy)} result(s) measured while other processes used the CPU (up to {worst:g} cores): "
             "they understate this machine; rerun when it is idle")  # fmt: skip
    fused, why = kernels_for(options)
    how = "autocast" if options.precision == "autocast" and options.dtype != "fp32" else "cast"
    precision = f"{options.dtype} ({how})"
    if options.mode == "train":  # fp32 weights, optimizer and loss always; --dtype is the autocast compute dtype
        precision = "fp32" if options.dtype == "fp32" else f"{options.dtype} autocast (fp32 weights)"
    peak_tf = next((r.peak_tflops for r in results if r.peak_tflops), None)
    what = ""
    if options.mode == "train":
        what = "training steps (forward + backward + SGD)" + (", grad checkpointing" if options.grad_checkpointing
                                                               else "") + " · "  # fmt: skip
    title = (
        f"{what}{env['device_name']} · {env['threads']} threads · torch {env['torch']} · {precision}"
        f" · compile {'on' if options.compile else 'off'}"
        f" · {'fused kernels' if fused else f'aten kernels ({why})'}"
        + (f" · GEMM peak {peak_tf:.3f} TFLOP/s" if peak_tf else "")
        + (" · glibc heap (freed memory not reused)" if env.get("heap") == "system" else "")
    )
    if options.backend != "torch":  # name the runtime and its version first
        title = f"{env['backend']} (ONNX graph, fp32) · {env['device_name']} · {env['threads']} threads" + (
            f" · GEMM peak {peak_tf:.3f} TFLOP/s" if peak_tf else ""
        )
    columns = BENCH_COLUMNS + ([("compile_s", "compile s", number(1), 12)] if options.compile else [])
    if busy:
        columns = [*columns, CONTENDED_COLUMN]
    emit(_rows_with_env(rows, env) if fmt != "table" else rows, fmt, columns, title)
    if fmt == "table" and options.batch_sizes == "auto" and results and results[-1].note:
        info(results[-1].note)


def _distributed() -> bool:
    from vitzoo.parallel.distributed import current

    return current().is_distributed


def _announce_cached_peak(options: Any) -> None:
    """The GEMM peak for the % of peak column: one line when it comes from the cache instead of being measured."""
    from vitzoo.measure.bench import gemm_peak  # the harness's own (what its % of peak column uses)
    from vitzoo.measure.device import num_threads

    with num_threads(options.threads):
        peak = gemm_peak(options.device, options.torch_dtype)  # measured here (and kept) if this is the first time
    if peak.measured_at:
        info(f"GEMM peak {peak.tflops:.3f} TFLOP/s from the cache (measured {peak.measured_at} in this environment; "
             "`vitzoo bench --peak` measures it again)")  # fmt: skip
