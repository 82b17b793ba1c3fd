"""`vitzoo predict`: show a model images and read what it says (top-k classes, named, with probabilities)."""

from __future__ import annotations

import click

from vitzoo import dtypes
from vitzoo.cli._models import load_model
from vitzoo.cli._output import (
    Command,
    emit_csv,
    emit_json,
    fail,
    format_options,
    info,
    number,
    progress_bar,
    render_table,
    warn,
    weights_option,
)
from vitzoo.cli._preflight import at_least, available_device

COLUMNS = [
    ("image", "image", None),
    ("rank", "#", None),
    ("index", "class", None),
    ("name", "name", None),
    ("probability", "probability", number(4)),
]


def _rows(predictions, *, every_row_named: bool) -> list[dict]:
    """One row per (image, rank); in the table the image is named on its first row only."""
    return [{"image": p.image if every_row_named or g.rank == 1 else "", **vars(g)}
            for p in predictions for g in p.top]  # fmt: skip


@click.command("predict", cls=Command)
@click.argument("name", metavar="NAME[.TAG]|FILE")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE|DIR|GLOB...")
@click.option("--top-k", "-k", default=5, show_default=True, type=int, callback=at_least(1),
              help="Classes per image (at most the head's).")  # fmt: skip
@click.option("--batch-size", "-b", default=32, show_default=True, type=int, callback=at_least(1),
              help="Images per forward pass.")  # fmt: skip
@click.option("--device", default="cpu", show_default=True, callback=available_device, help="cpu, cuda, cuda:N or mps.")
@click.option("--dtype", type=click.Choice(dtypes.NAMES), default="fp32", show_default=True,
              help="Precision of the weights and inputs.")  # fmt: skip
@weights_option("pretrained")
@format_options
def predict_cmd(name, images, top_k, batch_size, device, dtype, weights, fmt) -> None:
    """The top-k classes of each image, with names and probabilities, as NAME[.TAG] or a weight FILE sees it.

    Images are prepared with the checkpoint's own preprocessing (resolution, resize/crop, interpolation,
    mean/std: what `vitzoo info` shows; a FILE: the registry tag it names, else its family's default) and the
    probabilities are the softmax of the logits. Class names come from the checkpoint's label space:
    ImageNet-1k, ImageNet-21k (a valid 21,843-class head such as AugReg's or BiT-M's), or the names a fine-tune
    was converted with (`vitzoo convert --labels`); a head of another size shows class indices only. A 2020
    ImageNet-21k upstream, whose head its authors zeroed, is refused: it has no classifier.

    IMAGE may be a file, a folder (its image files, recursively) or a quoted glob. An image that cannot be read
    is one line on stderr; the others are still shown, and the exit code is then 1.

    \b
    Examples:
      vitzoo predict vit-b16 cat.jpg
      vitzoo predict vit-b16.augreg-in21k photos/ --top-k 3      # ImageNet-21k names
      vitzoo predict flowers.safetensors 'shots/*.png' --csv     # a fine-tune's own labels
      vitzoo predict vit-b16 cat.jpg --random-init               # no download; meaningless answers
    """
    from vitzoo.evaluate.predict import check_classifier, expand_images, predict

    random_init = weights == "random"
    paths = expand_images(images)
    model, pp, _ = load_model(name, device=device, dtype=dtype, random_init=random_init)
    classes = check_classifier(model)  # a zeroed or missing head: one line, before any image is read
    checkpoint = model.checkpoint
    space = checkpoint.label_space or "no class names"
    info(f"{model.name}: {classes:,} classes ({space}); {len(paths)} image(s); {_describe(pp)}")
    if random_init:
        warn("RANDOM WEIGHTS (--random-init): these predictions are meaningless; drop --random-init for the "
             "checkpoint's own")  # fmt: skip
    with progress_bar("predicting", len(paths) > batch_size) as progress:
        predictions = predict(model, paths, top_k, batch_size=batch_size, progress=progress)
    failed = [p for p in predictions if p.error is not None]
    for p in failed:
        warn(f"{p.image}: cannot be read ({p.error}); skipped")
    good = [p for p in predictions if p.error is None]
    if fmt == "json":
        emit_json([{k: v for k, v in p.as_dict().items() if k != "error"} for p in good])  # errors: on stderr
    elif fmt == "csv":
        emit_csv(_rows(good, every_row_named=True))
    elif good:
        title = f"{model.name}: top-{min(top_k, classes)} of {classes:,} classes"
        render_table(_rows(good, every_row_named=False), COLUMNS, title=title + (" (RANDOM WEIGHTS)" * random_init))
    if failed:
        fail(f"{len(failed)} of {len(predictions)} image(s) could not be read")


def _describe(pp) -> str:
    from vitzoo.zoo.preprocess import describe_preprocess

    return describe_preprocess(pp)
