"""Images from files, prepared as a checkpoint expects them (``Preprocess``), plus the crops for display.

The preparation is ``vitzoo.evaluate.data``'s (``resize_pixels`` + ``normalise``), the very one ``vitzoo eval`` uses, so
an image inspected here is the tensor the model is evaluated on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vitzoo.errors import VitzooError
from vitzoo.evaluate.data import normalise, open_image_file, resize_pixels
from vitzoo.zoo.preprocess import Preprocess


@dataclass(frozen=True)
class Images:
    """A batch of prepared images."""

    tensor: torch.Tensor  # (B, 3, S, S) float32 network input, normalised
    pixels: np.ndarray  # (B, S, S, 3) uint8: the same crops (rounded), for overlays
    names: tuple[str, ...]  # file names, for titles


def _open(path: Path) -> Image.Image:
    if path.is_dir():
        raise VitzooError(f"image {path} is a directory, not a file")
    if not path.is_file():
        raise VitzooError(f"image not found: {path}")
    try:
        return open_image_file(str(path))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # what PIL raises on bad files
        raise VitzooError(f"cannot read image {path}: {e}".splitlines()[0]) from None


def load_images(paths: Sequence[str | Path], preprocess: Preprocess) -> Images:
    """Read, crop and normalise image files; a missing or unreadable file is a one-line ``VitzooError``."""
    if not paths:
        raise VitzooError("no images given")
    crops = np.stack([resize_pixels(_open(Path(p)), preprocess) for p in paths])  # (B, S, S, 3) float in [0, 255]
    pixels = np.clip(np.rint(crops), 0, 255).astype(np.uint8)
    return Images(normalise(crops, preprocess), pixels, tuple(Path(p).name for p in paths))
