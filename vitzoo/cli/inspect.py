"""`vitzoo inspect`: the ViT paper's Figures 6 and 7 for one model, as PNGs plus the numbers behind them."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from vitzoo.cli._dist import is_main, scale_out
from vitzoo.cli._models import load_model
from vitzoo.cli._output import emit_csv, emit_json, format_options, info, render_table, warn, weights_option
from vitzoo.cli._preflight import at_least, check_output_dir
from vitzoo.errors import VitzooError
from vitzoo.files import atomic_path

if TYPE_CHECKING:  # imported lazily at run time: `vitzoo --help` should not pay for torch and matplotlib
    from vitzoo.inspection import Images
    from vitzoo.models import VisionTransformer

ANALYSES = ("filters", "posemb", "attention-distance", "rollout")
NEEDS_IMAGES = ("attention-distance", "rollout")
DPI = 110


def _parse_analyses(values: tuple[str, ...]) -> tuple[str, ...]:
    """Repeated and/or comma-separated names -> the chosen analyses in canonical order (all if none)."""
    chosen = {v.strip() for value in values for v in value.split(",") if v.strip()}
    unknown = sorted(chosen - set(ANALYSES))
    if unknown:
        raise VitzooError(f"unknown analysis {unknown[0]!r}; choose from {', '.join(ANALYSES)}")
    return tuple(a for a in ANALYSES if a in chosen) if chosen else ANALYSES


def _load(name: str, img_size: int | None, random_init: bool):
    """The model (eval mode) and the preprocessing of its checkpoint (``model.preprocess``), at its resolution."""
    from vitzoo.zoo.lookup import resolve_config

    try:
        spec, _, _ = resolve_config(name)
    except VitzooError:
        if random_init:
            raise
        spec = None  # a local checkpoint: vitzoo.load says whether it can read it
    if spec is not None and spec.family == "bit":
        raise VitzooError(f"{name} is a BiT ResNet: inspect needs a Vision Transformer (vit-* or a hybrid)")
    model, preprocess, _ = load_model(name, img_size=img_size, random_init=random_init)
    return model, preprocess


def _save(fig, path: Path) -> None:
    """The figure as a true-colour PNG (RGBA: a 256-colour palette bands the smooth maps of rollout and posemb),
    written atomically: a full disk is one line and leaves no partial file."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)


def _save_array(path: Path, array: np.ndarray) -> None:
    """``np.save``, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def _write_distance(out: Path, distance: np.ndarray, meta: dict[str, Any], uniform: float) -> list[Path]:
    """attention_distance.csv (one row per layer and head) and .json (the matrix, with its context)."""
    rows = _distance_rows(distance)
    csv_path, json_path = out / "attention_distance.csv", out / "attention_distance.json"
    with atomic_path(csv_path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    doc = {**meta, "uniform_distance_px": uniform, "distance_px": distance.round(4).tolist()}
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
    return [csv_path, json_path]


def _distance_rows(distance: np.ndarray) -> list[dict[str, Any]]:
    return [
        {"layer": layer + 1, "head": head + 1, "mean_distance_px": round(float(d), 4)}
        for layer, per_head in enumerate(distance)
        for head, d in enumerate(per_head)
    ]


@click.command("inspect")
@click.argument("name", metavar="NAME[.TAG]|FILE")
@click.option("--image", "-i", "images", multiple=True, metavar="FILE", help="Input image (repeatable).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Output directory for the PNGs and numbers (created).")  # fmt: skip
@click.option(
    "--analysis",
    "-a",
    "analyses",
    multiple=True,
    metavar="NAME",
    help=f"Run only these ({', '.join(ANALYSES)}); repeatable or comma-separated. Default: all that apply.",
)
@click.option("--img-size", type=int, callback=at_least(1), metavar="PIXELS",
              help="Input resolution (position embeddings resized). Default: the checkpoint's.")  # fmt: skip
@weights_option("pretrained")
@format_options
@scale_out
def inspect_cmd(
    name: str,
    images: tuple[str, ...],
    out: Path,
    analyses: tuple[str, ...],
    img_size: int | None,
    weights: str,
    fmt: str,
) -> None:
    """What a ViT learned: the analyses of the ViT paper's Figures 6 and 7 for NAME[.TAG] or a weight FILE.

    \b
      filters             top 28 principal components of the RGB patch-embedding filters (Fig. 7 left)
      posemb              cosine similarity of every position embedding with all others (Fig. 7 centre)
      attention-distance  mean attention distance in pixels per head and layer, over the images (Fig. 7 right)
      rollout             attention rollout from the class token (GAP: all tokens) on each image (Fig. 6)

    Writes one PNG per analysis into --out with the numbers beside it (filters.npy, posemb.npy,
    attention_distance.csv/.json, rollout.npy). attention-distance and rollout need at least one --image;
    without images only filters and posemb run. Hybrids have no RGB filters, BiT ResNets nothing to inspect.
    Images are prepared as `vitzoo eval` prepares them for the checkpoint (a file without a registry tag:
    its family's default).
    stdout gets a summary (table, or --json with all the numbers, or --csv with the attention distances).

    \b
    Examples:
      vitzoo inspect vit-b16 --image cat.jpg --image dog.jpg --out out/
      vitzoo inspect vit-b16.augreg-in21k-ft-in1k-384 -a posemb --out out/
      vitzoo inspect vit-s16 -i cat.jpg -a attention-distance --csv --out out/ > distance.csv
      vitzoo inspect vit-b16 --random-init -i cat.jpg --out out/   # offline, untrained weights
    """
    from vitzoo.inspection import filter_components, load_images
    from vitzoo.inspection._model import grid_side, require_vit
    from vitzoo.parallel.sharded import analyse_attention_sharded

    random_init = weights == "random"
    chosen = _parse_analyses(analyses)
    out = check_output_dir(out, "the output directory")  # before the model is loaded; created once all is read
    if not images and any(a in NEEDS_IMAGES for a in chosen):
        if analyses:
            needing = [a for a in chosen if a in NEEDS_IMAGES]
            verb = "needs" if len(needing) == 1 else "need"
            raise VitzooError(f"{' and '.join(needing)} {verb} at least one --image")
        warn("no --image given: running filters and posemb only")
        chosen = tuple(a for a in chosen if a not in NEEDS_IMAGES)
    if fmt == "csv" and "attention-distance" not in chosen:
        raise VitzooError("--csv writes the mean attention distances: run attention-distance (with --image)")

    info(f"loading {name}{' (random init)' if random_init else ''} …")
    model, preprocess = _load(name, img_size, random_init)
    vit = require_vit(model, f"inspecting {name}")
    if vit.config.backbone is not None and "filters" in chosen:
        if analyses:
            filter_components(vit)  # asked for by name: its one-line error, before anything is written
        warn("hybrid model: its patch embedding sees ResNet features, not RGB; skipping filters")
        chosen = tuple(a for a in chosen if a != "filters")
    batch = load_images(images, preprocess) if images else None
    if not is_main():  # under torchrun / --nproc: the other ranks only share the attention passes
        if batch is not None and any(a in NEEDS_IMAGES for a in chosen):
            analyse_attention_sharded(vit, batch.tensor)
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VitzooError(f"cannot create the output directory {out}: {e.strerror or e}") from None

    title = f"{name} (random init)" if random_init else name
    summary: dict[str, Any] = {
        "model": name,
        "weights": "random init" if random_init else "checkpoint",
        "img_size": vit.config.img_size,
        "grid_size": grid_side(vit),
        "images": list(batch.names) if batch else [],
        "out": str(out),
        "files": {},
    }
    if "filters" in chosen:
        _filters(vit, out, title, summary)
    if "posemb" in chosen:
        _posemb(vit, out, title, summary)
    if batch is not None and any(a in NEEDS_IMAGES for a in chosen):
        _attention(vit, batch, chosen, out, title, summary)
    _emit(summary, fmt)


# Each analysis writes its files into `out` and adds its files and numbers to `summary`.


def _filters(vit: VisionTransformer, out: Path, title: str, summary: dict[str, Any]) -> None:
    from vitzoo.inspection import filter_components, plots

    comps = filter_components(vit)
    _save(plots.plot_filters(comps, title), out / "filters.png")
    _save_array(out / "filters.npy", comps.components)
    summary["files"]["filters"] = [str(out / "filters.png"), str(out / "filters.npy")]
    summary["filters_explained_variance_ratio"] = comps.explained_variance_ratio.round(6).tolist()
    info(f"filters: {len(comps.components)} principal components -> {out / 'filters.png'}")


def _posemb(vit: VisionTransformer, out: Path, title: str, summary: dict[str, Any]) -> None:
    from vitzoo.inspection import plots, posemb_similarity

    sim = posemb_similarity(vit)
    _save(plots.plot_posemb_similarity(sim, title), out / "posemb.png")
    _save_array(out / "posemb.npy", sim)
    summary["files"]["posemb"] = [str(out / "posemb.png"), str(out / "posemb.npy")]
    info(f"posemb: {len(sim)}x{len(sim)} grid -> {out / 'posemb.png'}")


def _attention(
    vit: VisionTransformer, batch: Images, chosen: tuple[str, ...], out: Path, title: str, summary: dict[str, Any]
) -> None:
    """One pass over the images serves both attention-distance and rollout."""
    from vitzoo.inspection import patch_distances, plots
    from vitzoo.parallel.sharded import analyse_attention_sharded

    info(f"attention over {len(batch.names)} image(s) …")
    result = analyse_attention_sharded(vit, batch.tensor)
    summary["token_stride_px"] = result.token_stride
    if "attention-distance" in chosen:
        uniform = round(float(patch_distances(summary["grid_size"]).mean() * result.token_stride), 4)
        _save(plots.plot_attention_distance(result.distance, uniform, title), out / "attention_distance.png")
        meta = {k: summary[k] for k in ("model", "weights", "img_size", "grid_size", "images", "token_stride_px")}
        files = [out / "attention_distance.png", *_write_distance(out, result.distance, meta, uniform)]
        summary["files"]["attention-distance"] = [str(p) for p in files]
        summary["attention_distance_px"] = result.distance.round(4).tolist()
        summary["uniform_distance_px"] = uniform
        layers, heads = result.distance.shape
        info(f"attention-distance: {layers} layers x {heads} heads -> {files[0]}")
    if "rollout" in chosen:
        _save(plots.plot_rollout(result.rollout, batch.pixels, batch.names, title), out / "rollout.png")
        _save_array(out / "rollout.npy", result.rollout)
        summary["files"]["rollout"] = [str(out / "rollout.png"), str(out / "rollout.npy")]
        summary["rollout"] = result.rollout.round(6).tolist()
        info(f"rollout: {len(batch.names)} image(s) -> {out / 'rollout.png'}")


def _emit(summary: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        emit_json(summary)
        return
    distance = summary.get("attention_distance_px")
    if fmt == "csv":
        emit_csv(_distance_rows(np.asarray(distance)))
        return
    rows = [{"analysis": a, "file": Path(f).name} for a, files in summary["files"].items() for f in files]
    title = f"{summary['model']}: written to {summary['out']}"
    render_table(rows, [("analysis", "analysis", None), ("file", "file", None)], title=title)
    if distance is not None:
        d = np.asarray(distance)
        per_layer = [
            {"layer": i + 1, "mean": float(r.mean()), "min": float(r.min()), "max": float(r.max())}
            for i, r in enumerate(d)
        ]
        columns = [("layer", "layer", None), ("mean", "mean", None), ("min", "min", None), ("max", "max", None)]
        render_table(per_layer, columns, title="attention distance (px)")
