"""Model configurations: the architecture of every family as a frozen dataclass (no torch).

The registry, the closed-form counts (``vitzoo.zoo.analytic``) and ``vitzoo list`` work from these alone; the
networks that compute them are in ``vitzoo.models``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Literal


@dataclass(frozen=True)
class HybridConfig:
    """ResNet part of a hybrid ViT."""

    layers: tuple[int, ...]  # bottleneck units per stage; () = root only (R+Ti/16)
    width: int = 64  # root width = 64 * width_factor; every released hybrid uses 64

    @property
    def out_channels(self) -> int:
        """Channels of the feature map handed to the patch embedding."""
        return self.width * 2 ** (len(self.layers) + 1) if self.layers else self.width

    def feature_size(self, img_size: int) -> int:
        """Side of the feature map for a square input (SAME convs give ceil divisions)."""
        size = -(-img_size // 2)  # root conv 7x7/2
        size = -(-size // 2)  # max-pool 3x3/2
        for _ in self.layers[1:]:  # first unit of stages 2.. has stride 2
            size = -(-size // 2)
        return size

    @property
    def stride(self) -> int:
        """Input pixels per feature-map pixel: 4 for the root, then 2 per stage after the first."""
        return 4 * 2 ** max(len(self.layers) - 1, 0)


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of a (hybrid) ViT; names follow the paper's Table 1."""

    patch_size: int  # P; 1 for the hybrids with a ResNet of total stride 16/32
    width: int  # hidden size D
    depth: int  # encoder blocks L
    num_heads: int  # H; head dim = width // num_heads
    mlp_dim: int  # MLP hidden size M
    img_size: int = 224  # square input side
    num_classes: int = 1000  # 0 = no head: the model returns pre-logit features
    classifier: Literal["token", "gap"] = "token"  # class token, or mean of all tokens after the final LN
    representation_size: int | None = None  # pre_logits Dense+tanh (the 2020 ImageNet-21k checkpoints)
    backbone: HybridConfig | None = None  # ResNet root/stages of a hybrid

    def __post_init__(self) -> None:
        if self.classifier not in ("token", "gap"):
            raise ValueError(f"classifier must be 'token' or 'gap', not {self.classifier!r}")
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")
        if self.feature_size % self.patch_size:
            raise ValueError(
                f"img_size {self.img_size} gives a {self.feature_size}px feature map, "
                f"not a multiple of the patch size {self.patch_size}"
            )

    @property
    def feature_size(self) -> int:
        """Side of the map the patch embedding sees: the image, or the hybrid's ResNet output."""
        return self.img_size if self.backbone is None else self.backbone.feature_size(self.img_size)

    @property
    def grid_size(self) -> int:
        """Patches per side."""
        return self.feature_size // self.patch_size

    @property
    def stride(self) -> int:
        """Input pixels per patch: the patch size, times the hybrid ResNet's stride. A model that takes any size
        (``dynamic_img_size``) takes every H x W this divides."""
        return self.patch_size * (1 if self.backbone is None else self.backbone.stride)

    @property
    def num_prefix_tokens(self) -> int:
        """1 with a class token, else 0."""
        return int(self.classifier == "token")

    @property
    def seq_len(self) -> int:
        """Tokens through the encoder."""
        return self.grid_size**2 + self.num_prefix_tokens

    @property
    def num_features(self) -> int:
        """Size of the vector that feeds the head."""
        return self.representation_size or self.width

    def replace(self, **changes) -> ViTConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class BiTConfig:
    """Architecture of a BiT ResNet-v2: R{depth}x{width_factor}."""

    layers: tuple[int, ...]  # units per stage: R50 (3,4,6,3), R101 (3,4,23,3), R152 (3,8,36,3)
    width_factor: int  # the "x1", "x3" of R50x3
    img_size: int = 224  # nominal input side (the network itself is fully convolutional)
    num_classes: int = 1000  # 0 = no head: the model returns pooled features

    @property
    def width(self) -> int:
        """Root width."""
        return 64 * self.width_factor

    @property
    def stride(self) -> int:
        """Input pixels per pixel of the final map: 4 for the root, then 2 per stage after the first."""
        return 4 * 2 ** max(len(self.layers) - 1, 0)

    @property
    def num_features(self) -> int:
        """Channels after the last stage."""
        return self.width * 2 ** (len(self.layers) + 1)

    def replace(self, **changes) -> BiTConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)


ModelConfig = ViTConfig | BiTConfig
Family = Literal["vit", "hybrid", "bit"]


def family_of(config: ModelConfig) -> Family:
    """vit, hybrid or bit, from a config."""
    if isinstance(config, BiTConfig):
        return "bit"
    return "vit" if config.backbone is None else "hybrid"


def config_to_json(config: ModelConfig) -> str:
    """Serialise a model config (kind + fields) for the safetensors metadata."""
    kind = "vit" if isinstance(config, ViTConfig) else "bit"
    return json.dumps({"kind": kind, **asdict(config)}, sort_keys=True)


def config_from_json(text: str) -> ModelConfig:
    """Inverse of ``config_to_json``."""
    data = json.loads(text)
    kind = data.pop("kind")
    if kind == "bit":
        return BiTConfig(**{**data, "layers": tuple(data["layers"])})
    backbone = data.pop("backbone")
    if backbone is not None:
        backbone = HybridConfig(**{**backbone, "layers": tuple(backbone["layers"])})
    return ViTConfig(**data, backbone=backbone)
