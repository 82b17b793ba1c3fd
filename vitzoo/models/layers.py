"""Layers shared by the hybrid ViT backbone and the BiT ResNets: weight-standardised convs and TF padding."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torch.utils._python_dispatch
from torch import nn

from vitzoo import settings
from vitzoo.machine import cpu_flags


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


def _onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


_ONEDNN = _onednn_linear_available()
_REORDER = _ONEDNN and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _compiling() -> bool:
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    return is_compiling() if is_compiling is not None else torch._dynamo.is_compiling()


@functools.cache
def onednn_linear_supports(dtype: torch.dtype) -> bool:
    """Whether this CPU runs oneDNN's fused linear (weight reorder, GELU and residual epilogues) in ``dtype``.

    Probed once per dtype on a tiny GEMM rather than read from the ISA flags: oneDNN's bf16/fp16 paths need
    AVX-512 (BW/VL), AVX-NE-CONVERT or AMX, and only the library knows exactly which. On an AVX2-only CPU fp32
    passes and bf16 fails ("bf16 path needs the cpu support avx_ne_convert or avx512bw ..."), so the fused
    kernels fall back to aten there instead of failing.
    """
    if not _ONEDNN:
        return False
    # outside any active dispatch mode (FlopCounterMode, fake tensors): the probe is not part of the model's work
    no_modes = getattr(torch.utils._python_dispatch, "_disable_current_modes", contextlib.nullcontext)
    try:
        with no_modes(), torch.inference_mode():
            x, w = torch.ones(2, 8, dtype=dtype, device="cpu"), torch.ones(4, 8, dtype=dtype, device="cpu")
            b = torch.zeros(4, dtype=dtype, device="cpu")
            packed = torch.ops.mkldnn._reorder_linear_weight(w, 2) if _REORDER else w
            y = torch.ops.mkldnn._linear_pointwise(x, packed, b, "gelu", [], "tanh")
            torch.ops.mkldnn._linear_pointwise.binary(x, y, packed, b, "add")
    except RuntimeError:
        return False
    return True


@functools.cache
def separate_gelu() -> bool:
    """Whether the fused fp32 path runs the MLP's tanh-GELU as its own in-place pass after oneDNN's linear, instead
    of as oneDNN's GELU post-op (``VITZOO_GELU_EPILOGUE=separate|postop`` forces either).

    Without AVX-512 (16 vector registers), oneDNN's fp32 brgemm with the GELU post-op ran the ViT-B/16 fc1 GEMM
    (3152x768x3072, 2 threads) ~28% slower than without it, and a separate in-place ``gelu_`` costs about half of
    that: the MLP block took 1.15x less time (benchmarks/results/gelu-epilogue-avx2-2core-pt2.13.md). With AVX-512
    (32 registers) the post-op is kept: it is expected to be cheap there (not measured). The pass is ``gelu_tanh_``.
    """
    if forced := settings.choice("VITZOO_GELU_EPILOGUE"):
        return forced == "separate"
    flags = cpu_flags()
    return flags is not None and "avx2" in flags and "avx512f" not in flags


_GELU_2C = 2 * math.sqrt(2 / math.pi)


def gelu_tanh_(y: torch.Tensor) -> torch.Tensor:
    """The tanh-GELU of ``y``, in place: ``y * sigmoid(2c (y + 0.044715 y^3))`` with ``c = sqrt(2/pi)``, which is
    ``0.5 y (1 + tanh(c (y + 0.044715 y^3)))`` exactly, since ``1 + tanh(u) = 2 sigmoid(2u)``.

    Four cheap vector passes (and one temporary the size of ``y``) instead of aten's accurate tanh: on ViT-B/16's
    fc1 output (3152x3072 fp32, 2 AVX2 cores) 16.3 ms against ``aten.gelu_``'s 21.3 (medians of 10 interleaved
    rounds), and ViT-B/16 1.03x faster end to end. Within 5.2e-7 of the float64 result there (aten's: 4.3e-7).
    """
    t = torch.addcmul(y.new_tensor(_GELU_2C), y, y, value=_GELU_2C * 0.044715)
    torch.sigmoid_(t.mul_(y))
    return y.mul_(t)


def fusable(x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None = None) -> bool:
    """Whether oneDNN's fused linear may replace aten here: CPU fp32/bf16 inference, eager, no autocast, and a CPU
    whose oneDNN runs this dtype (``onednn_linear_supports``)."""
    return (
        _ONEDNN
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and x.dtype == weight.dtype
        and (residual is None or (residual.dtype == x.dtype and residual.is_contiguous()))
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and not _cpu_autocast()
        and not _compiling()
        and onednn_linear_supports(x.dtype)
    )


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state-dict keys) that can run as one fused oneDNN kernel on CPU.

    ``fused`` is off by default, so the model computes exactly what aten's ``F.linear`` (+ ``F.gelu``)
    computes. Switched on (``set_fused_kernels``), inference on CPU in fp32/bf16 uses oneDNN's linear with
    the bias, the tanh-GELU or a residual addition fused into the GEMM: the same math, rounded differently
    (about 1e-6 relative in fp32), and no bias broadcast copy or extra pass over the activations. On CPUs without
    AVX-512 the fp32 GELU is one in-place pass after the GEMM instead, which is faster there (``separate_gelu``).
    The weight is then kept a second time in oneDNN's blocked layout (built on first use, rebuilt when it changes).
    Training, autocast, ``torch.compile`` (inductor fuses by itself), meta and CUDA tensors take the aten path.
    """

    fused: bool = False

    def forward(
        self, x: torch.Tensor, activation: str | None = None, residual: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``act(x W^T + b)`` with ``activation`` None or ``"gelu_tanh"``, plus ``residual`` if given (after)."""
        if self.fused and fusable(x, self.weight, residual):
            w = self._packed_weight(x.numel() // x.shape[-1])
            if activation is not None:
                if x.dtype == torch.float32 and separate_gelu():
                    y = torch.ops.mkldnn._linear_pointwise(x, w, self.bias, "none", [], "")
                    y = gelu_tanh_(y)  # a fresh output and no autograd: in place is safe
                else:
                    y = torch.ops.mkldnn._linear_pointwise(x, w, self.bias, "gelu", [], "tanh")
                return y if residual is None else y + residual
            if residual is not None:
                return torch.ops.mkldnn._linear_pointwise.binary(x, residual, w, self.bias, "add")
            return torch.ops.mkldnn._linear_pointwise(x, w, self.bias, "none", [], "")
        y = F.linear(x, self.weight, self.bias)
        if activation is not None:
            y = F.gelu(y, approximate="tanh")
        return y if residual is None else residual + y

    def _packed_weight(self, rows: int) -> torch.Tensor:
        """The weight in oneDNN's blocked layout (bit-identical results, no reorder per call), cached like StdConv's
        kernel: the key holds the weight's version counter, storage and dtype."""
        w = self.weight
        if not _REORDER:
            return w
        key = (w._version, w.data_ptr(), w.dtype)
        cached = self.__dict__.get("_packed")
        if cached is None or cached[0] != key:
            cached = (key, torch.ops.mkldnn._reorder_linear_weight(w.detach(), max(rows, 1)))
            self.__dict__["_packed"] = cached  # a plain attribute: never in the state dict
        return cached[1]

    def __getstate__(self) -> dict:
        return _without_caches(self, "_packed")


def _without_caches(module: nn.Module, *names: str) -> dict:
    """``__getstate__`` of a module minus its derived-weight caches (copies and pickles rebuild them)."""
    return {k: v for k, v in module.__dict__.items() if k not in names}


def set_fused_kernels(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch vitzoo's fused CPU inference kernels on or off in every module that has them; returns ``model``.

    Modules opt in with a class attribute ``fused: bool = False`` (``Linear``). Switching on is safe on any CPU:
    where oneDNN lacks the dtype (bf16 on an AVX2-only CPU, see ``onednn_linear_supports``) they compute with aten.
    """
    for m in model.modules():
        if isinstance(getattr(type(m), "fused", None), bool):
            m.fused = enabled
            if not enabled:
                m.__dict__.pop("_packed", None)  # free the blocked copy of the weight
    return model
