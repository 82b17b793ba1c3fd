"""Images from files, prepared as a checkpoint expects them (``Preprocess``), plus the crops for display.

A small Pillow-only helper: resize (squash, or shorter side to img_size / crop_pct and centre crop), scale
to [0, 1], normalise with the checkpoint's mean and std.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vitzoo.errors import VitzooError
from vitzoo.registry import Preprocess

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class Images:
    """A batch of prepared images."""

    tensor: torch.Tensor  # (B, 3, S, S) float32 network input, normalised
    pixels: np.ndarray  # (B, S, S, 3) uint8: the same crops, for overlays
    names: tuple[str, ...]  # file names, for titles


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise VitzooError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise VitzooError(f"cannot read image {path}: {e}") from None


def _crop(img: Image.Image, pp: Preprocess) -> Image.Image:
    size, resample = pp.img_size, _RESAMPLE[pp.interpolation]
    if pp.resize == "squash":
        return img.resize((size, size), resample)
    short = round(size / pp.crop_pct)
    w, h = img.size
    scale = short / min(w, h)
    img = img.resize((max(short, round(w * scale)), max(short, round(h * scale))), resample)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return img.crop((left, top, left + size, top + size))


def load_images(paths: Sequence[str | Path], preprocess: Preprocess) -> Images:
    """Read, crop and normalise image files; a missing or unreadable file is a one-line ``VitzooError``."""
    if not paths:
        raise VitzooError("no images given")
    pixels = np.stack([np.asarray(_crop(_open(Path(p)), preprocess)) for p in paths])  # (B, S, S, 3)
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std).view(1, 3, 1, 1)
    return Images((x - mean) / std, pixels, tuple(Path(p).name for p in paths))
