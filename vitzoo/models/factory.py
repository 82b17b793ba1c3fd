"""Name -> model: the architecture a registry name stands for, built with random weights."""

from __future__ import annotations

from torch import nn

from vitzoo.models import build_model
from vitzoo.zoo.lookup import resolve_config
from vitzoo.zoo.preprocess import tag_preprocess
from vitzoo.zoo.provenance import LoadedCheckpoint, attach, head_labels


def create(
    name: str, *, num_classes: int | None = None, img_size: int | None = None, dynamic_img_size: bool = False
) -> nn.Module:
    """A randomly initialised model: the architecture ``load(name)`` returns, without its weights.

    ``name`` is ``arch`` or ``arch.tag``; resolution and classes default to those of the (default) tag.
    Honours the current default device, so ``with torch.device("meta"): create(...)`` allocates nothing. Like a
    loaded model it carries ``name`` and the tag's evaluation preprocessing at its resolution (``preprocess``,
    ``preprocess_source``), all in ``model.checkpoint`` with the head's label space and class names.
    ``dynamic_img_size=True``: ``forward`` takes any H x W the model's stride divides (position embedding resampled
    as ``load(img_size=...)`` does; see ``VisionTransformer``).
    """
    spec, weights, config = resolve_config(name, num_classes=num_classes, img_size=img_size)
    model = build_model(config, spec.name, dynamic_img_size=dynamic_img_size)  # checks the memory first
    name = spec.name if weights is None else f"{spec.name}.{weights.tag}"
    space, labels = head_labels(config.num_classes)  # random weights: a head of 1000 classes still means ImageNet-1k
    return attach(model, LoadedCheckpoint(name, *tag_preprocess(config, weights, name), None, space, labels))
