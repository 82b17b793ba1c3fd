"""`vitzoo bench`, `vitzoo flops` and `vitzoo results`: measure, count, and read back the results store."""

from __future__ import annotations

import math
from typing import Any

import click

from vitzoo.cli._output import (
    console,
    emit,
    emit_csv,
    emit_json,
    err_console,
    fail,
    format_options,
    info,
    millions,
    render_table,
    warn,
)

db_option = click.option(
    "--db",
    type=click.Path(dir_okay=False),
    default=None,
    help="Results database (default: $VITZOO_DB, else ~/.cache/vitzoo/results.sqlite).",
)
no_store_option = click.option("--no-store", is_flag=True, help="Do not append the results to the database.")


def _num(digits: int) -> Any:
    return lambda v: "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.{digits}f}"


BENCH_COLUMNS = [
    ("model", "model", None),
    ("batch_size", "batch", None),
    ("img_size", "res", None),
    ("status", "status", None),
    ("img_per_s", "img/s", _num(2)),
    ("latency_ms", "ms/batch p50", _num(1)),
    ("latency_p90_ms", "p90", _num(1)),
    ("latency_p99_ms", "p99", _num(1)),
    ("memory_mib", "mem MiB", _num(0)),
    ("gflops", "GFLOPs/img", _num(2)),
    ("tflops", "TFLOP/s", _num(3)),
    ("pct_peak", "% GEMM peak", _num(1)),
]


def _rows_with_env(rows: list[dict[str, Any]], env: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**row, **{f"env_{k}": v for k, v in env.items()}} for row in rows]


def _progress_callback(progress: Any, task: Any):
    def update(p) -> None:
        where = p.model if p.batch_size is None else f"{p.model} batch {p.batch_size}"
        progress.update(task, description=f"{where}: {p.phase}", completed=p.step, total=p.total or None)

    return update


@click.command("bench")
@click.argument("names", nargs=-1)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or mps.")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option(
    "--precision",
    type=click.Choice(["cast", "autocast"]),
    default="cast",
    show_default=True,
    help="cast: weights and inputs converted to --dtype; autocast: fp32 weights under torch.autocast.",
)
@click.option("--batch-size", "-b", default="16", show_default=True, help="N, a list such as 1,8,64, or auto.")
@click.option("--img-size", type=int, default=None, help="Input resolution (default: the checkpoint's).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (compile time reported apart).")
@click.option("--channels-last", is_flag=True, help="NHWC memory format (for the ResNets).")
@click.option(
    "--aten",
    is_flag=True,
    help="Plain aten kernels instead of vitzoo's fused CPU kernels (oneDNN linear with bias/GELU/residual).",
)
@click.option("--threads", type=int, default=None, help="CPU intra-op threads (default: torch's).")
@click.option(
    "--backend",
    type=click.Choice(["torch", "onnxruntime", "openvino"]),
    default="torch",
    show_default=True,
    help="What runs the model: vitzoo's PyTorch path, or its exported ONNX graph in ONNX Runtime / OpenVINO (CPU).",
)
@click.option("--warmup", type=int, default=3, show_default=True, help="Untimed passes per batch size.")
@click.option("--iters", type=int, default=10, show_default=True, help="Timed passes per round.")
@click.option("--seconds", type=float, default=None, help="Timed seconds per batch size instead of --iters.")
@click.option("--rounds", type=int, default=3, show_default=True, help="Timed rounds (median reported).")
@click.option("--max-batch", type=int, default=1024, show_default=True, help="Upper bound for --batch-size auto.")
@click.option("--pretrained", is_flag=True, help="Load the checkpoint (default: random weights, works offline).")
@click.option("--peak", is_flag=True, help="Measure only the GEMM roofline of --device/--dtype.")
@db_option
@no_store_option
@format_options
def bench_cmd(names: tuple[str, ...], peak: bool, db: str | None, no_store: bool, fmt: str, **kw: Any) -> None:
    """Measure inference speed: img/s, latency per batch (p50/p90/p99), peak memory, TFLOP/s, % of GEMM peak.

    Each model is warmed up, then timed for --rounds rounds of --iters passes under torch.inference_mode
    (CUDA events and synchronisation on GPUs). Out-of-memory at a batch size is recorded and the run goes on;
    with `-b auto` the largest batch that fits is found. Results are appended to the results database.

    \b
    Examples:
      vitzoo bench vit-b16                            # fp32, batch 16, on the CPU
      vitzoo bench vit-b16 vit-s16 --dtype bf16 -b 1,16,64
      vitzoo bench bit-r50x1 --channels-last --compile --json
      vitzoo bench vit-l16 --device cuda --dtype bf16 -b auto
      vitzoo bench --peak --dtype bf16               # the GEMM roofline only
    """
    import torch

    from vitzoo.bench import BenchOptions, bench_models, parse_batch_sizes, resolve_device
    from vitzoo.store import ResultStore, environment

    if peak:
        if names:
            fail("--peak measures the GEMM roofline only; run it without model names")
        return _peak(kw["device"], kw["dtype"], kw["threads"], db, no_store, fmt)
    if not names:
        fail("name at least one model (see `vitzoo list`), or use --peak")
    options = BenchOptions(
        device=kw["device"],
        dtype=kw["dtype"],
        precision=kw["precision"],
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
        pretrained=kw["pretrained"],
        backend=kw["backend"],
    )
    from vitzoo.factory import resolve_config

    resolve_device(options.device)
    for name in names:  # unknown names fail before anything runs
        resolve_config(name, img_size=options.img_size)
    store = None if no_store else ResultStore(db)  # so does a bad database
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err_console, transient=True
    ) as progress:
        task = progress.add_task("starting", total=None)
        results = bench_models(names, options, _progress_callback(progress, task))
    env = environment(options.device)
    env["threads"] = results[0].threads if results else torch.get_num_threads()
    if options.backend != "torch":  # backend hook: the runtime's version goes into the stored environment
        from vitzoo.backends import backend_version

        env["backend"] = backend_version(options.backend)
    rows = [r.as_dict() for r in results]
    for r in results:
        if r.status != "ok":
            warn(f"{r.model} batch {r.batch_size}: {r.status}: {r.error}")
    if store is not None:
        for row in rows:
            store.add("bench", row["model"], {k: v for k, v in row.items() if k != "model"}, env)
        info(f"{len(rows)} result(s) appended to {store.path}")
    how = "autocast" if options.precision == "autocast" and options.dtype != "fp32" else "cast"
    peak_tf = next((r.peak_tflops for r in results if r.peak_tflops), None)
    title = (
        f"{env['device_name']} · {env['threads']} threads · torch {env['torch']} · {options.dtype} ({how})"
        f" · compile {'on' if options.compile else 'off'}"
        f" · {'fused' if options.fused else 'aten'} kernels"
        + (f" · GEMM peak {peak_tf:.3f} TFLOP/s" if peak_tf else "")
    )
    if options.backend != "torch":  # backend hook: name the runtime and its version first
        title = f"{env['backend']} (ONNX graph, fp32) · {env['device_name']} · {env['threads']} threads" + (
            f" · GEMM peak {peak_tf:.3f} TFLOP/s" if peak_tf else ""
        )
    columns = BENCH_COLUMNS + ([("compile_s", "compile s", _num(1))] if options.compile else [])
    emit(_rows_with_env(rows, env) if fmt != "table" else rows, fmt, columns, title)
    if fmt == "table" and options.batch_sizes == "auto" and results and results[-1].note:
        info(results[-1].note)


PEAK_COLUMNS = [("kernel", "kernel", None), ("M", "M", None), ("K", "K", None), ("N", "N", None),
                ("tflops", "TFLOP/s", _num(3))]  # fmt: skip


def _peak(device: str, dtype: str, threads: int | None, db: str | None, no_store: bool, fmt: str) -> None:
    from vitzoo.bench import DTYPES, resolve_device
    from vitzoo.peak import measure_gemm_peak, num_threads
    from vitzoo.store import ResultStore, environment

    resolve_device(device)
    store = None if no_store else ResultStore(db)
    with num_threads(threads), err_console.status(f"measuring {dtype} GEMM throughput on {device}"):
        result = measure_gemm_peak(device, DTYPES[dtype], seconds=1.0)
        env = environment(device)
    data = result.as_dict()
    if store is not None:
        store.add("bench", "gemm-peak", data, env)
        info(f"GEMM peak appended to {store.path}")
    if fmt == "json":
        emit_json({**data, "env": env})
        return
    rows = [{**r, "dtype": dtype} for r in data["results"]]
    if fmt == "csv":
        emit_csv(rows)
        return
    render_table(
        rows,
        PEAK_COLUMNS,
        title=f"GEMM peak {dtype} on {env['device_name']} ({env['threads']} threads): {result.tflops:.3f} TFLOP/s",
    )


FLOPS_COLUMNS = [
    ("model", "model", None),
    ("img_size", "res", None),
    ("params", "params (M)", millions),
    ("gmacs", "GMACs (counted)", _num(3)),
    ("gflops", "GFLOPs (= 2 x GMACs)", _num(3)),
    ("gmacs_closed_form", "GMACs (closed form)", _num(3)),
    ("agree", "agree", lambda v: "✓" if v else "✗"),
]


@click.command("flops")
@click.argument("names", nargs=-1, required=True)
@click.option("--img-size", type=int, default=None, help="Input resolution (default: the checkpoint's).")
@click.option(
    "--count-on",
    type=click.Choice(["meta", "cpu"]),
    default="meta",
    show_default=True,
    help="meta: no memory, instant; cpu: a real forward pass of one image.",
)
@db_option
@no_store_option
@format_options
def flops_cmd(names: tuple[str, ...], img_size: int | None, count_on: str, db: str | None, no_store: bool, fmt: str):
    """Compute per image: GMACs and GFLOPs (= 2 x GMACs), counted and in closed form.

    MACs cover every conv and dense layer and the attention matmuls (Q K^T and A V), counted with
    torch's FlopCounterMode (with the CPU SDPA kernel's formula added: torch drops it) and checked
    against the closed form of each family.

    \b
    Examples:
      vitzoo flops vit-b16                 # 17.56 GMACs at 224
      vitzoo flops vit-b16 --img-size 384
      vitzoo flops 'vit-*' --csv
    """
    import vitzoo
    from vitzoo.flops import count_flops
    from vitzoo.store import ResultStore, environment

    expanded: list[str] = []
    for name in names:
        matches = vitzoo.list_models(name) if any(c in name for c in "*?[") else [name]
        if not matches:
            fail(f"no model matches {name!r}; see `vitzoo list`")
        expanded += matches
    store = None if no_store else ResultStore(db)
    counts = [count_flops(n, img_size=img_size, device=count_on) for n in expanded]
    rows = []
    for c in counts:
        d = c.as_dict()
        d["gmacs_closed_form"] = c.macs_closed_form / 1e9
        rows.append(d)
        if not c.agree:
            warn(f"{c.model}: counted {c.macs} MACs, closed form {c.macs_closed_form}")
    if store is not None:
        env = environment("cpu")
        for d in rows:
            store.add("flops", d["model"], {k: v for k, v in d.items() if k != "model"}, env)
        info(f"{len(rows)} result(s) appended to {store.path}")
    emit(rows, fmt, FLOPS_COLUMNS, "compute per image")


RESULT_COLUMNS = [
    ("id", "id", None),
    ("created", "created (UTC)", None),
    ("kind", "kind", None),
    ("model", "model", None),
    ("summary", "result", None),
    ("env_device_name", "device", None),
    ("env_torch", "torch", None),
]


def _summary(row: dict[str, Any]) -> str:
    """The headline numbers of a result, whatever its kind."""
    g = row.get
    if row["kind"] == "bench" and row["model"] == "gemm-peak":
        return f"{g('dtype')} GEMM peak {g('peak_tflops') or 0:.3f} TFLOP/s"
    if row["kind"] == "bench":
        if g("status") != "ok":
            return f"batch {_int(g('batch_size'))} {g('dtype')}: {g('status')}"
        pct = "" if g("pct_peak") is None else f", {g('pct_peak'):.0f}% peak"
        pct += f" [{g('backend')}]" if g("backend") not in (None, "torch") else ""  # backend hook
        return f"batch {_int(g('batch_size'))} {g('dtype')}: {g('img_per_s'):.2f} img/s, {g('latency_ms'):.1f} ms{pct}"
    if row["kind"] == "flops":
        return f"{g('img_size')} px: {g('gmacs'):.3f} GMACs, {g('gflops'):.3f} GFLOPs"
    skip = {"id", "created", "kind", "model", "summary"}
    items = [(k, v) for k, v in row.items() if k not in skip and not k.startswith("env_") and _scalar(v)]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:4])


def _int(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool)) and not (isinstance(v, float) and math.isnan(v))


@click.command("results")
@click.option("--kind", type=click.Choice(["bench", "flops", "eval", "fewshot"]), default=None)
@click.option("--model", "pattern", default=None, help="Shell pattern on the model name, e.g. 'vit-b*'.")
@click.option("--last", type=int, default=None, help="Only the last N results.")
@db_option
@format_options
def results_cmd(kind: str | None, pattern: str | None, last: int | None, db: str | None, fmt: str) -> None:
    """Show, filter and export the results database (bench, flops and eval results).

    The table shows one headline per result; --json and --csv export every metric and the environment
    (env_* columns). In Python: `vitzoo.store.ResultStore().query(kind=..., model=...)` (a DataFrame).

    \b
    Examples:
      vitzoo results
      vitzoo results --kind bench --model 'vit-b*' --csv > bench.csv
      vitzoo results --db other.sqlite --json
    """
    from vitzoo.store import ResultStore

    store = ResultStore(db)
    df = store.query(kind=kind, model=pattern)
    if last is not None:
        df = df.tail(last)
    rows = [{k: (None if _is_nan(v) else v) for k, v in r.items()} for r in df.to_dict(orient="records")]
    if fmt in ("json", "csv"):
        emit(rows, fmt, [], "")
        return
    if not rows:
        console.print(f"no results in {store.path}" + (" matching the filters" if kind or pattern else ""))
        return
    for r in rows:
        r["summary"] = _summary(r)
    render_table(rows, RESULT_COLUMNS, title=f"{len(rows)} result(s) in {store.path}")


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)
