"""What a ViT learned in its embeddings (paper Fig. 7 left and centre).

* ``filter_components``: principal components of the RGB patch-embedding filters. The conv kernel
  (D, 3, P, P) is D samples of a 3*P*P vector; they are centred on their mean and the top right-singular
  vectors are the components, each reshaped to a (3, P, P) RGB patch.
* ``posemb_similarity``: the cosine similarity of every patch's position embedding with every other patch's
  (class-token slot excluded), as a (g, g, g, g) array: ``sim[r, c]`` is the g x g map of patch (r, c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from vitzoo.errors import VitzooError
from vitzoo.inspection._model import grid_side, require_vit

PAPER_COMPONENTS = 28  # paper Fig. 7 (left): "RGB embedding filters (first 28 principal components)"


@dataclass(frozen=True)
class FilterComponents:
    """Top principal components of the patch-embedding filters."""

    components: np.ndarray  # (k, 3, P, P) unit-norm directions, sign fixed so the largest |entry| is positive
    explained_variance_ratio: np.ndarray  # (k,) share of the filters' total variance along each component

    def rgb(self) -> np.ndarray:
        """(k, P, P, 3) images for display: each component min-max rescaled to [0, 1] on its own."""
        c = self.components.transpose(0, 2, 3, 1)
        lo = c.min(axis=(1, 2, 3), keepdims=True)
        span = c.max(axis=(1, 2, 3), keepdims=True) - lo
        return np.divide(c - lo, span, out=np.zeros_like(c), where=span > 0)


def filter_components(model: nn.Module, k: int = PAPER_COMPONENTS) -> FilterComponents:
    """The top ``k`` principal components of a plain ViT's patch-embedding filters.

    At most D - 1 (the rank of D centred filters) and 3*P*P components exist; ``k`` is capped to that.
    Hybrids are refused: their patch embedding sees ResNet features, not RGB pixels.
    """
    vit = require_vit(model, "filters")
    if vit.config.backbone is not None:
        cin = vit.patch_embed.proj.in_channels
        raise VitzooError(
            f"filters needs a plain ViT: a hybrid's patch embedding sees {cin} ResNet feature channels, not RGB"
        )
    if k < 1:
        raise VitzooError(f"the number of components must be >= 1, not {k}")
    weight = vit.patch_embed.proj.weight.detach().to("cpu", torch.float64).numpy()  # (D, 3, P, P)
    flat = weight.reshape(weight.shape[0], -1)
    flat = flat - flat.mean(axis=0)
    _, s, vt = np.linalg.svd(flat, full_matrices=False)
    k = min(k, flat.shape[0] - 1, flat.shape[1])
    vt = vt[:k]
    signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
    variance = s**2
    ratio = variance[:k] / variance.sum() if variance.sum() > 0 else np.zeros(k)
    return FilterComponents((vt * signs[:, None]).reshape(k, *weight.shape[1:]), ratio)


def cosine_similarity_grid(posemb: ArrayLike) -> np.ndarray:
    """(g*g, D) patch position embeddings, row-major -> (g, g, g, g) pairwise cosine similarities."""
    e = np.asarray(posemb, dtype=np.float64)
    g = math.isqrt(e.shape[0]) if e.ndim == 2 else 0
    if g == 0 or g * g != e.shape[0]:
        raise ValueError(f"expected (g*g, D) patch embeddings, not shape {e.shape}")
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    unit = np.divide(e, norms, out=np.zeros_like(e), where=norms > 0)
    return (unit @ unit.T).reshape(g, g, g, g)


def posemb_similarity(model: nn.Module) -> np.ndarray:
    """(g, g, g, g) cosine similarity of each patch's position embedding with every other patch's."""
    vit = require_vit(model, "posemb")
    grid_side(vit)  # a clear error for a non-square grid
    posemb = vit.pos_embed.detach().to("cpu", torch.float64)[0, vit.config.num_prefix_tokens :]
    return cosine_similarity_grid(posemb.numpy())
