"""`vitzoo eval` and `vitzoo fewshot`: accuracy on the user's data (one set, or a suite of robustness sets)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from vitzoo import dtypes
from vitzoo.cli._dist import is_main, scale_out
from vitzoo.cli._models import load_model
from vitzoo.cli._output import (
    db_option,
    emit,
    fail,
    format_options,
    info,
    no_store_option,
    progress_bar,
    render_table,
    warn,
)
from vitzoo.cli._preflight import at_least, available_device, exclusive, fraction, positive_number, refuse_unused
from vitzoo.errors import VitzooError
from vitzoo.zoo.timm_results import DATASETS as PROTOCOL_NAMES  # vitzoo.evaluate.protocols.NAMES, without torch

MAX_LISTED_FAILURES = 10


def _pct(v: Any) -> str:
    return "—" if v is None else f"{v:.2f}"


def data_options(func: Callable) -> Callable:
    """The options shared by `eval` and `fewshot`: data, preprocessing overrides, loading, device, store."""
    options = [
        click.option("--data", "data_path", type=click.Path(path_type=str), metavar="PATH", multiple=True,
                     help="ImageFolder (one folder per class; ImageNet synset folders map to the 1000 standard "
                          "indices, integer folders to their integer), or a flat folder with --labels. `eval` takes "
                          "several, as a suite."),
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
        click.option("--device", default="cpu", show_default=True, callback=available_device,
                     help="cpu, cuda, cuda:N or mps."),
        click.option("--dtype", type=click.Choice(dtypes.NAMES), default="fp32", show_default=True,
                     help="Precision of the weights and inputs."),
        db_option,
        no_store_option,
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return exclusive("--data", "--hf-dataset")(exclusive("--labels", "--hf-dataset")(func))


def _describe_run(model, data, pp) -> str:
    """The line announcing a run: model, data, preprocessing (and where a file's preprocessing comes from)."""
    source = model.checkpoint.preprocess_source
    note = f" ({source})" if source != f"registry tag {model.name}" else ""
    return f"{model.name} on {data.description}: {len(data)} images; {_describe(pp)}{note}"


def _dataset(data_path, labels_file, hf, split, limit):
    from vitzoo.evaluate.hf_datasets import open_dataset

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


def _store(db: str | None, records: list[Any], device: str) -> None:
    """Save typed records (``vitzoo.measure.records.Record``) of results already printed; a failure now is one
    error line and exit 1, the results stay on screen."""
    from dataclasses import replace

    from vitzoo.measure.env import environment
    from vitzoo.measure.store import ResultStore

    try:
        store = ResultStore(db)
        env = environment(device)
        rows = [store.save(replace(r, env=env)) for r in records]
    except (VitzooError, OSError) as e:
        fail(f"the result above was not recorded: {e}")
    info(f"recorded as {records[0].kind} {', '.join(f'#{row}' for row in rows)} in {store.path}")


def _ci(row: dict[str, Any]) -> str:
    low, high = row.get("top1_ci_low"), row.get("top1_ci_high")
    return "—" if low is None or high is None else f"{low:.2f} – {high:.2f}"


EVAL_FIELDS = [  # (key, label, formatter) of the `eval` result, shown one per line
    ("model", "model", str),
    ("dataset", "dataset", str),
    ("protocol", "protocol", lambda v: v or "— (classes of its own)"),
    ("num_images", "images", str),
    ("skipped", "skipped (unreadable)", str),
    ("top1", "top-1 %", _pct),
    ("top5", "top-5 %", _pct),
    ("real_top1", "ReaL top-1 %", _pct),
    ("real_top5", "ReaL top-5 %", _pct),
    ("real_images", "images with ReaL labels", str),
    ("ci", "95% CI of the top-1 (bootstrap)", str),
    ("ece", "ECE % of the top-1 (15 bins)", _pct),
    ("images_per_s", "images/s (end to end)", lambda v: f"{v:,.1f}"),
    ("preprocess", "preprocessing", str),
]
SUITE_COLUMNS = [
    ("set", "set", None),
    ("protocol", "protocol", lambda v: v or "—"),
    ("protocol_images", "images", None),
    ("protocol_top1", "top-1 %", _pct),
    ("protocol_top5", "top-5 %", _pct),
    ("ci", "95% CI of top-1", None),
    ("ece", "ECE %", _pct),
]


@dataclass(frozen=True)
class _Set:
    """One set to evaluate: its name, its data and how it is scored, and why that protocol."""

    name: str
    data: Any
    scoring: Any
    why: str


def _sets(data_paths, suite, labels_file, hf, split, limit, protocol, real_labels) -> list[_Set]:
    """The sets named by --data (one or more), --hf-dataset or --suite, each with its protocol, checked."""
    from vitzoo.evaluate.accuracy import load_real_labels
    from vitzoo.evaluate.protocols import choose, prepare, suite_sets

    if suite is not None:
        if data_paths or hf:
            raise VitzooError("give either --suite DIR or --data/--hf-dataset, not both")
        paths: list[str | None] = [str(p) for p in suite_sets(suite)]
    else:
        paths = list(data_paths) or [None]
    if len(paths) > 1 and protocol:
        raise VitzooError("--protocol names one set's protocol; in a suite each set's comes from its folder name "
                          "(imagenet, real, v2, a, r, sketch) or its class folders")  # fmt: skip
    if len(paths) > 1 and labels_file:
        raise VitzooError("--labels goes with one --data, not with several sets")
    real = load_real_labels(real_labels) if real_labels else None
    sets = []
    for path in paths:
        data = _dataset(path, labels_file, hf, split, limit)
        chosen, why = choose(path, data, protocol)
        data, scoring = prepare(data, chosen, real)
        sets.append(_Set(Path(path).name if path else f"{hf} [{split}]", data, scoring, why))
    return sets


@click.command("eval")
@click.argument("name", metavar="NAME[.TAG]|FILE")
@data_options
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOL_NAMES),
    help="How the set is scored (default: detected from its folders, said on stderr): imagenet, real "
    "(shipped ReaL labels), v2, sketch (1000-way), a, r (logits restricted to their 200 classes).",
)
@click.option(
    "--suite",
    type=click.Path(path_type=str),
    metavar="DIR",
    help="Evaluate every set under DIR (DIR/SET/CLASS/images; a set folder named after a protocol, e.g. "
    "DIR/real or DIR/sketch, gets it) and print one table.",
)
@click.option("--real-labels", type=click.Path(path_type=str), metavar="FILE",
              help="ImageNet-ReaL labels of your own (real.json); adds ReaL top-1 over the images that have any. "
                   "--protocol real uses the labels shipped with vitzoo.")  # fmt: skip
@format_options
@scale_out
def eval_cmd(name, data_path, labels_file, hf, split, img_size, crop_pct, batch_size, workers, limit, device, dtype,
             db, no_store, protocol, suite, real_labels, fmt) -> None:  # fmt: skip
    """Measure top-1 / top-5 accuracy of a checkpoint on labelled image sets, each scored by its protocol.

    Images are prepared exactly as the checkpoint was evaluated (resolution, resize/crop, interpolation,
    mean/std from its registry entry; a FILE: the registry tag it names, else its family's default, vit_jax's
    resize); unreadable files are reported and skipped. Protocols: ImageNet-A and -R score the logits restricted
    to their 200 classes, ReaL uses the shipped ReaL labels (matched by ILSVRC2012_val_NNNNNNNN file name), V2's
    class folders 0 ... 999 are labelled by their integer. Each result has a 95% bootstrap interval of its top-1
    (1000 seeded resamples) and its expected calibration error (15 bins). Results are printed, then recorded in
    the results database, where `vitzoo tradeoff --dataset` finds them; --db is checked before the work starts.

    \b
    Examples:
      vitzoo eval vit-b16 --data ~/imagenet/val                 # synset folders
      vitzoo eval vit-b16 --data ~/imagenet-a                   # detected: ImageNet-A's 200 classes
      vitzoo eval vit-b16 --suite ~/robustness --limit 2000     # ~/robustness/{v2,a,r,sketch,real}: one table
      vitzoo eval vit-b16.orig-in21k-ft-in1k-384 --data val/ --labels val_labels.txt --protocol real
      vitzoo eval bit-r50x1 --hf-dataset imagenet-1k --split validation --limit 500
    """
    from vitzoo.evaluate.accuracy import RunOptions, check_inputs
    from vitzoo.parallel.sharded import evaluate_sharded

    _outputs(db, no_store)
    sets = _sets(data_path, suite, labels_file, hf, split, limit, protocol, real_labels)
    for s in sets:
        _precheck(name, s.data, img_size)
    model, pp, zeroed = load_model(
        name, img_size=img_size, crop_pct=crop_pct, device=device, dtype=dtype, batch=batch_size
    )
    if zeroed:
        raise VitzooError(f"{model.name}: the classification head is all zeros (as in the ImageNet-21k files whose "
                          "authors zeroed it), so accuracy would be meaningless; evaluate a fine-tuned checkpoint, "
                          "or use `vitzoo fewshot`")  # fmt: skip
    for s in sets:
        check_inputs(model, s.data, s.scoring)
    results = []
    for s in sets:
        if s.scoring.protocol is not None:
            info(f"{s.name}: protocol {s.scoring.protocol} ({s.why})")
        info(_describe_run(model, s.data, pp))
        with progress_bar(f"evaluating {s.name}") as progress:
            results.append(evaluate_sharded(model, pp, s.data, options=RunOptions(batch_size, workers),
                                            scoring=s.scoring, progress=progress))  # fmt: skip
    if not is_main():  # under torchrun / --nproc: rank 0 reports and stores
        return
    rows = []
    for s, result in zip(sets, results, strict=True):
        _report_failures(result.failures)
        rows.append({"model": model.name, "set": s.name, **result.metrics()})
    if fmt in ("json", "csv"):
        emit(rows, fmt, [])
    elif len(rows) == 1:
        row, real = {**rows[0], "ci": _ci(rows[0])}, sets[0].scoring.real_labels is not None
        fields = [f for f in EVAL_FIELDS if real or not f[0].startswith("real_")]
        of = "ReaL top-1" if row["protocol"] == "real" else "the top-1"  # the interval and ECE are the protocol's
        table = [{"field": label.replace("the top-1", of), "value": show(row[key])} for key, label, show in fields]
        render_table(table, [("field", "metric", None), ("value", "value", None)], title="vitzoo eval")
    else:
        emit([{**r, "ci": _ci(r)} for r in rows], fmt, SUITE_COLUMNS, f"vitzoo eval — {model.name}, {len(rows)} sets")
    if not no_store:
        common = {"limit": limit, "device": device, "dtype": dtype, "batch_size": batch_size, "workers": workers,
                  "weights_sha256": model.weights_sha256}  # fmt: skip
        _store(db, [r.record(model.name, set=s.name, **common) for s, r in zip(sets, results, strict=True)], device)


def _precheck(name: str, data, img_size: int | None) -> None:
    """For a registry name, refuse a head that cannot score the data before downloading anything."""
    from vitzoo.evaluate.accuracy import check_head
    from vitzoo.zoo.lookup import resolve_one

    checkpoint = resolve_one(name, img_size=img_size)
    if checkpoint.is_file:
        return
    if checkpoint.zero_head:
        raise VitzooError(
            f"{checkpoint.name}: its authors zeroed the classification head, so its accuracy is "
            "meaningless; evaluate a tag fine-tuned on these classes, or use `vitzoo fewshot`"
        )
    check_head(checkpoint.config.num_classes, data)


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
@click.option("--layer", type=int, metavar="N", help="Probe block N (0-based, -1 the last; BiT: 0 the root, 1.. the "
              "stages), normed and pooled as the model pools. Default: the pre-logits.")  # fmt: skip
@format_options
@scale_out
def fewshot_cmd(name, data_path, labels_file, hf, split, img_size, crop_pct, batch_size, workers, limit, device, dtype,
                db, no_store, shots, seed, l2_reg, layer, fmt) -> None:  # fmt: skip
    """Few-shot linear evaluation, as the ViT paper does it.

    Frozen pre-logit features (--layer: block N's); for each shot count, a closed-form L2-regularised least-squares
    fit to {-1, 1} one-hot targets on SHOTS images per class; accuracy on the images not used for the largest shot
    count. Deterministic given --seed.

    \b
    Examples:
      vitzoo fewshot vit-b16.orig-in21k --data ~/pets --shots 1,5,10,25
      vitzoo fewshot bit-r50x1 --data ~/flowers --shots 5 --seed 1
      vitzoo fewshot vit-b16.orig-in21k --data ~/pets --shots 10 --layer 5   # what block 5 represents
    """
    from vitzoo.evaluate.accuracy import RunOptions
    from vitzoo.evaluate.fewshot import check_layer_of, check_shots, fewshot_accuracy, fewshot_record
    from vitzoo.parallel.sharded import extract_features_sharded

    shot_list = _parse_shots(shots)
    if len(data_path) > 1:
        raise VitzooError("fewshot takes one --data")
    _outputs(db, no_store)
    data = _dataset(data_path[0] if data_path else None, labels_file, hf, split, limit)
    check_shots(data.labels, shot_list)  # before the features: the labels alone say whether the shots fit
    check_layer_of(name, layer)  # a registry name's depth is known before any download
    model, pp, _ = load_model(name, img_size=img_size, crop_pct=crop_pct, device=device, dtype=dtype, num_classes=0)
    check_layer_of(model, layer)
    info(_describe_run(model, data, pp) + ("" if layer is None else f"; block {layer}'s features"))
    with progress_bar("extracting features") as progress:
        feats = extract_features_sharded(model, pp, data, options=RunOptions(batch_size, workers), progress=progress,
                                         layer=layer)  # fmt: skip
    if not is_main():  # under torchrun / --nproc: rank 0 reports and stores
        return
    _report_failures(feats.failures)
    results = fewshot_accuracy(feats, shot_list, seed=seed, l2_reg=l2_reg)
    classes = len(set(feats.labels.tolist()))
    rows = [{"model": model.name, **vars(r), "classes": classes} for r in results]
    emit(rows, fmt, FEWSHOT_COLUMNS, f"vitzoo fewshot — {model.name} (seed {seed})")
    if not no_store:
        run = fewshot_record(model.name, results, dataset=data.description, seed=seed, l2_reg=l2_reg, classes=classes,
                             num_images=len(feats.labels), skipped=len(feats.failures), img_size=pp.img_size,
                             preprocess=_describe(pp), limit=limit, device=device, dtype=dtype, layer=layer,
                             weights_sha256=model.weights_sha256)  # fmt: skip
        _store(db, [run], device)
