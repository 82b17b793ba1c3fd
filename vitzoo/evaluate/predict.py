"""What a classifier says about images: the top-k classes with their names and probabilities (``vitzoo.predict``).

>>> model = vitzoo.load("vit-b16")  # doctest: +SKIP
>>> [p.top[0].name for p in vitzoo.predict(model, ["cat.jpg", "photos/"])]  # doctest: +SKIP

Images are prepared with the checkpoint's own preprocessing (``model.preprocess``, through
``vitzoo.evaluate.data``, the one implementation ``eval`` uses too); probabilities are the softmax of the logits in
float32; names come from ``model.checkpoint.labels`` (ImageNet-1k, ImageNet-21k or a fine-tune's own). Library
code: nothing is printed, an unreadable image is a ``Prediction`` with an ``error``, progress goes to an optional
``progress(done, total)`` callback.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from vitzoo.errors import VitzooError
from vitzoo.evaluate.accuracy import Progress, RunOptions, model_num_classes, run_batches
from vitzoo.evaluate.data import Classes, ImageDataset, open_image_file
from vitzoo.zoo.checkpoint import checkpoint_of, label_of
from vitzoo.zoo.preprocess import resolve_preprocess

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif")
ImageSource = str | os.PathLike | Image.Image


@dataclass(frozen=True)
class Guess:
    """One of an image's top-k classes."""

    rank: int  # 1 = the most probable
    index: int  # class index in the head
    name: str | None  # human-readable name (None: the head's classes have no known names)
    probability: float  # softmax of the logits, float32


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image, or why it could not be read."""

    image: str  # the path as given (an in-memory image: "image[i]")
    top: tuple[Guess, ...]  # most probable first; empty when ``error`` is set
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON-able)."""
        return {"image": self.image, "top": [vars(g) for g in self.top], "error": self.error}


def expand_images(items: Sequence[str | os.PathLike]) -> list[str]:
    """Image arguments in order: a file as given, a folder's image files (recursively, sorted by path), a glob's
    matches (sorted). An argument that names nothing stays, so that it is reported as unreadable."""
    out: list[str] = []
    for item in items:
        text = os.fspath(item)
        path = Path(text).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))  # fmt: skip
            out += [str(p) for p in files] or [text]
        elif not path.exists() and glob.has_magic(text):
            out += sorted(glob.glob(str(path), recursive=True)) or [text]
        else:
            out.append(text)
    return out


def _open(source: Any) -> Image.Image:
    """An image given in memory, or read from a file (why not, as an exception ``ImageDataset`` records)."""
    if isinstance(source, Image.Image):
        return source
    path = Path(source)
    if path.is_dir():
        raise ValueError("a folder holding no image files")
    if not path.exists():
        raise FileNotFoundError("matches no file" if glob.has_magic(str(source)) else "no such file")
    return open_image_file(str(path))


def check_classifier(model: nn.Module) -> int:
    """The classes of ``model``'s head; a one-line error for a model that classifies nothing."""
    name, checkpoint = label_of(model), checkpoint_of(model)
    if checkpoint is not None and checkpoint.zero_head:
        raise VitzooError(f"{name} has no classifier: its authors zeroed the head (the 2020 ImageNet-21k upstreams), "
                          "so every image gets the same answer; use a fine-tuned tag or one with a valid head "
                          "(see `vitzoo info`), or its features (`vitzoo fewshot`)")  # fmt: skip
    n = model_num_classes(model)
    if n == 0:
        raise VitzooError(f"{name} has no classification head (num_classes=0): it returns features, not classes")
    return n


def predict(
    model: nn.Module,
    images: ImageSource | Sequence[ImageSource],
    top_k: int = 5,
    *,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> list[Prediction]:
    """The ``top_k`` most probable classes (at most the head's classes) of each image, in input order.

    ``images``: image files, folders (their image files), glob patterns, or PIL images, alone or in a list.
    Preprocessing is the model's own (``model.preprocess``; a model without one: its family's default), in the
    model's device and dtype. An image that cannot be read gets a ``Prediction`` with ``error`` set and no classes.
    """
    classes = check_classifier(model)
    if top_k < 1:
        raise VitzooError(f"top_k must be at least 1, not {top_k}")
    items = [images] if isinstance(images, (str, os.PathLike, Image.Image)) else list(images)
    sources: list[Any] = []
    keys: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, Image.Image):
            sources.append(item)
            keys.append(f"image[{i}]")
        else:
            paths = expand_images([item])
            sources += paths
            keys += paths
    if not sources:
        raise VitzooError("no images given")
    checkpoint = checkpoint_of(model)
    names = checkpoint.labels if checkpoint is not None else None
    data = ImageDataset(sources, keys, [0] * len(sources), Classes(()), "images", reader=_open)
    k = min(top_k, classes)
    results: dict[int, Prediction] = {}
    for logits, batch in run_batches(model, resolve_preprocess(model), data, model, RunOptions(batch_size), progress):
        for i, reason in batch.failures:
            results[i] = Prediction(keys[i], (), reason)
        if not len(batch.indices):
            continue
        probs, top = torch.softmax(logits, dim=-1).topk(k, dim=-1)
        for row, i in enumerate(batch.indices.tolist()):
            ranked = enumerate(zip(top[row].tolist(), probs[row].tolist(), strict=True), 1)
            guesses = tuple(Guess(r, c, None if names is None else names[c], p) for r, (c, p) in ranked)
            results[i] = Prediction(keys[i], guesses)
    return [results[i] for i in range(len(sources))]
