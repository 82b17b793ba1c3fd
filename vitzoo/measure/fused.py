"""vitzoo's fused CPU inference kernels: an explicit transformation of a ViT, off unless applied.

``set_fused_kernels(model)`` (also ``fuse_for_cpu``) changes the class of every ViT encoder ``Block``, its ``Mlp``
and its four dense layers (qkv, attention output, fc1, fc2) to a subclass whose forward runs each dense layer as one
oneDNN GEMM with the bias, the tanh-GELU of the MLP (fc1) or the block's residual addition (fc2) fused in, its
``Attention`` to one that computes attention with vitzoo's native AVX-512 kernel (``native_attention``), or in bf16
as two batched GEMMs (``matmul_attention``) where that kernel does not run, and a plain ViT's patch embedding to one
GEMM over the image's patches (``FusedPatchEmbed``); the parameters, buffers and state-dict keys are the same
objects, so loading, saving and converting are unaffected. ``set_fused_kernels(model, False)`` (or ``unfuse``) turns
the modules back into the reference classes and frees the weight copies kept in oneDNN's blocked layout. ``vitzoo
bench`` applies it to the models it measures (unless ``--aten``); a user can apply it to any vitzoo ViT.

Every call checks whether oneDNN may run there: CPU fp32/bf16 inference, eager, no autocast, and a CPU whose
oneDNN runs the dtype (``onednn_linear_supports``); anything else (training, autocast, ``torch.compile`` (Inductor
fuses by itself), export, meta or CUDA tensors, a torch without mkldnn) computes exactly what the reference model
computes, with the same aten calls. The fused result is the same math rounded differently (about 1e-6 relative in
fp32). This module is the only one in vitzoo that calls PyTorch's private oneDNN ops.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
import torch.utils._python_dispatch
from torch import nn

from vitzoo import settings
from vitzoo.machine import cpu_flags
from vitzoo.measure import native_attention
from vitzoo.models.vit import Attention, Block, Mlp, PatchEmbed

__all__ = ["MatmulAttention", "NativeAttention", "attention_kernel", "attention_kernel_of", "bf16_attention_as_gemms",
           "fuse_for_cpu", "fused_modules", "gelu_tanh_", "matmul_attention", "onednn_linear_supports",
           "separate_gelu", "set_fused_kernels", "unfuse"]  # fmt: skip


def _onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


_ONEDNN = _onednn_linear_available()
_REORDER = _ONEDNN and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


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

    Without AVX-512 (16 vector registers) oneDNN's fp32 brgemm with the GELU post-op runs the MLP's first GEMM
    slower than the GEMM plus a separate in-place pass (measured: benchmarks/results/gelu-epilogue-*.md); with
    AVX-512 (32 registers) the post-op is kept: it is expected to be cheap there. The pass is ``gelu_tanh_``.
    """
    if forced := settings.choice("VITZOO_GELU_EPILOGUE"):
        return forced == "separate"
    flags = cpu_flags()
    return flags is not None and "avx2" in flags and "avx512f" not in flags


_GELU_2C = 2 * math.sqrt(2 / math.pi)


def gelu_tanh_(y: torch.Tensor) -> torch.Tensor:
    """The tanh-GELU of ``y``, in place: ``y * sigmoid(2c (y + 0.044715 y^3))`` with ``c = sqrt(2/pi)``, which is
    ``0.5 y (1 + tanh(c (y + 0.044715 y^3)))`` exactly, since ``1 + tanh(u) = 2 sigmoid(2u)``.

    Four cheap vector passes (and one temporary the size of ``y``) instead of aten's accurate tanh, which is the
    slower of the two on AVX2 (benchmarks/results/gelu-epilogue-*.md); as accurate against float64 as aten's
    within a factor of two (tested).
    """
    t = torch.addcmul(y.new_tensor(_GELU_2C), y, y, value=_GELU_2C * 0.044715)
    torch.sigmoid_(t.mul_(y))
    return y.mul_(t)


def _cpu_autocast() -> bool:
    return torch.is_autocast_enabled("cpu")


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
        and not torch.compiler.is_compiling()
        and not torch.compiler.is_exporting()
        and not torch.jit.is_tracing()
        and onednn_linear_supports(x.dtype)
    )


class _PackedWeight:
    """Keeps a 2-D weight in oneDNN's blocked layout beside the module (built on first use, rebuilt when it changes;
    never in the state dict, nor copied or pickled)."""

    def _packed_weight(self, w: torch.Tensor, rows: int) -> torch.Tensor:
        """``w`` in oneDNN's blocked layout (bit-identical results, no reorder per call), cached: the key holds the
        weight's version counter, storage and dtype, so an update or ``.to()`` is never served a stale copy. A
        weight made under ``torch.inference_mode`` has no version counter: its key is its storage and dtype."""
        if not _REORDER:
            return w
        key = (None if w.is_inference() else w._version, w.data_ptr(), w.dtype)
        cached = self.__dict__.get("_packed")
        if cached is None or cached[0] != key:
            cached = (key, torch.ops.mkldnn._reorder_linear_weight(w.detach(), max(rows, 1)))
            self.__dict__["_packed"] = cached  # a plain attribute: never in the state dict
        return cached[1]

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_packed"}  # copies and pickles rebuild it


class FusedLinear(_PackedWeight, nn.Linear):
    """An ``nn.Linear`` (same parameters) that runs as one oneDNN kernel where ``fusable``, with an optional fused
    tanh-GELU or residual addition; elsewhere exactly ``F.linear`` (+ ``F.gelu``, + the residual).

    The weight is also kept in oneDNN's blocked layout (built on first use, rebuilt when it changes; never in the
    state dict, nor copied or pickled)."""

    reference_class = nn.Linear  # what ``unfuse`` (and ``vitzoo.exporting.deployable``) turn it back into

    def forward(
        self, x: torch.Tensor, activation: str | None = None, residual: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``act(x W^T + b)`` with ``activation`` None or ``"gelu_tanh"``, plus ``residual`` if given (after)."""
        if fusable(x, self.weight, residual):
            w = self._packed_weight(self.weight, x.numel() // x.shape[-1])
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


class FusedPatchEmbed(_PackedWeight, PatchEmbed):
    """``PatchEmbed`` of a plain ViT whose PxP stride-P convolution runs as one oneDNN GEMM over the image's patches
    (a PxP stride-P convolution is exactly that), writing the (B, N, D) tokens directly; elsewhere exactly
    ``PatchEmbed``."""

    reference_class = PatchEmbed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        proj, P = self.proj, self.proj.kernel_size[0]
        whole = x.dim() == 4 and x.shape[-2] % P == 0 and x.shape[-1] % P == 0  # else the conv drops the rest
        plain = self.backbone is None and x.is_contiguous() and proj.weight.is_contiguous()
        if not (whole and plain and fusable(x, proj.weight)):
            return super().forward(x)
        B, C, H, W = x.shape
        h, w = H // P, W // P
        patches = x.view(B, C, h, P, w, P).permute(0, 2, 4, 1, 3, 5).reshape(B * h * w, C * P * P)
        weight = self._packed_weight(proj.weight.view(proj.out_channels, -1), B * h * w)
        return torch.ops.mkldnn._linear_pointwise(patches, weight, proj.bias, "none", [], "").view(B, h * w, -1)


class FusedMlp(Mlp):
    """``Mlp`` with the GELU fused into fc1 and an optional residual addition fused into fc2."""

    reference_class = Mlp

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc2(self.fc1(x, activation="gelu_tanh"), residual=residual)


@functools.cache
def bf16_attention_as_gemms(flags: frozenset[str] | None = None) -> bool:
    """Whether bf16 attention runs as ``matmul_attention`` rather than SDPA on this CPU (or one with ``flags``):
    where it has AVX512-BF16 but no AMX, whose SDPA flash kernel runs bf16 no faster than fp32 (measured). With AMX
    that kernel computes on the tiles, and where nothing was measured SDPA, PyTorch's own choice, stays."""
    flags = cpu_flags() if flags is None else flags
    return flags is not None and "avx512_bf16" in flags and "amx_bf16" not in flags


def matmul_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(hd)) v over (B, H, N, hd) as two batched GEMMs around a softmax (which accumulates in
    fp32 and rounds to the input's dtype). In bf16 on CPUs without AMX it is faster than SDPA's flash kernel, which
    runs bf16 no faster than fp32; in fp32 SDPA is the faster (measured: README.md, *Speed where it is deployed*)."""
    B, H, N, hd = q.shape
    q, k, v = (t.reshape(B * H, N, hd) for t in (q, k, v))
    scores = torch.baddbmm(q.new_empty(1, 1, 1), q, k.transpose(1, 2), beta=0, alpha=hd**-0.5)
    return torch.bmm(scores.softmax(dim=-1), v).view(B, H, N, hd)


def attention_kernel(dtype: torch.dtype, head_dim: int = native_attention.HEAD_DIM) -> str:
    """What fused CPU inference attends with in ``dtype`` here: ``"native"`` (vitzoo's kernel, where
    ``native_attention.runs``), ``"gemms"`` (``matmul_attention``: bf16 where ``bf16_attention_as_gemms`` and the
    native kernel does not run) or ``"sdpa"`` (PyTorch's)."""
    if native_attention.runs(dtype, head_dim):
        return "native"
    return "gemms" if dtype == torch.bfloat16 and bf16_attention_as_gemms() else "sdpa"


def attention_kernel_of(model: nn.Module, dtype: torch.dtype, fused: bool) -> str | None:
    """What ``model``'s CPU inference in ``dtype`` attends with (``attention_kernel``; ``"sdpa"`` unfused), or None
    for a model without vitzoo attention (a ResNet)."""
    attn = next((m for m in model.modules() if isinstance(m, Attention)), None)
    if attn is None:
        return None
    return attention_kernel(dtype, attn.qkv.in_features // attn.num_heads) if fused else "sdpa"


class FusedAttention(Attention):
    """``Attention`` whose CPU inference runs the ``attention_kernel`` of its dtype: vitzoo's native kernel between
    its two projections, or bf16 ``matmul_attention`` (oneDNN's batched GEMMs) instead of SDPA; elsewhere
    (training, autocast, compile, export, inspection's ``saved_probs``) exactly ``Attention``."""

    reference_class = Attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._kernel(x, x.shape[-1] // self.num_heads) == "native":
            return self.proj(native_attention.attention(self.qkv(x), self.num_heads))
        return super().forward(x)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self._kernel(q, q.shape[-1]) == "gemms":
            return matmul_attention(q, k, v)
        return super()._attend(q, k, v)

    def _kernel(self, x: torch.Tensor, head_dim: int) -> str:
        fast = self.saved_probs is None and fusable(x, self.qkv.weight)
        return attention_kernel(x.dtype, head_dim) if fast else "sdpa"


class MatmulAttention(Attention):
    """``Attention`` that always runs ``matmul_attention`` (unless ``saved_probs`` records): what the int8 graphs
    export, so that under bf16 autocast their attention is bf16 GEMMs rather than SDPA's slower bf16 kernel."""

    reference_class = Attention

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return matmul_attention(q, k, v) if self.saved_probs is None else super()._attend(q, k, v)


class NativeAttention(Attention):
    """``Attention`` that calls ``torch.ops.vitzoo.attention`` between its projections (unless ``saved_probs``
    records): what the int8 graphs export where the native kernel runs, so that Inductor's compiled graph calls it."""

    reference_class = Attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.saved_probs is not None:
            return super().forward(x)
        return self.proj(native_attention.attention_op(self.qkv(x), self.num_heads))


class FusedBlock(Block):
    """``Block`` whose MLP residual addition runs inside fc2's GEMM."""

    reference_class = Block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return self.mlp(self.norm2(x), residual=x)  # x + MLP(LN(x)), the addition fused into fc2


def _fusable_block(block: nn.Module) -> bool:
    """A reference ``Block`` (or a fused one) whose attention, MLP and dense layers are vitzoo's own: nothing
    replaced."""
    linears = (block.attn.qkv, block.attn.proj, block.mlp.fc1, block.mlp.fc2)
    own = type(block.attn) in (Attention, FusedAttention) and type(block.mlp) in (Mlp, FusedMlp)
    return own and all(type(m) in (nn.Linear, FusedLinear) for m in linears)


def fused_modules(model: nn.Module) -> list[nn.Module]:
    """The modules of ``model`` that currently run the fused kernels (empty for a reference model)."""
    return [m for m in model.modules() if isinstance(m, _FUSED)]


def set_fused_kernels(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch vitzoo's fused CPU inference kernels on (or off) in every ViT block of ``model``, in place; returns
    ``model``. Safe on any machine: where oneDNN lacks the dtype (bf16 on an AVX2-only CPU) or the op, the fused
    modules compute with aten. Blocks whose MLP or dense layers were replaced (quantized, LoRA, ...) are left as
    they are."""
    if not enabled:
        return unfuse(model)
    for block in [m for m in model.modules() if type(m) in (Block, FusedBlock)]:
        if not _fusable_block(block):
            continue
        block.__class__ = FusedBlock
        block.attn.__class__ = FusedAttention
        block.mlp.__class__ = FusedMlp
        for linear in (block.attn.qkv, block.attn.proj, block.mlp.fc1, block.mlp.fc2):
            linear.__class__ = FusedLinear
    for embed in [m for m in model.modules() if type(m) is PatchEmbed and m.backbone is None]:
        embed.__class__ = FusedPatchEmbed
    return model


fuse_for_cpu = set_fused_kernels


def unfuse(model: nn.Module) -> nn.Module:
    """``model`` with every fused module turned back into its reference class and the blocked weight copies freed,
    in place; returns ``model``. A model that was never fused is unchanged."""
    for m in fused_modules(model):
        m.__dict__.pop("_packed", None)
        m.__class__ = type(m).reference_class
    return model


@contextlib.contextmanager
def fused_kernels_set(model: nn.Module, enabled: bool) -> Iterator[nn.Module]:
    """``model`` with the fused kernels on or off for the duration of the block, then exactly as it was: the modules
    that were fused before are fused again, the others are reference modules with no blocked copy left behind."""
    before = {id(m) for m in fused_modules(model)}
    set_fused_kernels(model, enabled)
    try:
        yield model
    finally:
        for m in model.modules():
            if isinstance(m, _FUSED) and id(m) not in before:
                m.__dict__.pop("_packed", None)
                m.__class__ = type(m).reference_class
        if before:
            for m in model.modules():
                if id(m) in before and type(m) in _FUSED_OF:
                    m.__class__ = _FUSED_OF[type(m)]


_FUSED_OF = {nn.Linear: FusedLinear, Attention: FusedAttention, Mlp: FusedMlp, Block: FusedBlock,
             PatchEmbed: FusedPatchEmbed}
_FUSED = tuple(_FUSED_OF.values())
