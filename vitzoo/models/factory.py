"""Name -> model: the architecture a registry name stands for, built with random weights."""

from __future__ import annotations

from torch import nn

from vitzoo.models import build_model
from vitzoo.zoo.lookup import resolve_config
from vitzoo.zoo.preprocess import tag_preprocess


def create(name: str, *, num_classes: int | None = None, img_size: int | None = None) -> nn.Module:
    """A randomly initialised model: the architecture ``load(name)`` returns, without its weights.

    ``name`` is ``arch`` or ``arch.tag``; resolution and classes default to those of the (default) tag.
    Honours the current default device, so ``with torch.device("meta"): create(...)`` allocates nothing. Like a
    loaded model it carries ``name`` and the tag's evaluation preprocessing at its resolution (``preprocess``,
    ``preprocess_source``).
    """
    spec, weights, config = resolve_config(name, num_classes=num_classes, img_size=img_size)
    model = build_model(config, spec.name)  # checks the memory first
    model.name = spec.name if weights is None else f"{spec.name}.{weights.tag}"
    model.preprocess, model.preprocess_source = tag_preprocess(config, weights, model.name)
    return model
