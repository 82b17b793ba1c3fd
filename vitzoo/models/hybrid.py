"""The ResNet root and stages of the hybrid ViTs (vit_jax ``models_resnet.py``), pure torch.

This is *not* BiT's ResNet-v2: units are post-activation ("ResNet v1.5 with GroupNorm and weight
standardisation"), every conv is TF-'SAME' padded, the projection shortcut has its own GroupNorm, and
StdConv uses ``(w - mean) / (std + 1e-5)`` with GroupNorm eps 1e-6 (the Flax defaults).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vitzoo.models.features import OutputFormat, check_output_format, take_indices
from vitzoo.models.layers import StdConv2d, make_stages, pad_same
from vitzoo.zoo.configs import HybridConfig

GN_EPS = 1e-6  # flax.linen.GroupNorm default
WS_EPS = 1e-5  # vit_jax models_resnet.weight_standardize


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> StdConv2d:
    return StdConv2d(cin, cout, kernel, stride, padding="same", eps=WS_EPS, sqrt_eps=False)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=GN_EPS)


class Downsample(nn.Module):
    """Projection shortcut: StdConv 1x1 (strided) + GroupNorm."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv = _conv(cin, cout, 1, stride)
        self.norm = _norm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class Bottleneck(nn.Module):
    """Post-activation bottleneck unit; the stride sits on the 3x3 conv."""

    def __init__(self, cin: int, mid: int, stride: int) -> None:
        super().__init__()
        cout = 4 * mid
        self.conv1, self.norm1 = _conv(cin, mid, 1), _norm(mid)
        self.conv2, self.norm2 = _conv(mid, mid, 3, stride), _norm(mid)
        self.conv3, self.norm3 = _conv(mid, cout, 1), _norm(cout)
        self.downsample = Downsample(cin, cout, stride) if (cin != cout or stride != 1) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        y = self.norm3(self.conv3(y))
        return F.relu(y + shortcut)


class Stem(nn.Module):
    """Root: StdConv 7x7/2 (SAME) -> GroupNorm -> ReLU -> max-pool 3x3/2 (SAME, padded with -inf)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = _conv(3, width, 7, 2)
        self.norm = _norm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.root(x))

    def root(self, x: torch.Tensor) -> torch.Tensor:
        """Conv, GroupNorm, ReLU: the stride-2 map before the max-pool."""
        return F.relu(self.norm(self.conv(x)))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(pad_same(x, 3, 2, value=float("-inf")), 3, 2)


class HybridBackbone(nn.Module):
    """Root + stages; maps (B, 3, H, W) to (B, out_channels, h, w)."""

    def __init__(self, config: HybridConfig) -> None:
        super().__init__()
        w = config.width
        self.stem = Stem(w)
        self.stages = make_stages(Bottleneck, config.layers, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: OutputFormat = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The ResNet's feature maps, numbered as timm's ResNetV2 (the backbone of its hybrid ViTs): 0 the root's
        (after its GroupNorm + ReLU, stride 2, before the max-pool), 1.. the stages. Only "NCHW"; ``norm`` changes
        nothing (no final norm here). The encoder blocks are ``VisionTransformer.forward_intermediates``'."""
        check_output_format(output_fmt, ("NCHW",))
        taken, last = take_indices(len(self.stages) + 1, indices)
        x = self.stem.root(x)
        out = [x] if 0 in taken else []
        x = self.stem.pool(x)
        for i, stage in enumerate(self.stages[:last] if stop_early else self.stages, start=1):
            x = stage(x)
            if i in taken:
                out.append(x)
        return out if intermediates_only else (x, out)
