"""Fine-tuning as the paper transfers (§3.2, App. B.1.1): ``vitzoo.train.loop.finetune`` and its parts.

``recipe`` (what to run: the paper's defaults), ``schedule`` (warm-up + cosine learning rate, global-norm clipping,
SGD with momentum: closed forms), ``augment`` (vit_jax's inception crop and flip, seeded per image), ``batches``
(which images each step, rank and micro-batch sees), ``state`` (the atomic resume checkpoint and the fine-tuned
vitzoo file), ``loop`` (the training loop: accumulation, autocast, DDP, validation, Ctrl-C). Nothing here prints.
"""

from __future__ import annotations

from vitzoo.lazy import lazy_exports

# Public name -> defining module, imported on first use (as ``vitzoo``'s own names): importing the package
# stays cheap.
_API = {
    "train": "vitzoo.train.loop",
    "Recipe": "vitzoo.train.recipe",
    "prepare": "vitzoo.train.run",
}
__all__ = sorted([*_API])

__getattr__, __dir__ = lazy_exports(__name__, _API)
