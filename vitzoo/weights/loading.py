"""``vitzoo.load``: a registry name or a weight file -> an eval-mode model with exactly the original's weights."""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from vitzoo import dtypes
from vitzoo.errors import ConfigError, VitzooError
from vitzoo.files import sha256_of
from vitzoo.models import build_model, resize_pos_embed
from vitzoo.weights.checkpoint import CheckpointError, read_tensors, sniff
from vitzoo.weights.convert import Converted, check_architecture, convert_file, convert_tensors
from vitzoo.zoo.checkpoint import Checkpoint, attach, head_labels
from vitzoo.zoo.configs import ModelConfig, ViTConfig, family_of
from vitzoo.zoo.lookup import by_source, check_memory, check_overrides, is_path, resolve_one  # noqa: F401 (is_path re-exported)
from vitzoo.zoo.preprocess import Preprocess, default_preprocess, preprocess_from_json, tag_preprocess
from vitzoo.zoo.registry import ModelSpec, Weights

PosembInterp = Literal["bilinear", "bicubic"]


class ZeroHeadWarning(UserWarning):
    """The checkpoint's classifier was zeroed by its authors: use features, or fine-tune a new head."""


@dataclass(frozen=True)
class Adaptation:
    """How to change a checkpoint's model at load time."""

    img_size: int | None = None  # resize position embeddings to this resolution
    num_classes: int | None = None  # new zero-initialised head (0 = feature extractor)
    pre_logits: bool = True  # keep the representation layer of the ImageNet-21k checkpoints
    posemb_interp: PosembInterp = "bilinear"  # vit_jax's method (corner-aligned linear); or bicubic


def converted_checkpoint(
    name: str | Checkpoint, lock: str | os.PathLike | None = None
) -> tuple[Path, ModelSpec, Weights]:
    """Download a registry checkpoint (its first working source) and convert it once; the cached safetensors.

    ``lock`` (or ``$VITZOO_LOCK``): refuse a file that differs from the lock file's entry (``vitzoo.weights.sources``).
    """
    from vitzoo.weights.sources import fetch_checkpoint

    fetched = fetch_checkpoint(name, lock)
    return fetched.path, fetched.spec, fetched.weights


def load_converted(
    name_or_path: str | os.PathLike, lock: str | os.PathLike | None = None
) -> tuple[Converted, str, Weights | None]:
    """The canonical weights of a registry name or any supported file, its display name and registry weights."""
    return _load_converted(resolve_one(name_or_path), lock)[:3]


def _load_converted(
    checkpoint: Checkpoint, lock: str | os.PathLike | None
) -> tuple[Converted, str, Weights | None, str | None]:
    """``load_converted`` of a resolved checkpoint, plus the sha256 of the downloaded source file (None for a file
    given by path)."""
    if checkpoint.path is not None:
        path = Path(checkpoint.path).expanduser()
        return convert_file(path), checkpoint.path, None, None
    target, _, weights = converted_checkpoint(checkpoint, lock)
    tensors, metadata = read_tensors(target)
    sha = metadata.get("source_sha256") or None
    return convert_tensors(tensors, metadata), checkpoint.name, weights, sha


def adapt(
    converted: Converted, change: Adaptation, label: str = "the model"
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Apply a resolution / head / representation change to canonical weights (the paper's fine-tuning setup).

    The adapted model's memory is checked first: a huge img_size or class count is one line, not an OOM.
    """
    check_overrides(change.num_classes, change.img_size)
    config, sd = converted.config, dict(converted.state_dict)
    try:
        target = config.replace(img_size=change.img_size or config.img_size)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if change.num_classes is not None:
        target = target.replace(num_classes=change.num_classes)
    if target != config:
        check_memory(target, label, copies=2)
    if change.img_size is not None and change.img_size != config.img_size:
        config = config.replace(img_size=change.img_size)
        if isinstance(config, ViTConfig):
            sd["pos_embed"] = resize_pos_embed(
                sd["pos_embed"], config.grid_size, config.num_prefix_tokens, change.posemb_interp
            )
    if not change.pre_logits and isinstance(config, ViTConfig) and config.representation_size:
        config = config.replace(representation_size=None)
        sd = {k: v for k, v in sd.items() if not k.startswith(("pre_logits.", "head."))}
        if change.num_classes is None and config.num_classes:
            change = Adaptation(num_classes=config.num_classes)  # the old head no longer fits: a new zero head
    if change.num_classes is not None and (change.num_classes != config.num_classes or "head.weight" not in sd):
        config = config.replace(num_classes=change.num_classes)
        sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
        if change.num_classes:
            sd["head.weight"] = torch.zeros(change.num_classes, config.num_features)  # zero-init, as the paper
            sd["head.bias"] = torch.zeros(change.num_classes)
    return config, sd


def file_metadata(path: Path) -> dict[str, str]:
    """The safetensors metadata of a weight file ({} for other formats); only the header is read."""
    if sniff(path) != "safetensors":
        return {}
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}


def _made_from(metadata: dict[str, str], config: ModelConfig) -> Checkpoint | None:
    """The catalogue checkpoint a vitzoo file was made from, when it says so and its architecture agrees.

    ``vitzoo download`` stores the name (``name``); ``vitzoo convert URL`` stores the original URL
    (``source``), which is a catalogue checkpoint's source when the file was converted from one.
    """
    candidates: list[Checkpoint] = []
    if metadata.get("name"):
        with contextlib.suppress(VitzooError):
            candidates.append(resolve_one(metadata["name"]))
    if metadata.get("source") and (found := by_source(metadata["source"])) is not None:
        candidates.append(found)
    for checkpoint in candidates:
        if checkpoint.tag is None or checkpoint.config is None:
            continue
        try:
            check_architecture(config, checkpoint.config, checkpoint.name)  # same network (resolution may differ)
        except CheckpointError:
            continue
        return checkpoint
    return None


def checkpoint_preprocess(
    config: ModelConfig, weights: Weights | None, display: str, metadata: dict[str, str] | None = None
) -> tuple[Preprocess, str]:
    """The evaluation preprocessing of a loaded checkpoint at ``config.img_size``, and where it comes from.

    A registry checkpoint has its tag's; a file the one it stores (``preprocess`` metadata, written by ``vitzoo
    finetune``), else the one of the registry tag it was made from (``name`` or ``source`` metadata), else its
    family's default (``vitzoo.zoo.preprocess.default_preprocess``).
    """
    if weights is not None:
        return tag_preprocess(config, weights, display)
    if (metadata or {}).get("preprocess"):  # a fine-tuned file (``vitzoo finetune``) stores its own
        pp = preprocess_from_json(metadata["preprocess"])  # type: ignore[index]
        return replace(pp, img_size=config.img_size), "stored in the file"
    origin = _made_from(metadata or {}, config)
    if origin is not None and origin.preprocess is not None:
        return replace(origin.preprocess, img_size=config.img_size), f"registry tag {origin.name}, named in the file"
    family = family_of(config)
    return default_preprocess(family, config.img_size), f"default for a {family} file: it names no registry tag"


def _zero_head(sd: dict[str, torch.Tensor]) -> bool:
    w = sd.get("head.weight")
    return w is not None and not bool(w.any())


def stored_labels(metadata: dict[str, str] | None, display: str) -> tuple[str, ...] | None:
    """The class names a vitzoo file stores (``vitzoo convert --labels``), or None when it stores none."""
    text = (metadata or {}).get("labels")
    if not text:
        return None
    try:
        names = json.loads(text)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{display}: its 'labels' metadata is not a JSON list of class names")
    return tuple(names)


def load(
    name_or_path: str | os.PathLike,
    *,
    img_size: int | None = None,
    num_classes: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    pre_logits: bool = True,
    posemb_interp: PosembInterp = "bilinear",
    lock: str | os.PathLike | None = None,
    dynamic_img_size: bool = False,
) -> nn.Module:
    """A pretrained model in eval mode, ready for NCHW float input.

    Args:
        name_or_path: ``arch`` (its default checkpoint), ``arch.tag``, or any supported weight file
            (vit_jax/BiT ``.npz``, transformers or timm ``.safetensors``/``.bin``, vitzoo safetensors).
        img_size: resolution to run at; position embeddings are resized as vit_jax does (or bicubic).
        num_classes: a different class count replaces the head with a zero-initialised one; 0 returns
            pre-logit features.
        device, dtype: where and in which precision ("fp32", "bf16", "fp16") to put the weights.
        pre_logits: False drops the representation layer of the ImageNet-21k checkpoints.
        posemb_interp: "bilinear" (the original's method) or "bicubic".
        lock: a lock file (``vitzoo download NAME --lock FILE``; default ``$VITZOO_LOCK``): refuse weights whose
            file differs from the one it records (Hub commit, size, sha256), saying what differs.
        dynamic_img_size: ``forward`` takes any H x W the model's stride (patch size; a hybrid's total stride)
            divides, resampling the position embedding per input grid with ``posemb_interp`` (cached per grid), as
            loading at that ``img_size`` would; ``img_size`` stays the nominal size. A BiT takes any size anyway.

    The name is resolved once (``vitzoo.zoo.lookup.resolve_one``), and what was loaded is one frozen
    ``model.checkpoint`` (``vitzoo.zoo.checkpoint.Checkpoint``): its name (``arch.tag``, never silently another
    tag; a file's path), architecture, sources, accuracies and licence, the evaluation preprocessing at the model's
    resolution and where it comes from (the registry tag, the tag a file was made from, or the family's default),
    the sha256 of the file the weights came from (the downloaded source, or the file given) and what the head's
    classes are (``label_space``: "imagenet-1k", "imagenet-21k", "custom" for names stored in the file, or None;
    ``labels``: the class names; a new head, ``num_classes``, has none). ``model.name``, ``model.preprocess``,
    ``model.preprocess_source`` and ``model.weights_sha256`` are read-only views of it.
    """
    if posemb_interp not in ("bilinear", "bicubic"):
        raise ConfigError(f"posemb_interp must be 'bilinear' or 'bicubic', not {posemb_interp!r}")
    torch_dtype = dtypes.resolve(dtype)
    if device is not None:
        dtypes.resolve_device(device)  # an unavailable device: one line before any download
    # unknown names and tags, missing files, bad sizes and too little memory: one line before any download
    checkpoint = resolve_one(name_or_path, num_classes=num_classes, img_size=img_size)
    if not checkpoint.is_file:
        check_memory(checkpoint.config, checkpoint.arch, copies=2)  # type: ignore[arg-type]
    converted, display, weights, sha = _load_converted(checkpoint, lock)
    config, sd = adapt(converted, Adaptation(img_size, num_classes, pre_logits, posemb_interp), display)
    zeroed = num_classes is None and ((weights is not None and weights.zero_head) or _zero_head(sd))
    if zeroed:
        if config.num_classes:
            why, what = "its classifier head is all zeros (as in the 2020 ImageNet-21k files)", "constant logits"
        else:
            why, what = "its authors zeroed the ImageNet-21k head", f"{config.num_features}-d pre-logit features"
        warnings.warn(
            f"{display}: {why}, so this model returns {what}; use it as a feature extractor (num_classes=0) or "
            "pass num_classes=N for a zero-initialised head to fine-tune",
            ZeroHeadWarning,
            stacklevel=2,
        )
    with torch.device("meta"):
        model = build_model(config, dynamic_img_size=dynamic_img_size, posemb_interp=posemb_interp)
    model.load_state_dict(sd, strict=True, assign=True)
    model.to(device=device, dtype=torch_dtype)
    metadata = file_metadata(Path(display)) if weights is None else None
    preprocess, preprocess_source = checkpoint_preprocess(config, weights, display, metadata)
    same_head = sd.get("head.weight") is converted.state_dict.get("head.weight")  # adapt() made no new head
    space, labels = head_labels(config.num_classes, zero_head=zeroed,
                                stored=stored_labels(metadata, display) if same_head else None)  # fmt: skip
    sha256 = sha if weights is not None else sha256_of(Path(display))
    attach(
        model,
        replace(
            checkpoint,
            name=display,
            preprocess=preprocess,
            preprocess_source=preprocess_source,
            weights_sha256=sha256,
            label_space=space,
            labels=labels,
            zero_head=zeroed,
            config=config,
        ),
    )
    return model.eval()
