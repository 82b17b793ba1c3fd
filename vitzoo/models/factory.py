"""Name -> model: the architecture a registry name stands for, built with random weights."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from vitzoo.models import build_model
from vitzoo.zoo.checkpoint import attach, head_labels
from vitzoo.zoo.lookup import refuse_file, resolve_one


def create(
    name: str, *, num_classes: int | None = None, img_size: int | None = None, dynamic_img_size: bool = False
) -> nn.Module:
    """A randomly initialised model: the architecture ``load(name)`` returns, without its weights.

    ``name`` is ``arch`` or ``arch.tag`` (resolved once, as ``load`` does: a weight file is refused with one line,
    as it has weights); resolution and classes default to those of the (default) tag.
    Honours the current default device, so ``with torch.device("meta"): create(...)`` allocates nothing. Like a
    loaded model it carries ``model.checkpoint``: the tag's name, evaluation preprocessing at its resolution,
    sources and accuracies, with the head's label space and class names (no ``weights_sha256``: random weights).
    ``dynamic_img_size=True``: ``forward`` takes any H x W the model's stride divides (position embedding resampled
    as ``load(img_size=...)`` does; see ``VisionTransformer``).
    """
    checkpoint = refuse_file(resolve_one(name, num_classes=num_classes, img_size=img_size), "vitzoo.create")
    config = checkpoint.config
    model = build_model(config, checkpoint.arch, dynamic_img_size=dynamic_img_size)  # checks the memory first
    space, labels = head_labels(config.num_classes)  # random weights: a head of 1000 classes still means ImageNet-1k
    return attach(model, replace(checkpoint, label_space=space, labels=labels, zero_head=False))
