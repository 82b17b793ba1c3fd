"""Pure-torch model definitions: ViT, hybrid ViT and BiT ResNet-v2. No registry, no I/O."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from vitzoo.models.bit import ResNetV2
from vitzoo.models.layers import set_grad_checkpointing
from vitzoo.models.vit import VisionTransformer, resize_pos_embed
from vitzoo.zoo.configs import BiTConfig, HybridConfig, ModelConfig, ViTConfig, family_of
from vitzoo.zoo.lookup import check_memory

__all__ = [
    "BiTConfig",
    "HybridConfig",
    "ModelConfig",
    "ResNetV2",
    "ViTConfig",
    "VisionTransformer",
    "build_model",
    "resize_pos_embed",
    "set_grad_checkpointing",
]


def build_model(
    config: ModelConfig,
    label: str | None = None,
    *,
    dynamic_img_size: bool = False,
    posemb_interp: Literal["bilinear", "bicubic"] = "bilinear",
) -> nn.Module:
    """Instantiate the network a config describes (randomly initialised, on the current default device).

    Off the meta device, a model whose weights would not fit in the memory available is one line first
    (``vitzoo.zoo.lookup.check_memory``; ``label`` names it there). ``dynamic_img_size``: a ViT takes any input size
    its stride divides, resampling its position embedding with ``posemb_interp`` (see ``VisionTransformer``); a BiT
    is fully convolutional and takes any size anyway.
    """
    if torch.get_default_device().type == "cpu":
        check_memory(config, label or f"the {family_of(config)} model")
    if isinstance(config, ViTConfig):
        return VisionTransformer(config, dynamic_img_size=dynamic_img_size, posemb_interp=posemb_interp)
    if isinstance(config, BiTConfig):
        return ResNetV2(config)
    raise TypeError(f"not a model config: {config!r}")
