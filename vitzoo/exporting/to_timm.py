"""timm: one safetensors file with timm's key names, model name, keyword arguments and ``pretrained_cfg``
(preprocessing and class names), and the head's label space."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitzoo.errors import first_line
from vitzoo.exporting._common import (
    Exported,
    ExportError,
    checkpoint_labels,
    display_name,
    move_into_place,
    quiet,
    staging,
    standardized_state_dict,
    writing,
)
from vitzoo.exporting.check import check_logits
from vitzoo.zoo.configs import BiTConfig, ModelConfig
from vitzoo.zoo.preprocess import Preprocess

TIMM_VIT_SIZES = {(192, 3): "tiny", (384, 6): "small", (768, 12): "base", (1024, 16): "large", (1280, 16): "huge"}
TIMM_HYBRIDS = {  # (ResNet stages, width) -> timm model
    ((), 192): "vit_tiny_r_s16_p8_224",
    ((2, 2, 2, 2), 384): "vit_small_r26_s32_224",
    ((2, 2, 2, 2), 768): "vit_base_r26_s32_224",
    ((3, 4, 9), 768): "vit_base_r50_s16_224",
    ((3, 4, 6, 3), 1024): "vit_large_r50_s32_224",
}
TIMM_BIT_DEPTHS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}


def timm_model(config: ModelConfig) -> tuple[str, dict[str, Any]]:
    """The timm model name for an architecture and the ``create_model`` kwargs that make it this very network
    with the original numerics (tanh GELU for ViTs; resolution, classes, pooling); ExportError where timm has none.

    ViT: ``vit_{tiny,small,base,large,huge}_patch{P}_224`` (the testing config: ``vit_base_patch16_224`` with its
    sizes as kwargs); hybrids: ``vit_tiny_r_s16_p8_224``, ``vit_{small,base}_r26_s32_224``, ``vit_base_r50_s16_224``,
    ``vit_large_r50_s32_224``; BiT: ``resnetv2_{50,101,152}x{1,2,3,4}_bit``.
    """
    if isinstance(config, BiTConfig):
        depth = TIMM_BIT_DEPTHS.get(config.layers)
        if depth is None:
            raise ExportError(f"timm has no BiT ResNet with stages {config.layers}; export to onnx or transformers")
        return f"resnetv2_{depth}x{config.width_factor}_bit", {"num_classes": config.num_classes}  # fully conv.
    if config.representation_size:
        raise ExportError("timm's VisionTransformer has no representation layer; drop it (--no-pre-logits)")
    kwargs: dict[str, Any] = {"img_size": config.img_size, "num_classes": config.num_classes,
                              "act_layer": "gelu_tanh"}  # fmt: skip
    if config.classifier == "gap":
        kwargs.update(class_token=False, global_pool="avg", fc_norm=False)  # LayerNorm before pooling, as vit_jax
    if config.backbone is not None:
        name = TIMM_HYBRIDS.get((config.backbone.layers, config.width))
        if name is None or config.backbone.width != 64:
            raise ExportError(f"timm has no hybrid with ResNet stages {config.backbone.layers} and width "
                              f"{config.width}; export to onnx")  # fmt: skip
        kwargs["num_heads"] = config.num_heads  # the name fixes only the ResNet and the width
    else:
        size = TIMM_VIT_SIZES.get((config.width, config.num_heads))
        name = f"vit_{size or 'base'}_patch{config.patch_size}_224"
        if size is None or config.patch_size not in (8, 14, 16, 32):
            name = "vit_base_patch16_224"
            kwargs.update(patch_size=config.patch_size, embed_dim=config.width, num_heads=config.num_heads)
    kwargs.update(depth=config.depth, mlp_ratio=config.mlp_dim / config.width)
    return name, kwargs


def timm_pretrained_cfg(
    config: ModelConfig, pp: Preprocess, name: str, labels: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` fields for this checkpoint (preprocessing, head, first conv, and ``label_names``
    when the head's class names are known); only fields timm's ``PretrainedCfg`` has, so ``create_model`` takes it."""
    if isinstance(config, BiTConfig):
        first, classifier = "stem.conv", "head.fc"
    elif config.backbone is not None:
        first = "patch_embed.backbone.conv" if not config.backbone.layers else "patch_embed.backbone.stem.conv"
        classifier = "head"
    else:
        first, classifier = "patch_embed.proj", "head"
    crop_mode = "center" if pp.resize == "shorter" else "squash"  # tf: the nearest timm has (its squash antialiases)
    cfg = {"architecture": name, "num_classes": config.num_classes, "input_size": [3, pp.img_size, pp.img_size],
            "fixed_input_size": not isinstance(config, BiTConfig), "interpolation": pp.interpolation,
            "crop_pct": pp.crop_pct, "crop_mode": crop_mode, "mean": list(pp.mean), "std": list(pp.std),
            "first_conv": first, "classifier": classifier}  # fmt: skip
    return cfg if labels is None else {**cfg, "label_names": list(labels)}


def _export_timm(model: nn.Module, out: Path, pp: Preprocess, tolerance: float) -> Exported:
    from safetensors.torch import save_file

    from vitzoo.models import build_model
    from vitzoo.weights.checkpoint import read_tensors
    from vitzoo.weights.convert import convert_tensors
    from vitzoo.weights.convert.torch_formats import canonical_to_timm

    config = model.config
    name, kwargs = timm_model(config)
    space, labels = checkpoint_labels(model)
    cfg = timm_pretrained_cfg(config, pp, name, labels)
    bit = isinstance(config, BiTConfig)
    tensors = {k: v.contiguous() for k, v in canonical_to_timm(standardized_state_dict(model), bit).items()}
    info = {"model_name": name, "kwargs": kwargs, "pretrained_cfg": cfg, "label_space": space}
    with staging(out) as tmp:
        staged = tmp / out.name
        with writing(out):
            save_file(tensors, str(staged), metadata={"format": "pt", "timm_info": json.dumps(info)})
        if importlib.util.find_spec("timm") is not None:
            run, checked = (lambda x: _run_timm(staged, name, kwargs, cfg, x)), "timm"
        else:  # read back through vitzoo's timm reader (key names and shapes), then run what it rebuilt
            back = convert_tensors(read_tensors(staged)[0], expected=config)
            if back.source_format != "timm":
                raise ExportError(f"{out}: the written file is not read back as timm ({back.source_format})")
            with torch.device("meta"):
                rebuilt = build_model(config)
            rebuilt.load_state_dict(back.state_dict, strict=True, assign=True)
            run, checked = rebuilt.eval(), "vitzoo's timm reader (timm is not installed)"
        rel = check_logits(model, run, tolerance, "the timm file")
        move_into_place(staged, out)
    return Exported(out, "timm", display_name(model), config.img_size, config.num_classes, f"timm {name}", checked,
                    rel, (out.name,), info)  # fmt: skip


def timm_overlay(path: str | os.PathLike, pretrained_cfg: dict[str, Any]) -> dict[str, Any]:
    """``pretrained_cfg_overlay`` for ``timm.create_model``: the file and its cfg (whose ``num_classes`` keeps timm
    from dropping a head whose size differs from the named model's default)."""
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in pretrained_cfg.items() if k != "architecture"}
    return {"file": str(path), **cfg}


def _run_timm(path: Path, name: str, kwargs: dict[str, Any], cfg: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    """Build the timm model from the file the way a user would, and run it."""
    import timm

    try:
        with quiet():
            net = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=timm_overlay(path, cfg), **kwargs)
    except Exception as e:
        raise ExportError(f"timm cannot load the export as {name}: {first_line(e)}") from None
    with torch.inference_mode():
        return net.eval()(x)
