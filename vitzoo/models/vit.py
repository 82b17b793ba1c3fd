"""Vision Transformer (Dosovitskiy et al., ICLR 2021), numerically faithful to vit_jax ``models_vit.py``.

Two details of the original differ from most PyTorch ports and are kept here: GELU is the tanh
approximation (``flax.linen.gelu``) and every LayerNorm uses eps 1e-6 (the Flax default).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vitzoo.models.hybrid import HybridBackbone
from vitzoo.models.layers import Linear, run_blocks, set_grad_checkpointing
from vitzoo.zoo.configs import ViTConfig

LN_EPS = 1e-6  # flax.linen.LayerNorm default


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
        self.qkv = Linear(dim, 3 * dim)  # rows: [q; k; v], each head-major
        self.proj = Linear(dim, dim)
        self.saved_probs: list[torch.Tensor] | None = None  # not a buffer: never in the state dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        # (B, N, 3D) -> (B, N, 3, H, hd) -> (3, B, H, N, hd)
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        attend = F.scaled_dot_product_attention if self.saved_probs is None else self._explicit_attention
        x = attend(q, k, v)  # (B, H, N, hd)
        return self.proj(x.transpose(1, 2).reshape(B, N, D))  # heads concatenated head-major

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
        self.fc1 = Linear(dim, hidden)
        self.fc2 = Linear(hidden, dim)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``fc2(gelu(fc1(x)))``, plus ``residual`` if given (one fused kernel each with fused kernels on)."""
        return self.fc2(self.fc1(x, activation="gelu_tanh"), residual=residual)


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
        return self.mlp(self.norm2(x), residual=x)  # x + MLP(LN(x)), the addition fused into fc2 when enabled


class PatchEmbed(nn.Module):
    """(Hybrid ResNet, then) a PxP stride-P conv: (B, 3, H, W) -> (B, N, D), row-major patch order."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.backbone = None if config.backbone is None else HybridBackbone(config.backbone)
        cin = 3 if config.backbone is None else config.backbone.out_channels
        self.proj = nn.Conv2d(cin, config.width, config.patch_size, stride=config.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.backbone is not None:
            x = self.backbone(x)
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, h*w, D)


class PreLogits(nn.Module):
    """The representation layer of the ImageNet-21k checkpoints: Dense + tanh."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(x))


class VisionTransformer(nn.Module):
    """ViT and hybrid ViT. ``forward`` maps (B, 3, S, S) images to (B, C) logits, or features if C = 0."""

    grad_checkpointing: bool = False  # recompute each block's activations in backward

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
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
        x = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        if x.shape[1] != self.pos_embed.shape[1]:
            raise ValueError(
                f"input gives {x.shape[1]} tokens but the model was built for {self.pos_embed.shape[1]} "
                f"(img_size={self.config.img_size}); rebuild or load with img_size=..."
            )
        x = run_blocks(self.blocks, x + self.pos_embed.to(x.dtype), self.grad_checkpointing)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool the tokens (class token or mean), apply the representation layer and the head."""
        x = x[:, 0] if self.config.classifier == "token" else x.mean(dim=1)
        x = self.pre_logits(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def set_grad_checkpointing(self, enabled: bool = True) -> VisionTransformer:
        """Checkpoint every transformer block (and hybrid ResNet stage) in training; returns the model."""
        return set_grad_checkpointing(self, enabled)


def resize_pos_embed(
    posemb: torch.Tensor, new_grid: int, num_prefix_tokens: int, mode: Literal["bilinear", "bicubic"] = "bilinear"
) -> torch.Tensor:
    """Resample a (1, prefix + g*g, D) position embedding to a new_grid x new_grid grid.

    ``bilinear`` is what vit_jax does (``scipy.ndimage.zoom(order=1)``: linear, corners aligned);
    ``bicubic`` (corners aligned too) is offered as an option. The class-token slot is kept apart.
    """
    prefix, grid = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
    old = math.isqrt(grid.shape[1])
    if old * old != grid.shape[1]:
        raise ValueError(f"position embedding has {grid.shape[1]} patch slots, not a square grid")
    if old == new_grid:
        return posemb
    D = grid.shape[-1]
    grid = grid.reshape(1, old, old, D).permute(0, 3, 1, 2)  # (1, D, g, g)
    compute = torch.promote_types(posemb.dtype, torch.float32)  # never interpolate in half precision
    grid = F.interpolate(grid.to(compute), size=(new_grid, new_grid), mode=mode, align_corners=True)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, D).to(posemb.dtype)
    return torch.cat([prefix, grid], dim=1)
