"""Pure-torch model definitions: ViT, hybrid ViT and BiT ResNet-v2. No registry, no I/O."""

from __future__ import annotations

from torch import nn

from vitzoo.models.bit import ResNetV2
from vitzoo.models.vit import VisionTransformer, resize_pos_embed
from vitzoo.zoo.configs import BiTConfig, HybridConfig, ModelConfig, ViTConfig

__all__ = [
    "BiTConfig",
    "HybridConfig",
    "ModelConfig",
    "ResNetV2",
    "ViTConfig",
    "VisionTransformer",
    "build_model",
    "resize_pos_embed",
]


def build_model(config: ModelConfig) -> nn.Module:
    """Instantiate the network a config describes (randomly initialised, on the current default device)."""
    if isinstance(config, ViTConfig):
        return VisionTransformer(config)
    if isinstance(config, BiTConfig):
        return ResNetV2(config)
    raise TypeError(f"not a model config: {config!r}")
