"""`vitzoo flops` and `vitzoo results`: count compute, and read back what the results store holds."""

from __future__ import annotations

import math
from typing import Any

import click

from vitzoo.cli import SuggestingGroup
from vitzoo.cli._output import (
    KEY,
    Command,
    CommandGroup,
    console,
    db_option,
    emit,
    emit_json,
    format_options,
    info,
    millions,
    no_store_option,
    number,
    render_table,
    warn,
)
from vitzoo.cli._preflight import renamed_option
from vitzoo.errors import VitzooError
from vitzoo.measure.store import KINDS as STORED_KINDS

FLOPS_COLUMNS = [  # at 80 columns: the counted and closed-form GMACs and whether they agree stay (KEY)
    ("model", "model", None, KEY),
    ("img_size", "res", None, 1),
    ("params", "params (M)", millions, 2),
    ("gmacs", "GMACs (counted)", number(3), KEY),
    ("gflops", "GFLOPs (= 2 x GMACs)", number(3), 3),
    ("gmacs_closed_form", "GMACs (closed form)", number(3), KEY),
    ("agree", "agree", lambda v: "✓" if v else "✗", KEY),
]


@click.command("flops", cls=Command)
@click.argument("names", nargs=-1, required=True, metavar="NAME|PATTERN|FILE...")
@click.option("--img-size", type=int, default=None, metavar="PX", help="Input resolution (default: the checkpoint's).")
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

    NAME is a model (arch or arch.tag), a shell pattern ('vit-*') or a weight file (.safetensors, .npz, .bin,
    .pth; its architecture is read from the file). MACs cover every conv and dense layer and the attention
    matmuls (Q K^T and A V), counted with torch's FlopCounterMode (with the CPU SDPA kernel's formula added:
    torch drops it) and checked against the closed form of each family.

    \b
    Examples:
      vitzoo flops vit-b16                 # 17.56 GMACs at 224
      vitzoo flops vit-b16 --img-size 384
      vitzoo flops 'vit-*' --csv
      vitzoo flops ./ti16.safetensors
    """
    from vitzoo.measure.flops import count_flops
    from vitzoo.measure.records import record
    from vitzoo.measure.store import ResultStore, environment
    from vitzoo.weights.names import check_source, expand_sources

    expanded = expand_sources(names)
    for name in expanded:  # unknown names, missing files, bad sizes: before anything is counted
        check_source(name, img_size=img_size)
    store = None if no_store else ResultStore(db)  # a corrupt or foreign database is refused here
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
        for c in counts:
            store.save(record(c, env=env))
        info(f"{len(rows)} result(s) appended to {store.path}")
    emit(rows, fmt, FLOPS_COLUMNS, "compute per image")


RESULT_COLUMNS = [
    ("id", "id", None, 0),
    ("created", "created (UTC)", lambda v: str(v).replace("T", " ")[:19], 4),
    ("kind", "kind", None, 2),
    ("model", "model", None, 1),
    ("summary", "result", None, 3),
    ("env_device_name", "device", None, 5),
    ("env_torch", "torch", None, 6),
]


def _summary(row: dict[str, Any]) -> str:
    """The headline numbers of a result, whatever its kind."""
    g = row.get
    if row["kind"] == "bench" and row["model"] == "gemm-peak":
        return f"{g('dtype')} GEMM peak {g('peak_tflops') or 0:.3f} TFLOP/s"
    if row["kind"] == "bench":
        if g("status") != "ok":
            return (
                f"batch {_int(g('batch_size'))} {g('dtype')}{' train' if g('mode') == 'train' else ''}: {g('status')}"
            )
        pct = "" if g("pct_peak") is None else f", {g('pct_peak'):.0f}% peak"
        pct += f" [{g('backend')}]" if g("backend") not in (None, "torch") else ""
        busy = " (contended)" if _is_true(g("contended")) else ""
        train = " train" + (" (grad checkpointing)" if _is_true(g("grad_checkpointing")) else "") if g(
            "mode") == "train" else ""  # fmt: skip
        rate = g("img_per_s") if g("img_per_s") is not None else g("throughput")  # the first releases' key
        latency = "" if g("latency_ms") is None else f", {g('latency_ms'):.1f} ms"
        return f"batch {_int(g('batch_size'))} {g('dtype')}{train}: {_num(rate, 2)} img/s{latency}{pct}{busy}"
    if row["kind"] == "flops":
        return f"{g('img_size')} px: {g('gmacs'):.3f} GMACs, {g('gflops'):.3f} GFLOPs"
    skip = {"id", "created", "kind", "model", "summary"}
    items = [(k, v) for k, v in row.items() if k not in skip and not k.startswith("env_") and _scalar(v)]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:4])


def _num(v: Any, digits: int) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) and not _is_nan(v) else "—"


def _int(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool)) and not (isinstance(v, float) and math.isnan(v))


class ResultsGroup(SuggestingGroup, CommandGroup):
    """`vitzoo results` shows the database; `vitzoo results compare` is its one subcommand."""


@click.group("results", cls=ResultsGroup, invoke_without_command=True)
@click.option(
    "--kind",
    type=click.Choice(STORED_KINDS),
    default=None,
    help="Only results of this kind (default: all; a GEMM peak is a bench result of model gemm-peak).",
)
@click.option(
    "--models", "pattern", default=None, metavar="PATTERN", help="Shell pattern on the model name, e.g. 'vit-b*'."
)
@renamed_option("--model", "--models PATTERN", "--expect names an architecture in `vitzoo convert`")
@click.option("--last", type=click.IntRange(min=1), default=None, metavar="N", help="Only the last N results.")
@db_option
@format_options
@click.pass_context
def results_cmd(
    ctx: click.Context, kind: str | None, pattern: str | None, last: int | None, db: str | None, fmt: str
) -> None:
    """Show, filter and export the results database (bench, flops and eval results).

    The table shows one headline per result; --json and --csv export every metric and the environment
    (env_* columns). In Python: `vitzoo.measure.store.ResultStore().load(kind=..., model=...)` (typed records,
    `vitzoo.measure.records`) or `.query(...)` (a DataFrame).
    `vitzoo results compare A B` sets two databases, machines or releases side by side (see its --help).
    Reading never creates a file: a missing database is an error. Bench results measured while other
    processes used the CPU are marked "(contended)".

    \b
    Examples:
      vitzoo results
      vitzoo results --kind bench --models 'vit-b*' --csv > bench.csv
      vitzoo results --db other.sqlite --json
      vitzoo results compare old.sqlite new.sqlite
    """
    if ctx.invoked_subcommand is not None:
        return
    from vitzoo.measure.store import ResultStore

    store = ResultStore(db, readonly=True)
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
    busy = sum(1 for r in rows if r["kind"] == "bench" and _is_true(r.get("contended")))
    if busy:
        warn(f"{busy} bench result(s) were measured while other processes used the CPU (marked contended)")


def _is_true(v: Any) -> bool:
    return v is True or (isinstance(v, (int, float)) and not _is_nan(v) and bool(v))


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _ratio(v: Any) -> str:
    return "—" if v is None else f"{v:.2f}x"


COMPARE_COLUMNS = [  # at 80 columns the ratios stay, the raw numbers go first
    ("model", "model", None, 0),
    ("backend", "backend", None, 9),
    ("dtype", "dtype", None, 4),
    ("batch_size", "batch", None, 5),
    ("a_img_per_s", "A img/s", number(2), 6),
    ("b_img_per_s", "B img/s", number(2), 7),
    ("ratio", "B/A", _ratio, 1),
    ("a_peak_tflops", "A GEMM TFLOP/s", number(3), 10),
    ("b_peak_tflops", "B GEMM TFLOP/s", number(3), 11),
    ("predicted", "predicted B/A", _ratio, 2),
    ("software", "measured/predicted", _ratio, 3),
    ("busy", "contended", None, 8),
]


def _side_records(selector: str, db: str | None, pattern: str | None) -> tuple[str, list[dict[str, Any]]]:
    """A side of `results compare`: a database file, or KEY=VALUE filters on the --db database."""
    from pathlib import Path

    from vitzoo.measure.store import ResultStore
    from vitzoo.report.compare import parse_filters, select

    if "=" in selector and not Path(selector).expanduser().exists():
        filters = parse_filters(selector)
        store = ResultStore(db, readonly=True)
        label, records = f"{selector} in {store.path}", select(store.records(kind="bench", model=pattern), filters)
    else:
        store = ResultStore(selector, readonly=True)
        label, records = str(store.path), store.records(kind="bench", model=pattern)
    if not any(r["model"] != "gemm-peak" for r in records):
        raise VitzooError(
            f"{label} holds no benchmark results" + (f" of models matching {pattern!r}" if pattern else "")
        )
    return label, records


@results_cmd.command("compare", cls=Command)
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option(
    "--models",
    "pattern",
    default=None,
    metavar="PATTERN",
    help="Only models matching this shell pattern, e.g. 'vit-b*'.",
)
@renamed_option("--model", "--models PATTERN", "as in `vitzoo report` and `vitzoo results`")
@db_option
@format_options
def compare_cmd(a: str, b: str, pattern: str | None, db: str | None, fmt: str) -> None:
    """Compare benchmark throughput of two sides, A and B: is a difference the machine or the software?

    Each of A and B is a results database FILE, or KEY=VALUE[,KEY=VALUE...] filters on the records of --db: KEY
    is any metric or environment field (host, device_name, torch, threads, dtype, backend, label, ...), VALUE a
    shell pattern. For each setting both sides measured (model, backend, dtype, batch, resolution, compile): the
    median img/s of each side's uncontended runs, the ratio B/A, the ratio of the two sides' GEMM rooflines (what
    the machines alone predict, from `vitzoo bench --peak` or the peak each benchmark measured) and measured /
    predicted: near 1.00x the machine explains the difference, below it B's software or settings lose speed the
    hardware would give. Then the environment fields that differ. A side with only contended runs (other
    processes used the CPU) is flagged. Databases from older vitzoo versions work (missing fields: fp32, torch).

    \b
    Examples:
      vitzoo results compare laptop.sqlite gpu-box.sqlite
      vitzoo results compare host=box1 host=box2 --db lab.sqlite
      vitzoo results compare 'torch=2.12*' 'torch=2.13*' --models 'vit-b*'
      vitzoo results compare old.sqlite new.sqlite --json
    """
    from vitzoo.report.compare import compare

    label_a, records_a = _side_records(a, db, pattern)
    label_b, records_b = _side_records(b, db, pattern)
    result = compare(records_a, records_b, a_label=label_a, b_label=label_b)
    if not result.rows:
        raise VitzooError(f"no benchmark setting (model, backend, dtype, batch, resolution) was measured on both "
                          f"sides: A has {result.only_a}, B has {result.only_b}")  # fmt: skip
    rows = [r.as_dict() for r in result.rows]
    diff = [{"key": k, "a": va, "b": vb} for k, va, vb in result.env_diff]
    if fmt == "json":
        emit_json({"a": result.a, "b": result.b, "rows": rows, "env_diff": diff, "only_a": result.only_a,
                   "only_b": result.only_b})  # fmt: skip
        return
    if fmt == "csv":
        emit(rows, fmt, [])
        return
    for r in rows:
        r["busy"] = ", ".join(s for s, flag in (("A", r["a_contended"]), ("B", r["b_contended"])) if flag)
    title = f"A = {result.a}\nB = {result.b}\npredicted B/A: the ratio of the two GEMM rooflines (the machines alone)"
    render_table(rows, COMPARE_COLUMNS, title=title)
    if diff:
        render_table(diff, [("key", "environment", None), ("a", "A", None), ("b", "B", None)],
                     title="what differs between the two environments")  # fmt: skip
    else:
        info("the two environments record the same fields and values")
    if result.only_a or result.only_b:
        info(f"settings measured on one side only (not compared): A {result.only_a}, B {result.only_b}")
    busy = sum(1 for r in rows if r["busy"])
    if busy:
        warn(f"{busy} row(s) rest on contended runs only (other processes used the CPU): they understate that side")
