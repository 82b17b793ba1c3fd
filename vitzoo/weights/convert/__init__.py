"""Any supported checkpoint -> (model config, canonical state dict), strictly.

The layout is detected from the tensors (never the file name); the architecture is inferred from the
shapes and cross-checked against an optional expected config; every source tensor must be used or
explicitly ignored (optimizer state), every model tensor filled with the right shape.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from vitzoo.models import build_model
from vitzoo.weights.checkpoint import CheckpointError, check_finite, config_from_json, read_tensors
from vitzoo.weights.convert import jax, torch_formats
from vitzoo.zoo.configs import BiTConfig, HybridConfig, ModelConfig, ViTConfig

# Heads are not visible in fused or per-projection Linear shapes: the released widths use these (with H = 3 for
# Ti, whose head dim is 64 like all but H/14). vit_jax files carry the heads in their kernel shapes.
HEADS_BY_WIDTH = {10: 2, 192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}


@dataclass(frozen=True)
class Converted:
    """A checkpoint in vitzoo's canonical form."""

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    source_format: str
    ignored: tuple[str, ...] = ()  # source keys deliberately left out (optimizer state, HF pooler of a classifier)


def detect_format(keys: set[str], metadata: dict[str, str] | None = None) -> str:
    """One of ``READ_FORMATS``, from the key names (and vitzoo's own metadata)."""
    if metadata and metadata.get("format") == "vitzoo":
        return "vitzoo"
    plain = {k.removeprefix("opt/target/") for k in keys}
    if "embedding/kernel" in plain:
        return "vit_jax"
    if "resnet/root_block/standardized_conv2d/kernel" in plain or any(
        re.fullmatch(r"resnet/root_block/standardized_conv2d(_\d+)?/kernel", k) for k in plain
    ):
        return "bit_jax"
    if torch_formats.is_transformers(keys):
        return "transformers"
    if torch_formats.is_timm(keys):
        return "timm"
    sample = ", ".join(sorted(keys)[:4])
    raise CheckpointError(f"unrecognised checkpoint layout (first keys: {sample})")


def _stage_depths(sd: dict[str, torch.Tensor], prefix: str) -> tuple[int, ...]:
    depths = []
    while any(k.startswith(f"{prefix}stages.{len(depths)}.") for k in sd):
        s = len(depths)
        depths.append(
            len(
                {int(m.group(1)) for k in sd if (m := re.match(rf"{re.escape(prefix)}stages\.{s}\.blocks\.(\d+)\.", k))}
            )
        )
    return tuple(depths)


def infer_config(sd: dict[str, torch.Tensor], heads: int | None, expected: ModelConfig | None) -> ModelConfig:
    """The architecture a canonical state dict describes; resolution of BiT and heads of ViTs may come from
    ``expected`` (when shapes cannot tell)."""
    if "stem.conv.weight" in sd:  # BiT
        width = sd["stem.conv.weight"].shape[0]
        if width % 64:
            raise CheckpointError(f"BiT root width {width} is not a multiple of 64")
        classes = sd["head.weight"].shape[0] if "head.weight" in sd else 0
        img = expected.img_size if isinstance(expected, BiTConfig) else 224
        return BiTConfig(_stage_depths(sd, ""), width // 64, img_size=img, num_classes=classes)
    if "patch_embed.proj.weight" not in sd:
        raise CheckpointError("neither a ViT nor a BiT state dict (no patch embedding, no stem)")
    D, _, P, _ = sd["patch_embed.proj.weight"].shape
    depth = len({int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))})
    if not heads:
        if isinstance(expected, ViTConfig) and expected.width == D:
            heads = expected.num_heads
        elif D in HEADS_BY_WIDTH:
            heads = HEADS_BY_WIDTH[D]
        else:
            raise CheckpointError(f"cannot tell the number of heads of a width-{D} ViT from its weights; pass --expect")
    backbone = None
    if "patch_embed.backbone.stem.conv.weight" in sd:
        backbone = HybridConfig(
            _stage_depths(sd, "patch_embed.backbone."), sd["patch_embed.backbone.stem.conv.weight"].shape[0]
        )
    prefix = 1 if "cls_token" in sd else 0
    tokens = sd["pos_embed"].shape[1] - prefix
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise CheckpointError(f"pos_embed holds {tokens} patch slots, not a square grid")
    stride = 1 if backbone is None else 2 ** (len(backbone.layers) + 1 if backbone.layers else 2)
    return ViTConfig(
        patch_size=P,
        width=D,
        depth=depth,
        num_heads=heads,
        mlp_dim=sd["blocks.0.mlp.fc1.weight"].shape[0],
        img_size=grid * P * stride,
        num_classes=sd["head.weight"].shape[0] if "head.weight" in sd else 0,
        classifier="token" if prefix else "gap",
        representation_size=sd["pre_logits.fc.weight"].shape[0] if "pre_logits.fc.weight" in sd else None,
        backbone=backbone,
    )


ARCH_FIELDS = {
    ViTConfig: ("patch_size", "width", "depth", "num_heads", "mlp_dim", "classifier", "backbone"),
    BiTConfig: ("layers", "width_factor"),
}


def check_architecture(found: ModelConfig, expected: ModelConfig, name: str) -> None:
    """Raise if the checkpoint's architecture is not ``expected``'s (resolution and head may differ)."""
    if type(found) is not type(expected):
        raise CheckpointError(f"checkpoint is a {type(found).__name__}, but {name} is a {type(expected).__name__}")
    diffs = [
        f"{f}={getattr(found, f)} (expected {getattr(expected, f)})"
        for f in ARCH_FIELDS[type(found)]
        if getattr(found, f) != getattr(expected, f)
    ]
    if diffs:
        raise CheckpointError(f"checkpoint does not match {name}: " + ", ".join(diffs))


def check_state_dict(config: ModelConfig, sd: dict[str, torch.Tensor]) -> None:
    """Every model tensor present with the right shape, nothing extra; a readable diff otherwise."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong = [
        f"{k} {tuple(sd[k].shape)} != {expected[k]}"
        for k in sorted(set(sd) & set(expected))
        if tuple(sd[k].shape) != expected[k]
    ]
    if missing or unexpected or wrong:
        parts = [
            f"{label} {len(items)}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
            for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong))
            if items
        ]
        raise CheckpointError("checkpoint does not fit the model; " + "; ".join(parts))


def convert_tensors(
    tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None, expected: ModelConfig | None = None
) -> Converted:
    """Detect, convert, infer the architecture, check it against ``expected`` and check every tensor."""
    fmt = detect_format(set(tensors), metadata)
    ignored: list[str] = []
    heads = None
    if fmt == "vitzoo":
        config, sd = config_from_json(metadata["config"]), dict(tensors)
    else:
        if fmt == "vit_jax":
            params, ignored = jax.strip_optimizer(tensors)
            src = jax.Source(params)
            sd, heads = jax.vit_jax_to_canonical(src)
        elif fmt == "bit_jax":
            src = jax.Source(tensors)
            sd = jax.bit_jax_to_canonical(src)
        elif fmt == "transformers":
            sd, leftover = torch_formats.transformers_to_canonical(tensors)
        else:
            sd, leftover = torch_formats.timm_to_canonical(tensors), []
        if fmt in ("vit_jax", "bit_jax"):
            leftover = src.leftover()
        if leftover:
            raise CheckpointError(
                f"{len(leftover)} {fmt} tensors have no place in the model: {', '.join(leftover[:4])}"
            )
        config = infer_config(sd, heads, expected)
    sd = {k: v.float() if v.is_floating_point() and v.dtype != torch.float32 else v for k, v in sd.items()}
    check_finite(sd, f"{fmt} checkpoint")
    check_state_dict(config, sd)
    return Converted(config, sd, fmt, tuple(ignored))


def convert_file(path, expected: ModelConfig | None = None) -> Converted:
    """Read any supported weight file and convert it (see ``convert_tensors``)."""
    tensors, metadata = read_tensors(path)
    try:
        return convert_tensors(tensors, metadata, expected)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
