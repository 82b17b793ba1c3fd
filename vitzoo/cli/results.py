"""`vitzoo flops` and `vitzoo results`: count compute, and read back what the results store holds."""

from __future__ import annotations

import math
from typing import Any

import click

from vitzoo.cli._output import (
    KEY,
    Command,
    console,
    db_option,
    emit,
    format_options,
    info,
    millions,
    no_store_option,
    number,
    render_table,
    warn,
)

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
        for d in rows:
            store.add("flops", d["model"], {k: v for k, v in d.items() if k != "model"}, env)
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
            return f"batch {_int(g('batch_size'))} {g('dtype')}: {g('status')}"
        pct = "" if g("pct_peak") is None else f", {g('pct_peak'):.0f}% peak"
        pct += f" [{g('backend')}]" if g("backend") not in (None, "torch") else ""
        busy = " (contended)" if _is_true(g("contended")) else ""
        return (f"batch {_int(g('batch_size'))} {g('dtype')}: {g('img_per_s'):.2f} img/s, {g('latency_ms'):.1f} ms"
                f"{pct}{busy}")  # fmt: skip
    if row["kind"] == "flops":
        return f"{g('img_size')} px: {g('gmacs'):.3f} GMACs, {g('gflops'):.3f} GFLOPs"
    skip = {"id", "created", "kind", "model", "summary"}
    items = [(k, v) for k, v in row.items() if k not in skip and not k.startswith("env_") and _scalar(v)]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:4])


def _int(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool)) and not (isinstance(v, float) and math.isnan(v))


@click.command("results", cls=Command)
@click.option(
    "--kind",
    type=click.Choice(["bench", "flops", "eval", "fewshot"]),
    default=None,
    help="Only results of this kind (default: all).",
)
@click.option(
    "--model", "pattern", default=None, metavar="PATTERN", help="Shell pattern on the model name, e.g. 'vit-b*'."
)
@click.option("--last", type=click.IntRange(min=1), default=None, metavar="N", help="Only the last N results.")
@db_option
@format_options
def results_cmd(kind: str | None, pattern: str | None, last: int | None, db: str | None, fmt: str) -> None:
    """Show, filter and export the results database (bench, flops and eval results).

    The table shows one headline per result; --json and --csv export every metric and the environment
    (env_* columns). In Python: `vitzoo.measure.store.ResultStore().query(kind=..., model=...)` (a DataFrame).
    Reading never creates a file: a missing database is an error. Bench results measured while other
    processes used the CPU are marked "(contended)".

    \b
    Examples:
      vitzoo results
      vitzoo results --kind bench --model 'vit-b*' --csv > bench.csv
      vitzoo results --db other.sqlite --json
    """
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
