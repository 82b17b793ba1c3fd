"""The paper's training augmentation, as vit_jax's input pipeline does it, seeded per image.

vit_jax (``input_pipeline.py``, ``inception_crop=True``) takes a random crop with
``tf.image.sample_distorted_bounding_box(area_range=(0.05, 1.0), aspect_ratio_range=(0.75, 1.33),
min_object_covered=0, max_attempts=100)`` (the whole image when no attempt fits), resizes it to the training
resolution with ``tf.image.resize``, flips it left-right with probability 1/2 and maps [0, 255] to [-1, 1].
Here: the same ranges and fallback (sampled with numpy: TensorFlow's own random stream cannot be reproduced), the
resize of the checkpoint's preprocessing (``tf``: vit_jax's, else Pillow with its interpolation), the flip, and
the checkpoint's mean/std (``vitzoo.evaluate.data.normalise``).

Every random choice for an image comes from ``item_rng(seed, epoch, index)``: the same image in the same epoch is
augmented the same way whichever worker, rank, micro-batch or resumed run loads it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vitzoo.evaluate.data import ImageDataset, Item, normalise, open_image_file, tf_resize
from vitzoo.zoo.preprocess import Preprocess

AREA_RANGE = (0.05, 1.0)  # fraction of the image the crop covers
ASPECT_RANGE = (0.75, 1.33)  # crop width / height (TensorFlow's default)
MAX_ATTEMPTS = 100
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream of image ``index`` in ``epoch`` of a run seeded ``seed``."""
    return np.random.default_rng([seed, epoch, index])


def inception_crop(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(left, top, crop width, crop height): a random box covering 5-100% of the area, aspect 3:4 to 4:3."""
    area = width * height
    for _ in range(MAX_ATTEMPTS):
        target = rng.uniform(*AREA_RANGE) * area
        ratio = rng.uniform(*ASPECT_RANGE)
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    return 0, 0, width, height


def augment(image: Image.Image, pp: Preprocess, rng: np.random.Generator) -> torch.Tensor:
    """One training view of ``image``: inception crop, resize to ``pp.img_size``, random flip, normalise."""
    image = image.convert("RGB")
    left, top, w, h = inception_crop(image.width, image.height, rng)
    crop = image.crop((left, top, left + w, top + h))
    size = pp.img_size
    if pp.resize == "tf":
        pixels = tf_resize(np.asarray(crop), size)
    else:
        pixels = np.asarray(crop.resize((size, size), _RESAMPLE[pp.interpolation]), dtype=np.float32)
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    return normalise(np.ascontiguousarray(pixels), pp)


class TrainImages(Dataset):
    """The training images of an ``ImageDataset``, augmented: item ``(epoch, index)`` is image ``index`` as seen
    in ``epoch``. Unreadable files give an ``Item`` without image (``collate`` drops it), as in evaluation."""

    def __init__(self, data: ImageDataset, pp: Preprocess, seed: int) -> None:
        self.sources: Sequence[Any] = data.sources
        self.labels: Sequence[int] = data.labels
        self.reader: Callable[[Any], Image.Image] = data.reader or open_image_file
        self.pp, self.seed = pp, seed

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, key: tuple[int, int]) -> Item:
        epoch, i = key
        try:
            x = augment(self.reader(self.sources[i]), self.pp, item_rng(self.seed, epoch, i))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # what PIL raises on bad files
            return Item(None, self.labels[i], i, f"{type(e).__name__}: {e}".splitlines()[0])
        return Item(x, self.labels[i], i, None)
