"""What a model was made from, as read-only views of its one ``model.checkpoint`` (``vitzoo.zoo.checkpoint``)."""

from __future__ import annotations

from vitzoo.zoo.checkpoint import Checkpoint
from vitzoo.zoo.preprocess import Preprocess


class CarriesCheckpoint:
    """Mixin of the vitzoo networks: ``checkpoint`` (set by ``vitzoo.load``/``vitzoo.create``; None for a network
    built from a config alone) and the views of it the rest of the package reads."""

    checkpoint: Checkpoint | None = None

    @property
    def name(self) -> str | None:
        """The checkpoint's full name (``arch.tag``, or a weight file's path)."""
        return None if self.checkpoint is None else self.checkpoint.name

    @property
    def preprocess(self) -> Preprocess | None:
        """The checkpoint's evaluation preprocessing at the model's resolution."""
        return None if self.checkpoint is None else self.checkpoint.preprocess

    @property
    def preprocess_source(self) -> str | None:
        """Where ``preprocess`` comes from."""
        return None if self.checkpoint is None else self.checkpoint.preprocess_source

    @property
    def weights_sha256(self) -> str | None:
        """The sha256 of the file the weights came from (None: random weights)."""
        return None if self.checkpoint is None else self.checkpoint.weights_sha256
