"""Layers shared by the hybrid ViT backbone and the BiT ResNets: weight-standardised convs and TF padding."""

from __future__ import annotations

from collections.abc import Callable

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
        """The kernel the original code convolves with (computed in at least fp32)."""
        w = self.weight
        if w.dtype in (torch.float16, torch.bfloat16):  # statistics of a half-precision kernel lose digits
            w = w.float()
        var, mean = torch.var_mean(w, dim=(1, 2, 3), keepdim=True, correction=0)
        denom = torch.sqrt(var + self.eps) if self.sqrt_eps else torch.sqrt(var) + self.eps
        return (w - mean) / denom

    def _weight_for(self, dtype: torch.dtype) -> torch.Tensor:
        """The standardised kernel in ``dtype``; cached while no gradient flows to the weight and it is unchanged.

        The cache key holds the weight's version counter (bumped by in-place updates such as
        ``load_state_dict``), its storage (``.to()``/``assign=True`` replace it), dtype and device, so a stale
        kernel is never used. The cached kernel is always a normal tensor (computed outside ``inference_mode``
        and without autograd history), so a kernel cached by an ``inference_mode`` pass can still be saved for
        backward when a later pass takes gradients w.r.t. the input (saliency of a frozen model). Compiled
        graphs, the meta device and weights created in ``inference_mode`` (no version counter) compute it every
        time.
        """
        w = self.weight
        if (torch.is_grad_enabled() and w.requires_grad) or w.is_meta or w.is_inference() or _compiling():
            return self.standardized_weight().to(dtype)
        key = (w._version, w.data_ptr(), w.dtype, w.device, dtype)
        cached = self.__dict__.get("_cached_weight")
        if cached is None or cached[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                cached = (key, self.standardized_weight().to(dtype))
            self.__dict__["_cached_weight"] = cached  # a plain attribute: never in the state dict
        return cached[1]

    def __getstate__(self) -> dict:
        return _without_caches(self, "_cached_weight")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_same:
            x = pad_same(x, self.kernel_size[0], self.stride[0])
        return F.conv2d(x, self._weight_for(x.dtype), None, self.stride, self.padding)


class Stage(nn.Module):
    """A stack of bottleneck units (``unit(cin, mid, stride)``); only the first may change stride and width."""

    grad_checkpointing: bool = False  # recompute each unit's activations in backward (``set_grad_checkpointing``)

    def __init__(self, unit: Callable[[int, int, int], nn.Module], cin: int, mid: int, depth: int, stride: int):
        super().__init__()
        self.blocks = nn.Sequential(
            *(unit(cin if i == 0 else 4 * mid, mid, stride if i == 0 else 1) for i in range(depth))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_blocks(self.blocks, x, self.grad_checkpointing)


def run_blocks(blocks: nn.Sequential, x: torch.Tensor, checkpointed: bool) -> torch.Tensor:
    """``blocks(x)``; with ``checkpointed`` and autograd recording, each block through ``torch.utils.checkpoint``
    (its activations recomputed in backward instead of kept: less memory for about one more forward)."""
    if not (checkpointed and torch.is_grad_enabled()):
        return blocks(x)
    from torch.utils.checkpoint import checkpoint

    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False)
    return x


def set_grad_checkpointing(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch activation checkpointing per block on or off in every module that has it (ViT blocks, ResNet
    stages); returns ``model``. Inference and ``torch.no_grad`` passes are unchanged either way."""
    for m in model.modules():
        if isinstance(getattr(type(m), "grad_checkpointing", None), bool):
            m.grad_checkpointing = enabled
    return model


def make_stages(unit: Callable[[int, int, int], nn.Module], layers: tuple[int, ...], width: int) -> nn.Sequential:
    """ResNet stages of bottleneck units: stage i has width * 2**i mid channels and stride 2 unless it is the first."""
    return nn.Sequential(
        *(
            Stage(unit, width * 2 ** (i + 1) if i else width, width * 2**i, depth, 2 if i else 1)
            for i, depth in enumerate(layers)
        )
    )


def _without_caches(module: nn.Module, *names: str) -> dict:
    """``__getstate__`` of a module minus its derived-weight caches (copies and pickles rebuild them)."""
    return {k: v for k, v in module.__dict__.items() if k not in names}


def _compiling() -> bool:
    """Whether this runs inside a ``torch.compile``/``torch.export`` trace (where caches are bypassed)."""
    return torch.compiler.is_compiling()
