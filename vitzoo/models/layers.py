"""Layers shared by the hybrid ViT backbone and the BiT ResNets: weight-standardised convs and TF padding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF/Flax 'SAME' padding (before, after) for one spatial dim; the extra pixel goes after."""
    out = -(-size // stride)  # ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad an NCHW tensor so that a VALID op with (kernel, stride) computes TF 'SAME'."""
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


class StdConv2d(nn.Conv2d):
    """Conv2d whose kernel is standardised per output channel before use (Qiao et al., 2019).

    The checkpoint stores the raw kernel, so the standardisation runs in ``forward`` with the
    formula of the code that trained it:

    * ``sqrt_eps=False`` (vit_jax hybrid): ``(w - mean) / (std + eps)``, eps = 1e-5;
    * ``sqrt_eps=True`` (BiT): ``(w - mean) / sqrt(var + eps)``, eps = 1e-10.

    ``padding="same"`` pads like TF (asymmetric at stride 2); an int pads symmetrically.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        *,
        padding: int | str = 0,
        eps: float,
        sqrt_eps: bool,
    ) -> None:
        self.tf_same = padding == "same"
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding=0 if self.tf_same else padding, bias=False
        )
        self.eps = eps
        self.sqrt_eps = sqrt_eps

    def standardized_weight(self) -> torch.Tensor:
        """The kernel the original code convolves with."""
        w = self.weight
        var, mean = torch.var_mean(w, dim=(1, 2, 3), keepdim=True, correction=0)
        denom = torch.sqrt(var + self.eps) if self.sqrt_eps else torch.sqrt(var) + self.eps
        return (w - mean) / denom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_same:
            x = pad_same(x, self.kernel_size[0], self.stride[0])
        weight = self.standardized_weight().to(x.dtype)
        return F.conv2d(x, weight, None, self.stride, self.padding)
