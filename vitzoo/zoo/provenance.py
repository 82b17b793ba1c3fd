"""What a built model was made from, as one frozen value: ``model.checkpoint`` (no torch).

``vitzoo.load`` and ``vitzoo.create`` attach a ``LoadedCheckpoint`` to the model they return: its name, the
evaluation preprocessing and where that comes from, the sha256 of the weight file, and what its head's classes
are (label space and names). The older loose attributes (``model.name``, ``model.preprocess``,
``model.preprocess_source``, ``model.weights_sha256``) keep the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vitzoo.zoo.labels import CUSTOM, names_for, space_for
from vitzoo.zoo.preprocess import Preprocess


@dataclass(frozen=True)
class LoadedCheckpoint:
    """The provenance and label space of a loaded (or created) model."""

    name: str  # arch.tag, or the weight file's path
    preprocess: Preprocess  # how its evaluation images are prepared, at the model's resolution
    preprocess_source: str  # where that comes from (the registry tag, the tag a file names, a family default)
    weights_sha256: str | None = None  # of the file the weights came from; None: random weights (create)
    label_space: str | None = None  # "imagenet-1k", "imagenet-21k", "custom" (names stored in the file) or None
    labels: tuple[str, ...] | None = None  # the name of every class of the head; None: no head or no known names
    zero_head: bool = False  # the head is all zeros (the 2020 ImageNet-21k upstreams): it classifies nothing

    def __repr__(self) -> str:  # 21,843 names would drown the rest
        labels = None if self.labels is None else f"<{len(self.labels)} names>"
        return (f"LoadedCheckpoint(name={self.name!r}, label_space={self.label_space!r}, labels={labels}, "
                f"weights_sha256={self.weights_sha256!r}, preprocess={self.preprocess!r}, "
                f"preprocess_source={self.preprocess_source!r}, zero_head={self.zero_head})")  # fmt: skip


def head_labels(
    num_classes: int, *, zero_head: bool = False, stored: tuple[str, ...] | None = None
) -> tuple[str | None, tuple[str, ...] | None]:
    """(label space, class names) of a head of ``num_classes``: the names a file stores (``custom``) when they fit,
    else the shipped space of that size; (None, None) for no head, a zeroed one, or a size without known names."""
    if zero_head or not num_classes:
        return None, None
    if stored is not None and len(stored) == num_classes:
        return CUSTOM, tuple(stored)
    space = space_for(num_classes)
    return space, names_for(space)


def attach(model: Any, checkpoint: LoadedCheckpoint) -> Any:
    """Set ``model.checkpoint`` and the loose attributes that mirror it; returns ``model``."""
    model.checkpoint = checkpoint
    model.name = checkpoint.name
    model.preprocess, model.preprocess_source = checkpoint.preprocess, checkpoint.preprocess_source
    model.weights_sha256 = checkpoint.weights_sha256
    return model
