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

from __future__ import annotations

from vitzoo.lazy import lazy_exports

# Public name -> defining module, imported on first use (as ``vitzoo``'s own names): importing the package
# stays cheap.
_API = {
    "AttentionAnalysis": "vitzoo.inspection.attention",
    "analyse_attention": "vitzoo.inspection.attention",
    "attention_rollout": "vitzoo.inspection.attention",
    "mean_attention_distance": "vitzoo.inspection.attention",
    "patch_distances": "vitzoo.inspection.attention",
    "record_attention": "vitzoo.inspection.attention",
    "rollout_maps": "vitzoo.inspection.attention",
    "upsample_maps": "vitzoo.inspection.attention",
    "FilterComponents": "vitzoo.inspection.embeddings",
    "cosine_similarity_grid": "vitzoo.inspection.embeddings",
    "filter_components": "vitzoo.inspection.embeddings",
    "posemb_similarity": "vitzoo.inspection.embeddings",
    "Images": "vitzoo.inspection.images",
    "load_images": "vitzoo.inspection.images",
}
__all__ = sorted([*_API])

__getattr__, __dir__ = lazy_exports(__name__, _API)
