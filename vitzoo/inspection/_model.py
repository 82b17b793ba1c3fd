"""What the analyses need to know about a model: that it is a ViT, its token grid and its stride in pixels."""

from __future__ import annotations

import math

from torch import nn

from vitzoo.errors import VitzooError
from vitzoo.models import VisionTransformer


def require_vit(model: nn.Module, analysis: str) -> VisionTransformer:
    """The model itself if it is a (hybrid) ViT; anything else (a BiT ResNet) is a one-line user error."""
    if isinstance(model, VisionTransformer):
        return model
    raise VitzooError(
        f"{analysis} needs a Vision Transformer (patch tokens, position embeddings, attention); "
        f"a {type(model).__name__} has none"
    )


def grid_side(model: VisionTransformer) -> int:
    """Patches per side of the model's token grid, from its position embedding (prefix token excluded)."""
    n = model.pos_embed.shape[1] - model.config.num_prefix_tokens
    side = math.isqrt(n)
    if side * side != n:
        raise VitzooError(f"the position embedding has {n} patch slots, not a square grid")
    return side
