"""Vision Transformer (Dosovitskiy et al., ICLR 2021), numerically faithful to vit_jax ``models_vit.py``.

Two details of the original differ from most PyTorch ports and are kept here: GELU is the tanh
approximation (``flax.linen.gelu``) and every LayerNorm uses eps 1e-6 (the Flax default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vitzoo.models.checkpointed import CarriesCheckpoint
from vitzoo.models.features import OutputFormat, check_output_format, take_indices
from vitzoo.models.hybrid import HybridBackbone
from vitzoo.models.layers import _compiling, _without_caches, run_blocks, set_grad_checkpointing
from vitzoo.zoo.configs import ViTConfig

LN_EPS = 1e-6  # flax.linen.LayerNorm default
POSEMB_CACHE_SIZE = 8  # resampled position embeddings kept per model (grid sizes), oldest dropped first


def split_heads(qkv: torch.Tensor, num_heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k and v, each (B, H, N, hd), as views of a qkv projection's output (B, N, 3·H·hd) whose rows are
    [q; k; v], each head-major."""
    B, N, width = qkv.shape
    return qkv.view(B, N, 3, num_heads, width // (3 * num_heads)).permute(2, 0, 3, 1, 4).unbind(0)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, N, hd) -> (B, N, H·hd): the heads concatenated head-major, as the output projection reads them."""
    B, H, N, hd = x.shape
    return x.transpose(1, 2).reshape(B, N, H * hd)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection, computed by SDPA.

    For inspection (``vitzoo.inspection.record_attention``) ``saved_probs`` can be set to a list: the softmax
    is then computed explicitly (equal to SDPA up to rounding) and every forward appends its (B, H, N, N)
    attention probabilities (float32, or float64 for a float64 model) to that list. Left at None (the default)
    the forward is SDPA alone.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)  # rows: [q; k; v], each head-major
        self.proj = nn.Linear(dim, dim)
        self.saved_probs: list[torch.Tensor] | None = None  # not a buffer: never in the state dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = split_heads(self.qkv(x), self.num_heads)
        return self.proj(merge_heads(self._attend(q, k, v)))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(q kᵀ / sqrt(hd)) v over (B, H, N, hd): SDPA, or explicit while ``saved_probs`` records."""
        if self.saved_probs is None:
            return F.scaled_dot_product_attention(q, k, v)
        return self._explicit_attention(q, k, v)

    def _explicit_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """What SDPA computes, softmax(q kᵀ / sqrt(hd)) v, keeping the probabilities in ``saved_probs``."""
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, H, N, N)
        probs = scores.softmax(dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32))
        self.saved_probs.append(probs)
        return probs.to(v.dtype) @ v


class Mlp(nn.Module):
    """Dense -> GELU (tanh approximation, as flax.linen.gelu) -> Dense."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-LN encoder block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.width, eps=LN_EPS)
        self.attn = Attention(config.width, config.num_heads)
        self.norm2 = nn.LayerNorm(config.width, eps=LN_EPS)
        self.mlp = Mlp(config.width, config.mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """(Hybrid ResNet, then) a PxP stride-P conv: (B, 3, H, W) -> (B, N, D), row-major patch order."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.backbone = None if config.backbone is None else HybridBackbone(config.backbone)
        cin = 3 if config.backbone is None else config.backbone.out_channels
        self.proj = nn.Conv2d(cin, config.width, config.patch_size, stride=config.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grid(x).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, h*w, D)

    def grid(self, x: torch.Tensor) -> torch.Tensor:
        """The patch embeddings as a (B, D, h, w) map."""
        if self.backbone is not None:
            x = self.backbone(x)
        return self.proj(x)


class PreLogits(nn.Module):
    """The representation layer of the ImageNet-21k checkpoints: Dense + tanh."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(x))


class VisionTransformer(CarriesCheckpoint, nn.Module):
    """ViT and hybrid ViT. ``forward`` maps (B, 3, S, S) images to (B, C) logits, or features if C = 0.

    ``dynamic_img_size`` (an attribute, as timm names it; set it at build time or later): ``forward`` takes any
    H x W that ``config.stride`` (the patch size, times a hybrid's ResNet stride) divides, the position embedding
    resampled to the token grid with ``posemb_interp`` (vit_jax's corner-aligned linear by default: the method
    ``vitzoo.load(img_size=...)`` uses), so the output equals that of the model loaded at that size. Each grid's
    embedding is kept (``POSEMB_CACHE_SIZE`` grids) until the parameter changes; while it takes gradients, and in
    compiled or exported graphs, it is resampled on every call.
    """

    grad_checkpointing: bool = False  # recompute each block's activations in backward

    def __init__(
        self,
        config: ViTConfig,
        *,
        dynamic_img_size: bool = False,
        posemb_interp: Literal["bilinear", "bicubic"] = "bilinear",
    ) -> None:
        super().__init__()
        self.config = config
        self.dynamic_img_size = dynamic_img_size
        self.posemb_interp = posemb_interp
        D = config.width
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D)) if config.classifier == "token" else None
        self.pos_embed = nn.Parameter(torch.empty(1, config.seq_len, D))
        self.blocks = nn.Sequential(*(Block(config) for _ in range(config.depth)))
        self.norm = nn.LayerNorm(D, eps=LN_EPS)  # applied to all tokens, before pooling
        rep = config.representation_size
        self.pre_logits = PreLogits(D, rep) if rep else nn.Identity()
        self.head = nn.Linear(config.num_features, config.num_classes) if config.num_classes else nn.Identity()
        self.reset_parameters()

    @property
    def num_features(self) -> int:
        """Size of the pre-logit feature vector."""
        return self.config.num_features

    def reset_parameters(self) -> None:
        """The original initialisation: xavier-uniform dense kernels, N(0, 0.02) posemb, zero head."""
        nn.init.normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)
        if isinstance(self.head, nn.Linear):
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens after the final LayerNorm: (B, T, D)."""
        return self.norm(run_blocks(self.blocks, self.embed(x), self.grad_checkpointing))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """What the first block sees: patch embeddings, the class token, plus the position embedding: (B, T, D)."""
        if not self.dynamic_img_size:
            x = self.patch_embed(x)
            pos = self.pos_embed
        else:
            pos = self.pos_embed_for(x.shape[-2:])
            x = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        if x.shape[1] != pos.shape[1]:
            raise ValueError(
                f"input gives {x.shape[1]} tokens but the model was built for {pos.shape[1]} "
                f"(img_size={self.config.img_size}); rebuild or load with img_size=..., or dynamic_img_size=True"
            )
        return x + pos.to(x.dtype)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool the tokens (class token or mean), apply the representation layer and the head."""
        x = x[:, 0] if self.config.classifier == "token" else x.mean(dim=1)
        x = self.pre_logits(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def pos_embed_for(self, size: Sequence[int]) -> torch.Tensor:
        """The position embedding for an H x W input (``size``): (1, prefix + h*w, D), resampled as at load time.

        ValueError if ``config.stride`` does not divide H and W. The model's own grid gives ``pos_embed`` itself;
        another grid's resampled embedding is cached (keyed by the parameter's version counter, storage, dtype and
        device, so an update, ``load_state_dict`` or ``.to()`` is never served a stale one), except while the
        parameter takes gradients and in compiled or exported graphs, where it is resampled on every call.
        """
        H, W = size[0], size[1]
        s = self.config.stride
        if H % s or W % s:
            raise ValueError(
                f"input {H}x{W} is not divisible by the model's stride {s} "
                f"({'hybrid ResNet stride x patch size' if self.config.backbone is not None else 'the patch size'})"
            )
        grid = (H // s, W // s)
        p = self.pos_embed
        if _compiling() or _exporting() or torch.jit.is_tracing():
            return _resample_grid(p, grid, self.config.num_prefix_tokens, self.posemb_interp)  # no shape branches
        if grid == (self.config.grid_size,) * 2:
            return p
        if (torch.is_grad_enabled() and p.requires_grad) or p.is_meta or p.is_inference():
            return resize_pos_embed(p, grid, self.config.num_prefix_tokens, self.posemb_interp)
        key = (p._version, p.data_ptr(), p.dtype, p.device)
        cache = self.__dict__.get("_posemb_cache")
        if cache is None or cache[0] != key:
            cache = (key, {})
            self.__dict__["_posemb_cache"] = cache  # a plain attribute: never in the state dict
        table = cache[1]
        if grid not in table:
            if len(table) >= POSEMB_CACHE_SIZE:
                del table[next(iter(table))]
            with torch.inference_mode(False), torch.no_grad():  # a normal tensor, usable by any later pass
                table[grid] = resize_pos_embed(p, grid, self.config.num_prefix_tokens, self.posemb_interp)
        return table[grid]

    def __getstate__(self) -> dict:
        return _without_caches(self, "_posemb_cache")

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: OutputFormat = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The outputs of the encoder blocks ``indices`` names, as timm's ``forward_intermediates``.

        Args:
            x: (B, 3, H, W) images.
            indices: None: every block; an int n: the last n; a list: those blocks (negative from the end). They
                come back in block order, one per block.
            return_prefix_tokens: each intermediate is a (patch tokens, class token (B, 1, D)) pair (models with a
                class token).
            norm: pass each intermediate through the final LayerNorm (as the last block's output is in
                ``forward_features``).
            stop_early: run no block after the last one asked for (the "final features" are then that block's).
            output_fmt: "NCHW": patch tokens as a (B, D, h, w) map; "NLC": (B, h*w, D). The class token is never
                in them.
            intermediates_only: return only the list.

        Returns ``(final_features, intermediates)``, final features as ``forward_features`` gives them (B, T, D),
        or the list of intermediates alone.
        """
        check_output_format(output_fmt)
        taken, last = take_indices(len(self.blocks), indices)
        H, W = x.shape[-2:]
        x = self.embed(x)
        out = []
        for i, block in enumerate(self.blocks[: last + 1] if stop_early else self.blocks):
            x = block(x)
            if i in taken:
                out.append(self.norm(x) if norm else x)
        prefix = self.config.num_prefix_tokens
        prefixes, out = [y[:, :prefix] for y in out], [y[:, prefix:] for y in out]
        if output_fmt == "NCHW":
            s = self.config.stride if self.dynamic_img_size else None
            h, w = (H // s, W // s) if s else (self.config.grid_size,) * 2
            out = [y.reshape(y.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous() for y in out]
        if return_prefix_tokens and prefix:
            out = list(zip(out, prefixes, strict=True))
        return out if intermediates_only else (self.norm(x), out)

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the blocks after the last of ``indices`` (as timm), the final LayerNorm (``prune_norm``), and the
        representation layer and head (``prune_head``: ``forward`` then gives the pooled features). ``config``
        follows (depth, no head), so the closed-form counts are the model's (less a pruned norm's 2 x width).
        Returns the indices kept.
        """
        taken, last = take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[: last + 1]
        self.config = self.config.replace(depth=last + 1)
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.pre_logits, self.head = nn.Identity(), nn.Identity()
            self.config = self.config.replace(num_classes=0, representation_size=None)
        return taken

    def set_grad_checkpointing(self, enabled: bool = True) -> VisionTransformer:
        """Checkpoint every transformer block (and hybrid ResNet stage) in training; returns the model."""
        return set_grad_checkpointing(self, enabled)


def _exporting() -> bool:
    is_exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.5
    return is_exporting is not None and is_exporting()


def resize_pos_embed(
    posemb: torch.Tensor,
    new_grid: int | tuple[int, int],
    num_prefix_tokens: int,
    mode: Literal["bilinear", "bicubic"] = "bilinear",
) -> torch.Tensor:
    """Resample a (1, prefix + g*g, D) position embedding to a new_grid x new_grid grid (or (h, w)).

    ``bilinear`` is what vit_jax does (``scipy.ndimage.zoom(order=1)``: linear, corners aligned);
    ``bicubic`` (corners aligned too) is offered as an option. The class-token slot is kept apart.
    """
    h, w = (new_grid, new_grid) if isinstance(new_grid, int) else new_grid
    old = _old_grid(posemb, num_prefix_tokens)
    if old == h == w:
        return posemb
    return _resample_grid(posemb, (h, w), num_prefix_tokens, mode)


def _old_grid(posemb: torch.Tensor, num_prefix_tokens: int) -> int:
    slots = posemb.shape[1] - num_prefix_tokens
    old = math.isqrt(slots)
    if old * old != slots:
        raise ValueError(f"position embedding has {slots} patch slots, not a square grid")
    return old


def _resample_grid(
    posemb: torch.Tensor, new_grid: tuple[int, int], num_prefix_tokens: int, mode: Literal["bilinear", "bicubic"]
) -> torch.Tensor:
    """``resize_pos_embed`` without the shortcut for an unchanged grid (an identity there: corners aligned)."""
    old = _old_grid(posemb, num_prefix_tokens)
    prefix, grid = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
    D = grid.shape[-1]
    grid = grid.reshape(1, old, old, D).permute(0, 3, 1, 2)  # (1, D, g, g)
    compute = torch.promote_types(posemb.dtype, torch.float32)  # never interpolate in half precision
    grid = F.interpolate(grid.to(compute), size=new_grid, mode=mode, align_corners=True)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], D).to(posemb.dtype)
    return torch.cat([prefix, grid], dim=1)
