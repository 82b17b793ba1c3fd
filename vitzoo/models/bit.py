"""BiT ResNet-v2 (Kolesnikov et al., 2020), the ResNet baselines of the ViT paper, faithful to big_transfer.

Pre-activation bottlenecks with weight-standardised convs (``(w - mean) / sqrt(var + 1e-10)``) and
GroupNorm(32, eps 1e-5); symmetric "fixed" padding everywhere, and a zero-padded max-pool after the root
(zero, not -inf, matters: the root output is not ReLU'd).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitzoo.models.layers import StdConv2d, make_stages, set_grad_checkpointing
from vitzoo.zoo.configs import BiTConfig

GN_EPS = 1e-5  # big_transfer group_normalize / nn.GroupNorm default
WS_EPS = 1e-10  # big_transfer StdConv2d


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> StdConv2d:
    return StdConv2d(cin, cout, kernel, stride, padding=kernel // 2, eps=WS_EPS, sqrt_eps=True)


class PreActBottleneck(nn.Module):
    """x' = ReLU(GN(x)); out = conv3(ReLU(GN(conv2(ReLU(GN(conv1(x'))))))) + (proj(x') or x)."""

    def __init__(self, cin: int, mid: int, stride: int) -> None:
        super().__init__()
        cout = 4 * mid
        self.norm1, self.conv1 = nn.GroupNorm(32, cin, eps=GN_EPS), _conv(cin, mid, 1)
        self.norm2, self.conv2 = nn.GroupNorm(32, mid, eps=GN_EPS), _conv(mid, mid, 3, stride)
        self.norm3, self.conv3 = nn.GroupNorm(32, mid, eps=GN_EPS), _conv(mid, cout, 1)
        self.downsample = Projection(cin, cout, stride) if (cin != cout or stride != 1) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_act = F.relu(self.norm1(x))
        shortcut = x if self.downsample is None else self.downsample(x_act)
        y = self.conv1(x_act)
        y = self.conv2(F.relu(self.norm2(y)))
        y = self.conv3(F.relu(self.norm3(y)))
        return y + shortcut


class Projection(nn.Module):
    """Projection shortcut on the pre-activated input: one StdConv 1x1, no norm."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv = _conv(cin, cout, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Stem(nn.Module):
    """StdConv 7x7/2 (pad 3), then zero pad 1 and max-pool 3x3/2."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = _conv(3, width, 7, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.pad(self.conv(x), (1, 1, 1, 1)), 3, 2)


class ResNetV2(nn.Module):
    """BiT ResNet-v2: (B, 3, H, W) -> (B, C) logits, or (B, F) pooled features if C = 0."""

    def __init__(self, config: BiTConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.stem = Stem(w)
        self.stages = make_stages(PreActBottleneck, config.layers, w)
        features = config.num_features
        self.norm = nn.GroupNorm(32, features, eps=GN_EPS)  # final pre-activation before the head
        self.head = nn.Linear(features, config.num_classes) if config.num_classes else nn.Identity()
        if isinstance(self.head, nn.Linear):  # BiT fine-tunes from a zero head
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    @property
    def num_features(self) -> int:
        """Size of the pooled feature vector."""
        return self.config.num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map after the final GroupNorm + ReLU: (B, F, h, w)."""
        return F.relu(self.norm(self.stages(self.stem(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, then the linear head."""
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def set_grad_checkpointing(self, enabled: bool = True) -> ResNetV2:
        """Checkpoint every bottleneck unit in training; returns the model."""
        return set_grad_checkpointing(self, enabled)
