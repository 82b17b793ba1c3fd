"""`vitzoo tradeoff`: accuracy against compute (params, GMACs, measured throughput), one row per checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from vitzoo import dtypes
from vitzoo.cli._output import KEY, db_option, emit, format_options, info, millions
from vitzoo.cli._preflight import plot_prefix as check_plot_prefix
from vitzoo.cli._preflight import renamed_option
from vitzoo.errors import VitzooError
from vitzoo.zoo.formats import BACKENDS
from vitzoo.zoo.timm_results import DATASETS


def _pct(v) -> str:
    return "—" if v is None else f"{v:.2f}"


TRADEOFF_COLUMNS = [  # at 80 columns: model, GMACs, img/s, top-1 and the Pareto mark stay (KEY)
    ("model", "model", None, KEY),
    ("family", "family", None, 6),
    ("img_size", "res", None, 3),
    ("params", "params (M)", millions, 4),
    ("gmacs", "GMACs", None, KEY),
    ("throughput", "img/s", lambda v: "—" if v is None else f"{v:,.1f}", KEY),
    ("top1", "top-1 %", _pct, KEY),
    ("top1_kind", "top-1 is", None, 2),
    ("top1_source", "source", None, 5),
    ("pareto", "Pareto", None, KEY),
]


def _existing_store(db: str | None):
    """The results database to read, or None when there is none yet (a read-only command creates no file)."""
    from vitzoo.measure.store import ResultStore, default_db_path

    path = default_db_path() if db is None else Path(db).expanduser()
    if not path.exists():
        info(f"no results database at {path}: reported accuracy, no throughput")
        return None
    return ResultStore(path, readonly=True)


def _pareto_mark(row) -> str:
    marks = (["GMACs"] if row.pareto_gmacs else []) + (["img/s"] if row.pareto_throughput else [])
    return "★ " + ", ".join(marks) if marks else ""


@click.command("tradeoff")
@click.argument("names", nargs=-1, metavar="[NAME[.TAG]|PATTERN]...")
@click.option("--device", default="cpu", show_default=True, help="Throughput measured on this device.")
@click.option("--dtype", type=click.Choice((*dtypes.NAMES, "int8")), default="fp32", show_default=True,
              help="Throughput and measured accuracy in this precision; int8: the fastest non-degraded cell of "
                   "`vitzoo bench --dtype int8`, with the fp32 accuracy it keeps.")  # fmt: skip
@click.option("--backend", type=click.Choice(BACKENDS), default="torch",
              show_default=True, help="Throughput measured with this `vitzoo bench --backend`.")  # fmt: skip
@db_option
@click.option(
    "--reported-only",
    "no_store",
    is_flag=True,
    help="Do not read the results database: reported accuracy, no throughput.",
)
@renamed_option("--no-store", "--reported-only", "--no-store means 'do not write' in every command", is_flag=True)
@click.option("--tags", type=click.Choice(["default", "all"]), default="default", show_default=True,
              help="Per architecture: its default checkpoint, or every checkpoint with an accuracy.")  # fmt: skip
@click.option("--dataset", type=click.Choice(DATASETS), default="imagenet", show_default=True,
              help="The set on the accuracy axis: your `vitzoo eval` of it, else the published number (timm's "
                   "evaluation of the checkpoint's timm file for real, v2, sketch, a, r).")  # fmt: skip
@click.option("--plot", "plot_prefix", type=click.Path(path_type=str), metavar="PREFIX",
              help="Write the plot to PREFIX.png and PREFIX.svg (folders created).")  # fmt: skip
@format_options
def tradeoff_cmd(names, device, dtype, backend, db, no_store, tags, dataset, plot_prefix, fmt) -> None:
    """Accuracy vs compute: params, GMACs, throughput and top-1 of ViTs, hybrids and BiT ResNets.

    Accuracy is on ImageNet-1k, or the set --dataset names (real, v2, sketch, a, r): your own `vitzoo eval` of
    the whole set under its protocol when the results database has one made as the checkpoint's row says (its
    resolution, crop and resize, in --dtype), otherwise the reported number: the registry's for ImageNet-1k,
    timm's published evaluation of the checkpoint's timm file for the others (the `top-1 is` and `source`
    columns say which). Throughput is the best `vitzoo bench` result for
    --device/--dtype/--backend. ★ marks the Pareto-optimal rows (no other row is as
    accurate for less compute, or as accurate at higher throughput). The plot adds the paper's own view:
    reported accuracy vs pre-training exaFLOPs (Table 6, its Figure 5).

    \b
    Examples:
      vitzoo tradeoff                         # default checkpoint of every model
      vitzoo tradeoff 'vit-b*' bit-r50x1 --csv
      vitzoo tradeoff vit-b16 vit-b32 --tags all   # in21k vs in1k-only vs SAM: the data-size argument
      vitzoo tradeoff --plot docs/tradeoff    # writes docs/tradeoff.png and .svg
      vitzoo tradeoff --dataset a --tags all  # ImageNet-A top-1 vs compute
    vitzoo tradeoff --dtype int8 --backend openvino   # after `vitzoo bench NAME --backend openvino --dtype int8`
    """
    from vitzoo.evaluate.tradeoff import DATASET_TITLES, build_tradeoff

    prefix = None if plot_prefix is None else check_plot_prefix(plot_prefix)
    store = None if no_store else _existing_store(db)
    rows = build_tradeoff(names, store=store, device=device, dtype=dtype, tags=tags, backend=backend, dataset=dataset)
    if not rows:
        raise VitzooError(f"no checkpoint with an {DATASET_TITLES[dataset]} accuracy among these names")
    if prefix is not None:
        from vitzoo.evaluate.plots import plot_tradeoff

        where = f"{device}, {dtype}" + ("" if backend == "torch" else f", {backend}")
        try:
            paths = plot_tradeoff(rows, prefix, subtitle=where)
        except OSError as e:
            raise VitzooError(f"cannot write the plot {prefix}.png/.svg: {e.strerror or e}") from None
        for path in paths:
            info(f"wrote {path}")
    data = [r.as_dict() for r in rows]
    if fmt in ("json", "csv"):
        emit(data, fmt, TRADEOFF_COLUMNS)
        return
    table = [{**d, "pareto": _pareto_mark(r)} for d, r in zip(data, rows, strict=True)]
    where = "no results database" if store is None else f"throughput: {device} {dtype}"
    where += "" if store is None or backend == "torch" else f" {backend}"
    title = f"{DATASET_TITLES[dataset]} accuracy vs compute ({len(rows)} checkpoints; {where})"
    emit(table, fmt, TRADEOFF_COLUMNS, title)
