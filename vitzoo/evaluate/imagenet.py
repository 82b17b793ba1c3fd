"""The ImageNet-1k (ILSVRC 2012) classes as data: WordNet ids in the standard order.

Class index ``i`` of every ImageNet-1k classifier (the vit_jax and BiT checkpoints, timm, torchvision, TFDS
``imagenet2012``) is the position of its synset in the sorted list of the 1000 WordNet ids, which is the
order of the ``train/`` folders of the ILSVRC 2012 release: ``n01440764`` (tench) is 0, ``n15075141``
(toilet tissue) is 999.

The list is package data shared with the class names (``vitzoo.zoo.labels``, copied from timm's
``data/_info/imagenet_synsets.txt``); this module only names it for the evaluation code.
"""

from __future__ import annotations

from functools import cache

from vitzoo.zoo.labels import IMAGENET_1K, synsets

IMAGENET_SYNSETS: tuple[str, ...] = synsets(IMAGENET_1K)
"""The 1000 ImageNet-1k WordNet ids; class index = position."""

NUM_IMAGENET_CLASSES = len(IMAGENET_SYNSETS)


@cache
def synset_to_index() -> dict[str, int]:
    """WordNet id -> ImageNet-1k class index."""
    return {wnid: i for i, wnid in enumerate(IMAGENET_SYNSETS)}
