"""How a checkpoint's images are prepared, as data: the ``Preprocess`` of every tag, and the one resolver (no torch).

``resolve_preprocess(model)`` is the data configuration ``eval``, ``fewshot`` and ``inspect`` use: the model's own
(``model.preprocess``, set by ``vitzoo.load`` and ``vitzoo.create`` from the checkpoint) with the command's
overrides; ``vitzoo.evaluate.data`` is the one implementation that applies it to images.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, Protocol, get_args

from vitzoo.errors import VitzooError
from vitzoo.zoo.configs import ModelConfig, family_of

Resize = Literal["tf", "squash", "shorter"]
Interpolation = Literal["bilinear", "bicubic"]
RESIZE_MODES: tuple[Resize, ...] = get_args(Resize)
INTERPOLATIONS: tuple[Interpolation, ...] = get_args(Interpolation)


@dataclass(frozen=True)
class Preprocess:
    """How a checkpoint's inputs were prepared for evaluation."""

    img_size: int  # side of the square network input
    # tf: straight to img_size^2 as vit_jax (no antialiasing); squash: the same with Pillow; shorter: short side + crop
    resize: Resize = "squash"
    crop_pct: float = 1.0  # with "shorter": resize the short side to img_size / crop_pct, centre-crop img_size
    interpolation: Interpolation = "bilinear"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # the originals all map [0, 1] to [-1, 1]
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)


def describe_preprocess(pp: Preprocess) -> str:
    """One line: how images are prepared, e.g. 'shorter side 426, centre crop 384, bicubic, mean 0.5 std 0.5'."""
    if pp.resize == "tf":
        geometry = f"resize to {pp.img_size}x{pp.img_size} as vit_jax (no antialiasing)"
    elif pp.resize == "squash":
        geometry = f"resize to {pp.img_size}x{pp.img_size}"
    else:
        geometry = f"shorter side {math.floor(pp.img_size / pp.crop_pct)}, centre crop {pp.img_size}"
    nums = lambda v: ",".join(f"{x:g}" for x in v) if len(set(v)) > 1 else f"{v[0]:g}"  # noqa: E731
    return f"{geometry}, {pp.interpolation}, mean {nums(pp.mean)} std {nums(pp.std)}"


def default_preprocess(family: str, img_size: int) -> Preprocess:
    """The preprocessing for a checkpoint of ``family`` ("vit", "hybrid", "bit") that names none.

    The originals' own evaluation, the same for the three families: vit_jax and big_transfer both resize the
    decoded image straight to the square with ``tf.image.resize`` (bilinear, no antialiasing) and map
    [0, 255] to [-1, 1].
    """
    if family not in ("vit", "hybrid", "bit"):
        raise VitzooError(f"unknown model family {family!r}")
    return Preprocess(img_size, resize="tf")


def validate_preprocess(pp: Preprocess) -> Preprocess:
    """``pp`` itself, or a ``VitzooError`` naming the invalid field."""
    if pp.img_size <= 0:
        raise VitzooError(f"img_size must be positive, not {pp.img_size}")
    if not 0 < pp.crop_pct <= 1:
        raise VitzooError(f"crop_pct must be in (0, 1], not {pp.crop_pct}")
    if pp.resize not in RESIZE_MODES:
        raise VitzooError(f"resize must be one of {', '.join(map(repr, RESIZE_MODES))}, not {pp.resize!r}")
    if pp.interpolation not in INTERPOLATIONS:
        raise VitzooError(f"interpolation must be 'bilinear' or 'bicubic', not {pp.interpolation!r}")
    if pp.resize == "tf" and pp.interpolation != "bilinear":  # TF's bicubic is another kernel than torch's
        raise VitzooError(f"resize 'tf' is bilinear only, not {pp.interpolation!r}")
    return pp


def override_preprocess(pp: Preprocess, *, img_size: int | None = None, crop_pct: float | None = None) -> Preprocess:
    """``pp`` with the CLI's --img-size / --crop-pct applied (a crop_pct < 1 implies the 'shorter' policy)."""
    changes: dict[str, Any] = {}
    if img_size is not None:
        changes["img_size"] = img_size
    if crop_pct is not None:
        changes["crop_pct"] = crop_pct
        if crop_pct < 1:
            changes["resize"] = "shorter"
    return validate_preprocess(replace(pp, **changes))


class _Tagged(Protocol):
    """What ``tag_preprocess`` reads of a registry tag (``vitzoo.zoo.registry.Weights``)."""

    preprocess: Preprocess


def tag_preprocess(config: ModelConfig, weights: _Tagged | None, display: str) -> tuple[Preprocess, str]:
    """The preprocessing of a registry checkpoint at ``config.img_size``, and where it comes from (for messages)."""
    if weights is None:
        family = family_of(config)
        return default_preprocess(family, config.img_size), f"default for a {family} model: no registry tag"
    return replace(weights.preprocess, img_size=config.img_size), f"registry tag {display}"


def resolve_preprocess(model: Any, *, img_size: int | None = None, crop_pct: float | None = None) -> Preprocess:
    """How to prepare images for ``model``: its checkpoint's preprocessing, with a command's overrides applied.

    ``model.checkpoint.preprocess`` (set by ``vitzoo.load`` and ``vitzoo.create``) when it has one, else the family
    default at the model's resolution; then ``--img-size`` / ``--crop-pct`` (``override_preprocess``).
    """
    config: ModelConfig = model.config
    checkpoint = getattr(model, "checkpoint", None)  # vitzoo.zoo.checkpoint imports this module: no checkpoint_of
    pp = (checkpoint and checkpoint.preprocess) or default_preprocess(family_of(config), config.img_size)
    return override_preprocess(pp, img_size=img_size, crop_pct=crop_pct)


def preprocess_to_json(pp: Preprocess) -> str:
    """``pp`` as JSON, for a weight file's metadata (``vitzoo finetune`` stores its checkpoint's)."""
    import json

    return json.dumps(asdict(pp), sort_keys=True)


def preprocess_from_json(text: str) -> Preprocess:
    """Inverse of ``preprocess_to_json``; a ``VitzooError`` for anything that is not a valid ``Preprocess``."""
    import json

    try:
        data = json.loads(text)
        pp = Preprocess(**{**data, "mean": tuple(data["mean"]), "std": tuple(data["std"])})
    except (ValueError, TypeError, KeyError) as e:
        raise VitzooError(f"invalid preprocessing metadata: {e}") from None
    return validate_preprocess(pp)
