"""What a fine-tuning run keeps on disk: the resume checkpoint, and the fine-tuned model it produces.

* The **resume checkpoint** (``OUT.resume``, one safetensors file written atomically): the weights, the momentum
  buffers, the step, the CPU random state, the validation history and what the run is (``RunInfo``: the source
  checkpoint, data folders, class names, preprocessing, recipe and model config). The learning rate is a function
  of the step, and the data order and augmentation of the seed and the step (``vitzoo.train.batches``), so this is
  everything a resumed run needs to continue bit for bit.
* The **fine-tuned model** (``OUT``): a vitzoo safetensors file (``vitzoo.weights.checkpoint.save_vitzoo``) whose
  metadata adds the preprocessing (``preprocess``), the class names in label order (``labels``, a JSON list), the
  checkpoint it was fine-tuned from, the recipe and the validation history; ``vitzoo.load`` and every command take it
  as any other weight file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from vitzoo.errors import VitzooError
from vitzoo.train.recipe import Recipe
from vitzoo.weights.checkpoint import (
    CheckpointError,
    OutputError,
    atomic_path,
    config_from_json,
    config_to_json,
    read_tensors,
    save_vitzoo,
)
from vitzoo.zoo.configs import ModelConfig
from vitzoo.zoo.preprocess import Preprocess, preprocess_from_json, preprocess_to_json

STATE_FORMAT = "vitzoo-finetune-state"
STATE_VERSION = "1"


@dataclass(frozen=True)
class RunInfo:
    """What a run is, fixed when it starts."""

    source: str  # the checkpoint fine-tuned (registry arch.tag or file)
    data: str  # training ImageFolder
    val: str | None  # validation ImageFolder
    classes: tuple[str, ...]  # class names in label order
    num_images: int  # training images when the run started (a resumed run checks the folder still has them)
    preprocess: Preprocess  # evaluation preprocessing at the training resolution
    recipe: Recipe
    config: ModelConfig


@dataclass(frozen=True)
class Checkpoint:
    """A resume checkpoint read back."""

    info: RunInfo
    step: int  # optimizer steps done
    weights: dict[str, torch.Tensor]
    momentum: dict[str, torch.Tensor]  # by parameter name
    rng: torch.Tensor  # torch.get_rng_state()
    history: tuple[dict[str, Any], ...]  # validation results so far
    seconds: float  # training time so far


def state_path(out: str | os.PathLike) -> Path:
    """Where the resume checkpoint of the run writing ``out`` lives."""
    return Path(f"{os.fspath(out)}.resume")


def _info_metadata(info: RunInfo) -> dict[str, str]:
    return {"source": info.source, "data": info.data, "val": json.dumps(info.val),
            "classes": json.dumps(list(info.classes)), "num_images": str(info.num_images),
            "preprocess": preprocess_to_json(info.preprocess), "recipe": info.recipe.to_json(),
            "config": config_to_json(info.config)}  # fmt: skip


def save_state(path: Path, info: RunInfo, model: torch.nn.Module, momentum: dict[str, torch.Tensor], step: int,
               history: list[dict[str, Any]], seconds: float) -> Path:  # fmt: skip
    """Write the resume checkpoint atomically (a crash while writing leaves the previous one)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors |= {f"momentum.{k}": v.detach().cpu().contiguous() for k, v in momentum.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    metadata = {"format": STATE_FORMAT, "format_version": STATE_VERSION, "step": str(step),
                "history": json.dumps(history), "seconds": repr(seconds), **_info_metadata(info)}  # fmt: skip
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as e:  # its I/O errors (a full disk) are not OSErrors
            raise OutputError(f"{path}: writing failed ({str(e).splitlines()[0]})") from None
    return path


def load_state(path: Path) -> Checkpoint:
    """Read a resume checkpoint; one-line errors for a missing, foreign or damaged file."""
    if not path.exists():
        raise VitzooError(f"{path}: no resume checkpoint (nothing to resume: the run finished, or never saved one)")
    tensors, meta = read_tensors(path)
    if meta.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a vitzoo finetune resume checkpoint")
    if meta.get("format_version") != STATE_VERSION:
        raise CheckpointError(f"{path}: resume checkpoint version {meta.get('format_version')}, this vitzoo "
                              f"reads {STATE_VERSION}")  # fmt: skip
    try:
        info = RunInfo(meta["source"], meta["data"], json.loads(meta["val"]), tuple(json.loads(meta["classes"])),
                       int(meta["num_images"]), preprocess_from_json(meta["preprocess"]),
                       Recipe.from_json(meta["recipe"]), config_from_json(meta["config"]))  # fmt: skip
        step, history, seconds = int(meta["step"]), tuple(json.loads(meta["history"])), float(meta["seconds"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: damaged resume checkpoint metadata ({type(e).__name__}: {e})") from None
    pick = lambda prefix: {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}  # noqa: E731
    if "rng.torch" not in tensors:
        raise CheckpointError(f"{path}: damaged resume checkpoint (no random state)")
    return Checkpoint(info, step, pick("model."), pick("momentum."), tensors["rng.torch"], history, seconds)


def save_finetuned(out: Path, model: torch.nn.Module, info: RunInfo, history: list[dict[str, Any]]) -> Path:
    """Write the fine-tuned model as a vitzoo safetensors file that names its classes and preprocessing."""
    extra = {"preprocess": preprocess_to_json(info.preprocess), "labels": json.dumps(list(info.classes)),
             "finetuned_from": info.source, "recipe": info.recipe.to_json(),
             "history": json.dumps(history)}  # fmt: skip
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return save_vitzoo(out, sd, info.config, extra)
