"""BiT ResNet-v2 (Kolesnikov et al., 2020), the ResNet baselines of the ViT paper, faithful to big_transfer.

Pre-activation bottlenecks with weight-standardised convs (``(w - mean) / sqrt(var + 1e-10)``) and
GroupNorm(32, eps 1e-5); symmetric "fixed" padding everywhere, and a zero-padded max-pool after the root
(zero, not -inf, matters: the root output is not ReLU'd).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vitzoo.models.checkpointed import CarriesCheckpoint
from vitzoo.models.features import OutputFormat, check_output_format, take_indices
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
        return self.pool(self.conv(x))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The max-pool after the root conv (zero padded)."""
        return F.max_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 2)


class GroupNormAct(nn.GroupNorm):
    """GroupNorm then ReLU: the final pre-activation (one module, as timm's NormAct, so pruning drops both)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


class ResNetV2(CarriesCheckpoint, nn.Module):
    """BiT ResNet-v2: (B, 3, H, W) -> (B, C) logits, or (B, F) pooled features if C = 0."""

    def __init__(self, config: BiTConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.stem = Stem(w)
        self.stages = make_stages(PreActBottleneck, config.layers, w)
        features = config.num_features
        self.norm = GroupNormAct(32, features, eps=GN_EPS)  # final pre-activation before the head
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
        return self.norm(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, then the linear head."""
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: OutputFormat = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Feature maps of the stem and the stages, numbered as timm's ResNetV2 does: 0 is the root conv's output
        (stride 2, before the max-pool), 1.. the stages. ``norm`` applies the final GroupNorm + ReLU to the last
        stage's map (the only one it fits), so that one equals ``forward_features``. Only "NCHW". Arguments and
        results otherwise as ``VisionTransformer.forward_intermediates``.
        """
        check_output_format(output_fmt, ("NCHW",))
        last_stage = len(self.stages)
        taken, last = take_indices(last_stage + 1, indices)
        out = []
        x = self.stem.conv(x)
        if 0 in taken:
            out.append(x)
        x = self.stem.pool(x)
        stages = self.stages[:last] if stop_early else self.stages
        for i, stage in enumerate(stages, start=1):
            x = stage(x)
            if i in taken:
                out.append(self.norm(x) if norm and i == last_stage else x)
        if intermediates_only:
            return out
        return (self.norm(x) if len(stages) == last_stage else x), out

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last of ``indices`` (0: the stem), the final GroupNorm + ReLU (``prune_norm``;
        always when a stage is dropped: it fits only the last one) and the head (``prune_head``). ``config`` follows
        (its stages, no head), so the closed-form counts are the model's less a pruned norm's 2 x features.
        Returns the indices kept.
        """
        taken, last = take_indices(len(self.stages) + 1, indices)
        cut = last < len(self.stages)
        if cut and not prune_head and isinstance(self.head, nn.Linear):
            raise ValueError("the head fits only the last stage's features: keep it (indices) or pass prune_head=True")
        self.stages = self.stages[:last]
        if prune_norm or cut:
            self.norm = nn.Identity()
        if cut:
            self.config = self.config.replace(layers=self.config.layers[:last])
        if prune_head:
            self.head = nn.Identity()
            self.config = self.config.replace(num_classes=0)
        return taken

    def set_grad_checkpointing(self, enabled: bool = True) -> ResNetV2:
        """Checkpoint every bottleneck unit in training; returns the model."""
        return set_grad_checkpointing(self, enabled)
