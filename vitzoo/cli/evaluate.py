"""`vitzoo eval`, `vitzoo fewshot` and `vitzoo tradeoff`: accuracy on the user's data, and the compute trade-off."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from vitzoo import dtypes
from vitzoo.cli._dist import is_main, scale_out
from vitzoo.cli._models import load_model
from vitzoo.cli._output import (
    KEY,
    Progress,
    db_option,
    emit,
    err_console,
    fail,
    format_options,
    info,
    millions,
    no_store_option,
    render_table,
    warn,
)
from vitzoo.cli._preflight import at_least, exclusive, fraction, positive_number, refuse_unused
from vitzoo.cli._preflight import plot_prefix as check_plot_prefix
from vitzoo.errors import VitzooError

MAX_LISTED_FAILURES = 10


def _pct(v: Any) -> str:
    return "—" if v is None else f"{v:.2f}"


def _check_device(ctx: click.Context, param: click.Parameter, device: str) -> str:
    """--device names an available device (checked when the options are read, before any data or download)."""
    from vitzoo.measure.device import resolve_device

    resolve_device(device)
    return device


def data_options(func: Callable) -> Callable:
    """The options shared by `eval` and `fewshot`: data, preprocessing overrides, loading, device, store."""
    options = [
        click.option("--data", "data_path", type=click.Path(path_type=str), metavar="PATH",
                     help="ImageFolder (one folder per class; ImageNet synset folders map to the 1000 standard "
                          "indices), or a flat folder with --labels."),
        click.option("--labels", "labels_file", type=click.Path(path_type=str), metavar="FILE",
                     help="Label file of a flat ImageNet validation folder: 'FILE LABEL' lines or one LABEL per "
                          "file in sorted order (WordNet id or index 0-999)."),
        click.option("--hf-dataset", "hf", metavar="NAME|DIR",
                     help="A Hugging Face dataset (name, or a save_to_disk directory); needs `datasets`."),
        click.option("--split", default="validation", show_default=True, help="Split of --hf-dataset."),
        click.option("--img-size", type=int, callback=at_least(1), metavar="PIXELS",
                     help="Resolution override (position embeddings resized). Default: the checkpoint's."),
        click.option("--crop-pct", type=float, callback=fraction, metavar="FRACTION",
                     help="Crop fraction override in (0, 1] (< 1: resize the shorter side to img-size / crop-pct, "
                          "centre crop). Default: the checkpoint's."),
        click.option("--batch-size", "-b", default=32, show_default=True, type=int, callback=at_least(1),
                     help="Images per forward pass."),
        click.option("--workers", "-j", default=2, show_default=True, type=int, callback=at_least(0),
                     help="Data-loading processes (0: load in this process)."),
        click.option("--limit", type=int, callback=at_least(1), metavar="N",
                     help="Only N images, evenly spaced (a quick look)."),
        click.option("--device", default="cpu", show_default=True, callback=_check_device,
                     help="cpu, cuda, cuda:N or mps."),
        click.option("--dtype", type=click.Choice(dtypes.NAMES), default="fp32", show_default=True,
                     help="Precision of the weights and inputs."),
        db_option,
        no_store_option,
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return exclusive("--data", "--hf-dataset")(exclusive("--labels", "--hf-dataset")(func))


@contextmanager
def _progress(description: str):
    """A transient progress bar on stderr (off a terminal: a line every few seconds); yields its callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=err_console, transient=True)  # fmt: skip
    task = bar.add_task(description, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _describe_run(model, data, pp) -> str:
    """The line announcing a run: model, data, preprocessing (and where a file's preprocessing comes from)."""
    source = getattr(model, "preprocess_source", None)
    note = f" ({source})" if source is not None and source != f"registry tag {model.name}" else ""
    return f"{model.name} on {data.description}: {len(data)} images; {_describe(pp)}{note}"


def _dataset(data_path, labels_file, hf, split, limit):
    from vitzoo.evaluate.data import open_dataset

    if not hf:
        refuse_unused(["split"], "without --hf-dataset (an image folder has no splits)")
    data = open_dataset(data_path, labels_file=labels_file, hf=hf, split=split)
    return data.subset(limit) if limit is not None else data


def _report_failures(failures) -> None:
    if not failures:
        return
    warn(f"{len(failures)} file(s) could not be read and were skipped:")
    for key, reason in failures[:MAX_LISTED_FAILURES]:
        info(f"  {key}: {reason}")
    if len(failures) > MAX_LISTED_FAILURES:
        info(f"  ... and {len(failures) - MAX_LISTED_FAILURES} more")


def _outputs(db: str | None, no_store: bool) -> None:
    """Check, before any work, that the result can be recorded (``vitzoo.measure.store.validate_output_db``)."""
    if not no_store:
        from vitzoo.measure.store import validate_output_db

        validate_output_db(db)


def _store(db: str | None, kind: str, model: str, metrics: dict[str, Any], device: str) -> None:
    """Record a result already printed; a failure now is one error line and exit 1, the result stays on screen."""
    from vitzoo.measure.env import environment
    from vitzoo.measure.store import ResultStore

    try:
        store = ResultStore(db)
        row = store.add(kind, model, metrics, environment(device))
    except (VitzooError, OSError) as e:
        fail(f"the result above was not recorded: {e}")
    info(f"recorded as {kind} #{row} in {store.path}")


EVAL_FIELDS = [  # (key, label, formatter) of the `eval` result, shown one per line
    ("model", "model", str),
    ("dataset", "dataset", str),
    ("num_images", "images", str),
    ("skipped", "skipped (unreadable)", str),
    ("top1", "top-1 %", _pct),
    ("top5", "top-5 %", _pct),
    ("real_top1", "ReaL top-1 %", _pct),
    ("real_images", "images with ReaL labels", str),
    ("images_per_s", "images/s (end to end)", lambda v: f"{v:,.1f}"),
    ("preprocess", "preprocessing", str),
]


@click.command("eval")
@click.argument("name", metavar="NAME[.TAG]|FILE")
@data_options
@click.option("--real-labels", type=click.Path(path_type=str), metavar="FILE",
              help="ImageNet-ReaL labels (real.json); adds ReaL top-1 over the images that have any.")  # fmt: skip
@format_options
@scale_out
def eval_cmd(name, data_path, labels_file, hf, split, img_size, crop_pct, batch_size, workers, limit, device, dtype,
             db, no_store, real_labels, fmt) -> None:  # fmt: skip
    """Measure top-1 / top-5 accuracy of a checkpoint on a labelled image dataset.

    Images are prepared exactly as the checkpoint was evaluated (resolution, resize/crop, interpolation,
    mean/std from its registry entry; a FILE: the registry tag it names, else its family's default, vit_jax's
    resize); unreadable files are reported and skipped. The result is printed, then recorded in the results
    database, where `vitzoo tradeoff` finds it; --db is checked before the work starts.

    \b
    Examples:
      vitzoo eval vit-b16 --data ~/imagenet/val                 # synset folders
      vitzoo eval vit-b16.orig-in21k-ft-in1k-384 --data val/ --labels val_labels.txt --real-labels real.json
      vitzoo eval bit-r50x1 --hf-dataset imagenet-1k --split validation --limit 500
    """
    from vitzoo.evaluate.accuracy import RunOptions, check_head, load_real_labels
    from vitzoo.parallel.sharded import evaluate_sharded

    _outputs(db, no_store)
    data = _dataset(data_path, labels_file, hf, split, limit)
    real = load_real_labels(real_labels) if real_labels else None
    _precheck(name, data, img_size)
    model, pp, zeroed = load_model(
        name, img_size=img_size, crop_pct=crop_pct, device=device, dtype=dtype, batch=batch_size
    )
    if zeroed:
        raise VitzooError(f"{model.name}: the classification head is all zeros (as in the ImageNet-21k files whose "
                          "authors zeroed it), so accuracy would be meaningless; evaluate a fine-tuned checkpoint, "
                          "or use `vitzoo fewshot`")  # fmt: skip
    check_head(model, data)
    info(_describe_run(model, data, pp))
    with _progress("evaluating") as progress:
        result = evaluate_sharded(model, pp, data, options=RunOptions(batch_size, workers), real_labels=real,
                                  progress=progress)  # fmt: skip
    if not is_main():  # under torchrun / --nproc: rank 0 reports and stores
        return
    _report_failures(result.failures)
    row = {"model": model.name, **result.metrics()}
    if fmt in ("json", "csv"):
        emit([row], fmt, [])
    else:
        fields = [f for f in EVAL_FIELDS if real is not None or not f[0].startswith("real_")]
        table = [{"field": label, "value": show(row[key])} for key, label, show in fields]
        render_table(table, [("field", "metric", None), ("value", "value", None)], title="vitzoo eval")
    if not no_store:
        metrics = {**result.metrics(), "imagenet": data.classes.imagenet, "limit": limit, "device": device,
                   "dtype": dtype, "batch_size": batch_size, "workers": workers,
                   "weights_sha256": model.weights_sha256}  # fmt: skip
        _store(db, "eval", model.name, metrics, device)


def _precheck(name: str, data, img_size: int | None) -> None:
    """For a registry name, refuse a head that cannot score the data before downloading anything."""
    from vitzoo.evaluate.accuracy import check_head
    from vitzoo.weights.loading import is_path
    from vitzoo.zoo.lookup import resolve_config

    if is_path(name):
        return
    spec, weights, config = resolve_config(name, img_size=img_size)
    if weights is not None and weights.zero_head:
        raise VitzooError(
            f"{spec.name}.{weights.tag}: its authors zeroed the classification head, so its accuracy is "
            "meaningless; evaluate a tag fine-tuned on these classes, or use `vitzoo fewshot`"
        )
    check_head(config.num_classes, data)


def _describe(pp) -> str:
    from vitzoo.zoo.preprocess import describe_preprocess

    return describe_preprocess(pp)


def _parse_shots(text: str) -> list[int]:
    try:
        shots = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise VitzooError(f"--shots takes comma-separated integers, not {text!r}") from None
    if not shots or shots[0] <= 0:
        raise VitzooError(f"--shots must be positive integers, not {text!r}")
    return shots


FEWSHOT_COLUMNS = [
    ("model", "model", None),
    ("shots", "shots", None),
    ("accuracy", "accuracy %", _pct),
    ("train_images", "train images", None),
    ("test_images", "test images", None),
    ("classes", "classes", None),
]


@click.command("fewshot")
@click.argument("name", metavar="NAME[.TAG]|FILE")
@data_options
@click.option("--shots", default="1,5,10,25", show_default=True, metavar="K[,K...]",
              help="Images per class to fit on: positive integers, comma-separated.")  # fmt: skip
@click.option("--seed", default=0, show_default=True, type=int, callback=at_least(0),
              help="Seed (>= 0) of the per-class sampling.")  # fmt: skip
@click.option("--l2-reg", default=2.0**10, show_default=True, type=float, callback=positive_number,
              help="Ridge strength (> 0) of the least-squares fit.")  # fmt: skip
@format_options
@scale_out
def fewshot_cmd(name, data_path, labels_file, hf, split, img_size, crop_pct, batch_size, workers, limit, device, dtype,
                db, no_store, shots, seed, l2_reg, fmt) -> None:  # fmt: skip
    """Few-shot linear evaluation, as the ViT paper does it.

    Frozen pre-logit features; for each shot count, a closed-form L2-regularised least-squares fit to {-1, 1}
    one-hot targets on SHOTS images per class; accuracy on the images not used for the largest shot count.
    Deterministic given --seed.

    \b
    Examples:
      vitzoo fewshot vit-b16.orig-in21k --data ~/pets --shots 1,5,10,25
      vitzoo fewshot bit-r50x1 --data ~/flowers --shots 5 --seed 1
    """
    from vitzoo.evaluate.accuracy import RunOptions
    from vitzoo.evaluate.fewshot import check_shots, fewshot_accuracy
    from vitzoo.parallel.sharded import extract_features_sharded

    shot_list = _parse_shots(shots)
    _outputs(db, no_store)
    data = _dataset(data_path, labels_file, hf, split, limit)
    check_shots(data.labels, shot_list)  # before the features: the labels alone say whether the shots fit
    model, pp, _ = load_model(name, img_size=img_size, crop_pct=crop_pct, device=device, dtype=dtype, num_classes=0)
    info(_describe_run(model, data, pp))
    with _progress("extracting features") as progress:
        feats = extract_features_sharded(model, pp, data, options=RunOptions(batch_size, workers), progress=progress)
    if not is_main():  # under torchrun / --nproc: rank 0 reports and stores
        return
    _report_failures(feats.failures)
    results = fewshot_accuracy(feats, shot_list, seed=seed, l2_reg=l2_reg)
    classes = len(set(feats.labels.tolist()))
    rows = [{"model": model.name, **vars(r), "classes": classes} for r in results]
    emit(rows, fmt, FEWSHOT_COLUMNS, f"vitzoo fewshot — {model.name} (seed {seed})")
    if not no_store:
        metrics = {"dataset": data.description, "shots": {str(r.shots): r.accuracy for r in results},
                   "seed": seed, "l2_reg": l2_reg, "classes": classes, "num_images": len(feats.labels),
                   "skipped": len(feats.failures), "img_size": pp.img_size, "preprocess": _describe(pp),
                   "limit": limit, "device": device, "dtype": dtype,
                   "weights_sha256": model.weights_sha256}  # fmt: skip
        _store(db, "fewshot", model.name, metrics, device)


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
@click.option("--dtype", type=click.Choice(dtypes.NAMES), default="fp32", show_default=True,
              help="Throughput and measured accuracy in this precision.")  # fmt: skip
@click.option("--backend", type=click.Choice(["torch", "onnxruntime", "openvino"]), default="torch",
              show_default=True, help="Throughput measured with this `vitzoo bench --backend`.")  # fmt: skip
@db_option
@click.option("--no-store", is_flag=True, help="Do not read the results database: reported accuracy, no throughput.")
@click.option("--tags", type=click.Choice(["default", "all"]), default="default", show_default=True,
              help="Per architecture: its default checkpoint, or every checkpoint with an accuracy.")  # fmt: skip
@click.option("--plot", "plot_prefix", type=click.Path(path_type=str), metavar="PREFIX",
              help="Write the plot to PREFIX.png and PREFIX.svg (folders created).")  # fmt: skip
@format_options
def tradeoff_cmd(names, device, dtype, backend, db, no_store, tags, plot_prefix, fmt) -> None:
    """Accuracy vs compute: params, GMACs, throughput and ImageNet-1k top-1 of ViTs, hybrids and BiT ResNets.

    Accuracy is your own `vitzoo eval` on the full ImageNet-1k validation set when the results database has
    one made as the checkpoint's row says (its resolution, crop and resize, in --dtype), otherwise the reported
    number (the `top-1 is` and `source` columns say which). Throughput is the best `vitzoo bench` result for
    --device/--dtype/--backend. ★ marks the Pareto-optimal rows (no other row is as
    accurate for less compute, or as accurate at higher throughput). The plot adds the paper's own view:
    reported accuracy vs pre-training exaFLOPs (Table 6, its Figure 5).

    \b
    Examples:
      vitzoo tradeoff                         # default checkpoint of every model
      vitzoo tradeoff 'vit-b*' bit-r50x1 --csv
      vitzoo tradeoff vit-b16 vit-b32 --tags all   # in21k vs in1k-only vs SAM: the data-size argument
      vitzoo tradeoff --plot docs/tradeoff    # writes docs/tradeoff.png and .svg
    """
    from vitzoo.evaluate.tradeoff import build_tradeoff
    from vitzoo.weights.names import is_file_source

    prefix = None if plot_prefix is None else check_plot_prefix(plot_prefix)
    store = None if no_store else _existing_store(db)
    for name in names:
        if is_file_source(name):
            raise VitzooError(f"{name} is a file: tradeoff compares registry checkpoints (NAME[.TAG] or PATTERN, see "
                              "`vitzoo list --all`) by their reported or measured accuracy; measure a file with "
                              f"`vitzoo bench {name}` and `vitzoo eval {name}`")  # fmt: skip
    rows = build_tradeoff(names, store=store, device=device, dtype=dtype, tags=tags, backend=backend)
    if not rows:
        raise VitzooError("no checkpoint with an ImageNet-1k accuracy among these names")
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
    emit(table, fmt, TRADEOFF_COLUMNS, f"accuracy vs compute ({len(rows)} checkpoints; {where})")
