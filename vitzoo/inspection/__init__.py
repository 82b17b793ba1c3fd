"""Inspecting a ViT: the analyses of the ViT paper's Figures 6 and 7, as arrays (and, separately, figures).

>>> import torch, vitzoo
>>> from vitzoo import inspection
>>> model = vitzoo.create("testing").eval()
>>> inspection.filter_components(model).components.shape  # PCA of the RGB patch-embedding filters
(9, 3, 16, 16)
>>> inspection.posemb_similarity(model).shape  # cosine similarity of every position embedding with all others
(14, 14, 14, 14)
>>> result = inspection.analyse_attention(model, torch.randn(2, 3, 224, 224))
>>> result.distance.shape, result.rollout.shape  # (layers, heads) in pixels; one rollout map per image
((1, 2), (2, 14, 14))

Nothing here prints or writes files; ``vitzoo.inspection.plots`` turns the arrays into matplotlib figures and
``vitzoo inspect`` (the CLI) saves them.
"""

from vitzoo.inspection.attention import (
    AttentionAnalysis,
    analyse_attention,
    attention_rollout,
    mean_attention_distance,
    patch_distances,
    record_attention,
    rollout_maps,
    upsample_maps,
)
from vitzoo.inspection.embeddings import (
    FilterComponents,
    cosine_similarity_grid,
    filter_components,
    posemb_similarity,
)
from vitzoo.inspection.images import Images, load_images

__all__ = [
    "AttentionAnalysis",
    "FilterComponents",
    "Images",
    "analyse_attention",
    "attention_rollout",
    "cosine_similarity_grid",
    "filter_components",
    "load_images",
    "mean_attention_distance",
    "patch_distances",
    "posemb_similarity",
    "record_attention",
    "rollout_maps",
    "upsample_maps",
]
