"""Attention probabilities of a ViT, and what the paper computes from them.

* Mean attention distance (paper Fig. 7 right, Sec. D.7): for each query patch, the attention-weighted mean of
  the pixel distances to the key patches, averaged over query patches and images, per head and layer. The
  class token has no position in the image, so it is left out of queries and keys, and the patch-to-patch
  weights of each query are renormalised to sum to 1 (a query that puts most of its weight on the class
  token still counts as one query).
* Attention rollout (Abnar & Zuidema 2020, paper Fig. 6): per layer, the heads are averaged, the residual is
  added as ``A' = 0.5 A + 0.5 I`` and rows are renormalised; ``R = A'_L ... A'_1`` (first layer on the right),
  so ``R[i, j]`` is how much input token ``j`` flows into output token ``i``. The map of an image is the class
  token's row over the patches, or for GAP models (no class token) the mean of all rows.

The probabilities come from the model's own ``Attention`` modules (``record_attention``), not from a copy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import nn

from vitzoo.errors import VitzooError
from vitzoo.inspection._model import grid_side, require_vit
from vitzoo.models.vit import Attention

BATCH = 8  # images per forward in analyse_attention; bounds memory at ~L * BATCH * H * N^2 floats


@contextmanager
def record_attention(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Within the block, the model's attention computes its softmax explicitly and records it.

    Yields one list; each forward appends the (B, H, N, N) float32 probabilities of every layer to it, in
    layer order (clear it between forwards). The previous state of every ``Attention`` is restored on exit,
    also after an exception; outside the block the model runs SDPA as before.
    """
    modules = [m for m in require_vit(model, "recording attention").modules() if isinstance(m, Attention)]
    probs: list[torch.Tensor] = []
    previous = [m.saved_probs for m in modules]
    for m in modules:
        m.saved_probs = probs
    try:
        yield probs
    finally:
        for m, saved in zip(modules, previous, strict=True):
            m.saved_probs = saved


def patch_distances(grid_size: int) -> np.ndarray:
    """(n, n) Euclidean distances between the centres of a grid's n = g*g patches, in patches (row-major)."""
    rows, cols = np.divmod(np.arange(grid_size * grid_size), grid_size)
    return np.hypot(rows[:, None] - rows[None, :], cols[:, None] - cols[None, :])


def mean_attention_distance(
    probs: ArrayLike, grid_size: int, token_stride: float = 1.0, num_prefix_tokens: int = 0
) -> np.ndarray:
    """(..., N, N) attention probabilities -> (...) mean attention distance in pixels, over query patches.

    ``token_stride`` is the number of input pixels per token side (the patch size of a plain ViT,
    img_size / grid_size for a hybrid). Prefix (class) tokens are dropped from queries and keys and each
    query's patch-to-patch weights renormalised. Self-attention only gives 0; uniform attention gives the mean
    distance between two patches of the grid (self pairs included).
    """
    p = np.asarray(probs, dtype=np.float64)[..., num_prefix_tokens:, num_prefix_tokens:]
    n = grid_size * grid_size
    if p.shape[-2:] != (n, n):
        raise ValueError(f"attention over {p.shape[-1]} patches does not fit a {grid_size}x{grid_size} grid")
    p = p / p.sum(axis=-1, keepdims=True)
    per_query = np.einsum("...qk,qk->...q", p, patch_distances(grid_size) * token_stride)
    return per_query.mean(axis=-1)


def attention_rollout(probs: Sequence[ArrayLike]) -> np.ndarray:
    """Per-layer (B, H, N, N) attention probabilities, first layer first -> (B, N, N) rollout R = A'_L ... A'_1."""
    if not probs:
        raise ValueError("attention rollout needs at least one layer")
    rollout = None
    for layer in probs:
        a = np.asarray(layer, dtype=np.float64).mean(axis=1)  # heads averaged: (B, N, N)
        a = 0.5 * a + 0.5 * np.eye(a.shape[-1])  # the residual connection
        a = a / a.sum(axis=-1, keepdims=True)
        rollout = a if rollout is None else a @ rollout
    return rollout


def rollout_maps(rollout: ArrayLike, grid_size: int, num_prefix_tokens: int) -> np.ndarray:
    """(B, N, N) rollout -> (B, g, g): the class token's row over the patches, or (no class token) the mean row.

    Not renormalised: with a class token the patches share what the class token did not keep for itself.
    """
    r = np.asarray(rollout, dtype=np.float64)
    rows = r[:, 0] if num_prefix_tokens else r.mean(axis=1)
    return rows[:, num_prefix_tokens:].reshape(-1, grid_size, grid_size)


def upsample_maps(maps: ArrayLike, size: int) -> np.ndarray:
    """(B, g, g) maps -> (B, size, size), bilinearly upsampled and each divided by its maximum, for display.

    Not min-max scaled: a flat map (an untrained model's) stays flat instead of showing its noise as structure.
    """
    m = torch.as_tensor(np.asarray(maps, dtype=np.float64))[:, None]
    m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()
    top = m.max(axis=(1, 2), keepdims=True)
    return np.divide(m, top, out=np.zeros_like(m), where=top > 0)


@dataclass(frozen=True)
class AttentionAnalysis:
    """What ``analyse_attention`` finds over a batch of images."""

    distance: np.ndarray  # (L, H) mean attention distance in input pixels, averaged over query patches and images
    rollout: np.ndarray  # (B, g, g) attention rollout map of each image (class-token row, or mean row for GAP)
    token_stride: float  # input pixels per token side
    num_images: int
    per_image_distance: np.ndarray | None = None  # (L, B, H): the distances before the mean over images


def analyse_attention(model: nn.Module, images: torch.Tensor) -> AttentionAnalysis:
    """Mean attention distance and rollout maps of ``model`` over normalised (B, 3, S, S) ``images``.

    Runs the model in inference mode, ``BATCH`` images at a time, with the explicit-softmax attention.
    """
    vit = require_vit(model, "attention analysis")
    size = vit.config.img_size
    if images.ndim != 4 or images.shape[0] == 0 or images.shape[1:] != (3, size, size):
        raise VitzooError(f"expected images of shape (B, 3, {size}, {size}), not {tuple(images.shape)}")
    grid, prefix = grid_side(vit), vit.config.num_prefix_tokens
    stride = size / grid
    param = next(vit.parameters())
    distances, maps = [], []
    with torch.inference_mode(), record_attention(vit) as probs:
        for batch in images.split(BATCH):
            probs.clear()
            vit(batch.to(param.device, param.dtype))
            layers = [p.double().cpu().numpy() for p in probs]
            distances.append(np.stack([mean_attention_distance(p, grid, stride, prefix) for p in layers]))
            maps.append(rollout_maps(attention_rollout(layers), grid, prefix))
    per_image = np.concatenate(distances, axis=1)  # (L, B, H)
    return AttentionAnalysis(per_image.mean(axis=1), np.concatenate(maps), stride, images.shape[0], per_image)
