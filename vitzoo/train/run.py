"""A fine-tuning run before and between its steps: ``prepare`` a new one, or ``resume`` an interrupted one.

``prepare`` loads the checkpoint with ``vitzoo.load`` as the paper transfers it: the position embedding resampled to
the training resolution (``vitzoo.weights.loading.adapt``, vit_jax's corner-aligned linear resample), the
representation layer of the ImageNet-21k checkpoints dropped and the whole head replaced by a zero-initialised
linear layer with one output per class folder (§3.2). ``resume`` rebuilds the same run from its resume checkpoint
(``vitzoo.train.state``), without the original checkpoint or the network.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from vitzoo.errors import VitzooError
from vitzoo.evaluate.data import ImageDataset, image_folder
from vitzoo.models import build_model
from vitzoo.train.recipe import Recipe, steps_for_epochs, steps_per_epoch
from vitzoo.train.state import RunInfo, load_state, state_path
from vitzoo.weights.checkpoint import check_writable
from vitzoo.zoo.checkpoint import Checkpoint


@dataclass
class Run:
    """A run's working state: the model and optimizer state after ``step`` steps, and its data."""

    info: RunInfo
    model: torch.nn.Module
    out: Path
    data: ImageDataset
    val: ImageDataset | None
    step: int = 0
    momentum: dict[str, torch.Tensor] = field(default_factory=dict)  # empty: zeros
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # training time of earlier sessions
    rng: torch.Tensor | None = None  # torch's CPU random state to restore (a resumed run)


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto`` -> ``bf16`` where bf16 is native (a CUDA GPU that supports it, a CPU with AVX512_BF16/AMX/Arm BF16),
    else ``fp32``; an explicit dtype as given."""
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if device.startswith("cpu"):
        from vitzoo.measure.cpu import native_dtype

        return "bf16" if native_dtype("bf16") else "fp32"
    return "fp32"


def _folders(
    data_dir: str | os.PathLike, val_dir: str | os.PathLike | None
) -> tuple[ImageDataset, ImageDataset | None]:
    data = image_folder(data_dir)
    val = image_folder(val_dir) if val_dir is not None else None
    if val is not None and val.classes != data.classes:
        raise VitzooError(f"{val.description} has other classes than {data.description}: the class folders of "
                          "--val must be those of --data")  # fmt: skip
    return data, val


def prepare(
    source: str | os.PathLike,
    data_dir: str | os.PathLike,
    out: str | os.PathLike,
    recipe: Recipe = Recipe(),  # noqa: B008 (frozen)
    *,
    val_dir: str | os.PathLike | None = None,
    epochs: int | None = None,
    device: str = "cpu",
    world_size: int = 1,
) -> Run:
    """A new run fine-tuning ``source`` (registry name or weight file) on the ImageFolder ``data_dir``.

    ``epochs`` replaces ``recipe.steps`` by that many passes over the data. Everything is checked before the
    checkpoint is loaded: the folders, the batch split, that ``out`` can be written and is not the output of an
    interrupted run (resume that one instead).
    """
    out = Path(out).expanduser()
    if state_path(out).exists():
        raise VitzooError(f"{out}: an interrupted run is writing it; continue it with --resume {out}, or delete "
                          f"{state_path(out)} to start over")  # fmt: skip
    check_writable(out)
    check_writable(state_path(out))
    data, val = _folders(data_dir, val_dir)
    if epochs is not None:
        recipe = replace(recipe, steps=steps_for_epochs(epochs, len(data), recipe.batch_size))
    steps_per_epoch(len(data), recipe.batch_size)
    recipe.per_rank(world_size)
    recipe = replace(recipe, dtype=resolve_dtype(recipe.dtype, device))  # a resumed run keeps what ran
    from vitzoo.weights.loading import ZeroHeadWarning, load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZeroHeadWarning)  # the head is replaced anyway
        model = load(source, img_size=recipe.img_size, num_classes=data.num_classes, pre_logits=False)
    with torch.no_grad():  # the paper's new head: zero-initialised, also when the class count happens to match
        model.head.weight.zero_()
        model.head.bias.zero_()
    info = RunInfo(model.name, str(Path(data_dir).expanduser()), None if val_dir is None else
                   str(Path(val_dir).expanduser()), data.classes.names, len(data), model.preprocess,
                   replace(recipe, img_size=model.config.img_size), model.config)  # fmt: skip
    return Run(info, model, out, data, val)


def resume(out: str | os.PathLike) -> Run:
    """The run that was writing ``out``, as its resume checkpoint left it."""
    out = Path(out).expanduser()
    ck = load_state(state_path(out))
    info = ck.info
    data, val = _folders(info.data, info.val)
    if data.classes.names != info.classes or len(data) != info.num_images:
        raise VitzooError(f"{info.data} changed since the run started ({info.num_images} images in "
                          f"{len(info.classes)} classes then, {len(data)} in {data.num_classes} now); a resumed run "
                          "needs the same data")  # fmt: skip
    with torch.device("meta"):
        model = build_model(info.config)
    try:
        model.load_state_dict(ck.weights, strict=True, assign=True)
    except RuntimeError as e:
        raise VitzooError(f"{state_path(out)}: the weights do not fit the model ({str(e).splitlines()[0]})") from None
    model.checkpoint = Checkpoint(info.source, info.preprocess, "stored in the run", config=info.config)
    return Run(info, model, out, data, val, ck.step, dict(ck.momentum), list(ck.history), ck.seconds, ck.rng)
