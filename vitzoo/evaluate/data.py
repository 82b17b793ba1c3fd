"""Evaluation data: images -> tensors exactly as a checkpoint was evaluated, and labelled image datasets.

Preprocessing follows a ``Preprocess`` (Pillow + torch, no torchvision). This module is its only
implementation: ``eval``, ``fewshot``, ``inspect`` and ``model.preprocess`` all go through ``preprocess_image``
(or ``resize_pixels`` + ``normalise``). Convert to RGB, then by ``Preprocess.resize``:

- ``tf``: straight to img_size x img_size as vit_jax evaluates (``tf.image.resize``: bilinear, half-pixel
  centres, no antialiasing, float pixels never rounded to uint8), done with ``F.interpolate``;
- ``squash``: straight to img_size x img_size with Pillow (which antialiases when shrinking; transformers' rule);
- ``shorter``: the short side to floor(img_size / crop_pct), the long side in proportion (truncated), and a
  centre crop of img_size at offsets rounded half to even (timm's / torchvision's rule).

Then [0, 255] -> [0, 1], ``(x - mean) / std``, CHW float32.

Datasets are ImageFolder trees (one folder per class; folders named by ImageNet-1k WordNet ids map to the
1000 standard indices), flat ImageNet validation folders with a label file, and Hugging Face ``datasets``.
Files that cannot be decoded are not an error: their items carry the reason, and ``collate`` drops them.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from vitzoo.errors import VitzooError
from vitzoo.evaluate.imagenet import IMAGENET_SYNSETS, NUM_IMAGENET_CLASSES, synset_to_index
from vitzoo.zoo.preprocess import Preprocess, validate_preprocess

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def resize_shape(width: int, height: int, pp: Preprocess) -> tuple[int, int]:
    """(width, height) an image is resized to before the centre crop (no crop for "tf" and "squash")."""
    if pp.resize != "shorter":
        return pp.img_size, pp.img_size
    short = math.floor(pp.img_size / pp.crop_pct)
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def tf_resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """vit_jax's ``tf.image.resize(pixels, [size, size])`` (bilinear, half-pixel centres, no antialiasing).

    ``pixels`` is (H, W, C) uint8 or float; returns (size, size, C) float32 in the input's range, unrounded.
    ``F.interpolate(align_corners=False, antialias=False)`` samples at the same half-pixel centres and clamps
    at the borders as TensorFlow's ResizeBilinear does (tests/test_data.py checks it against TensorFlow).
    """
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]
    y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return y[0].permute(1, 2, 0).numpy()


def resize_pixels(image: Image.Image, pp: Preprocess) -> np.ndarray:
    """The network's view of ``image`` before normalisation: (img_size, img_size, 3) float32 in [0, 255]."""
    image = image.convert("RGB")
    if pp.resize == "tf":
        return tf_resize(np.asarray(image), pp.img_size)
    size = resize_shape(image.width, image.height, pp)
    if size != image.size:
        image = image.resize(size, _RESAMPLE[pp.interpolation])
    if size != (pp.img_size, pp.img_size):  # centre crop, rounding as timm/torchvision do
        left = round((size[0] - pp.img_size) / 2.0)
        top = round((size[1] - pp.img_size) / 2.0)
        image = image.crop((left, top, left + pp.img_size, top + pp.img_size))
    return np.asarray(image, dtype=np.float32)


def normalise(pixels: np.ndarray, pp: Preprocess) -> torch.Tensor:
    """(..., H, W, 3) pixels in [0, 255] -> (..., 3, H, W) float32 ``(x / 255 - mean) / std``."""
    x = torch.from_numpy(np.asarray(pixels, dtype=np.float32) / 255.0).movedim(-1, -3)
    mean = torch.tensor(pp.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(pp.std, dtype=torch.float32).view(3, 1, 1)
    return ((x - mean) / std).contiguous()


def preprocess_image(image: Image.Image, pp: Preprocess) -> torch.Tensor:
    """One PIL image -> a (3, img_size, img_size) float32 tensor, normalised as the checkpoint expects."""
    return normalise(resize_pixels(image, pp), pp)


@dataclass(frozen=True)
class Classes:
    """The label space of a dataset: names by index, and whether it is ImageNet-1k's."""

    names: tuple[str, ...]
    imagenet: bool = False
    by_index: bool = False  # folders named by class index (0, 1, ...): any head with more classes can score them

    @property
    def num_classes(self) -> int:
        return len(self.names)


IMAGENET_CLASSES = Classes(IMAGENET_SYNSETS, imagenet=True)


class Item(NamedTuple):
    """One dataset item: the image tensor, or None with the reason it could not be read."""

    image: torch.Tensor | None
    label: int
    index: int
    error: str | None


class Batch(NamedTuple):
    """A collated batch of the readable items, and the (index, reason) of the others."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    failures: list[tuple[int, str]]


def collate(items: Sequence[Item]) -> Batch:
    """Stack the readable items of a batch; unreadable ones go to ``failures``."""
    good = [it for it in items if it.image is not None]
    failures = [(it.index, it.error or "unreadable") for it in items if it.image is None]
    images = torch.stack([it.image for it in good]) if good else torch.empty(0)  # type: ignore[misc]
    labels = torch.tensor([it.label for it in good], dtype=torch.long)
    return Batch(images, labels, torch.tensor([it.index for it in good], dtype=torch.long), failures)


def open_image_file(path: str) -> Image.Image:
    """Decode an image file fully (so truncated files fail here, not later)."""
    with Image.open(path) as im:
        im.load()
        return im.copy() if im.mode in ("RGB", "L") else im.convert("RGB")


class ImageDataset(Dataset):
    """Labelled images: ``sources[i]`` is read by ``reader`` and preprocessed; ``keys[i]`` names the image.

    Build one with ``image_folder``, ``flat_folder`` or ``vitzoo.evaluate.hf_datasets.hf_dataset``; attach
    preprocessing with ``with_preprocess`` (items of a dataset without it are PIL images, for inspection).
    """

    def __init__(
        self,
        sources: Sequence[Any],
        keys: Sequence[str],
        labels: Sequence[int],
        classes: Classes,
        description: str,
        reader: Callable[[Any], Image.Image] = open_image_file,
        preprocess: Preprocess | None = None,
    ) -> None:
        if not (len(sources) == len(keys) == len(labels)):
            raise ValueError("sources, keys and labels differ in length")
        self.sources, self.keys, self.labels = list(sources), list(keys), list(labels)
        self.classes, self.description, self.reader, self.preprocess = classes, description, reader, preprocess

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> Item:
        try:
            image = self.reader(self.sources[i])
            x = image if self.preprocess is None else preprocess_image(image, self.preprocess)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # what PIL raises on bad files
            return Item(None, self.labels[i], i, f"{type(e).__name__}: {e}".splitlines()[0])
        return Item(x, self.labels[i], i, None)  # type: ignore[arg-type]

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    def with_preprocess(self, pp: Preprocess) -> ImageDataset:
        """The same images, preprocessed by ``pp``."""
        return self._copy(range(len(self)), validate_preprocess(pp))

    def with_classes(self, classes: Classes) -> ImageDataset:
        """The same images and labels in a label space they fit (ImageNet-V2's folders 0..999 as ImageNet-1k's)."""
        if any(not 0 <= y < classes.num_classes for y in self.labels):
            raise VitzooError(f"{self.description}: labels outside 0..{classes.num_classes - 1}")
        copy = self._copy(range(len(self)), self.preprocess)
        copy.classes = classes
        return copy

    def subset(self, limit: int) -> ImageDataset:
        """At most ``limit`` images, evenly spaced over the dataset (so every part of it is represented)."""
        if limit <= 0:
            raise VitzooError(f"limit must be positive, not {limit}")
        if limit >= len(self):
            return self
        idx = np.linspace(0, len(self) - 1, limit).round().astype(int).tolist()
        return self._copy(idx, self.preprocess)

    def _copy(self, idx: Sequence[int], pp: Preprocess | None) -> ImageDataset:
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return ImageDataset(
            pick(self.sources), pick(self.keys), pick(self.labels), self.classes, self.description, self.reader, pp
        )


def make_loader(data: ImageDataset, batch_size: int, workers: int) -> DataLoader:
    """A DataLoader in dataset order with ``workers`` processes, yielding ``Batch``es."""
    if batch_size <= 0:
        raise VitzooError(f"batch size must be positive, not {batch_size}")
    if workers < 0:
        raise VitzooError(f"workers must be >= 0, not {workers}")
    return DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate)


def _files(root: Path) -> list[Path]:
    """Regular, non-hidden files under ``root`` (recursively, following links), sorted.

    Each real directory is walked once, so a symlink cycle (``a/loop -> ..``) ends instead of looping.
    """
    out = []
    seen = {_dir_id(root)}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            key = _dir_id(Path(dirpath, d))
            if key is not None and key not in seen:
                seen.add(key)
                keep.append(d)
        dirnames[:] = keep
        out += [Path(dirpath, f) for f in filenames if not f.startswith(".")]
    return sorted(out)


def _dir_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the directory ``path`` resolves to; None if it cannot be read."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _directory(path: str | os.PathLike) -> Path:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise VitzooError(f"{root}: not a directory" if root.exists() else f"{root}: no such directory")
    return root


def class_folders(root: Path) -> list[str]:
    """The class folder names of an ImageFolder tree (non-hidden sub-directories), sorted."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder_labels(root: Path, folders: list[str]) -> tuple[Classes, dict[str, int], str]:
    """The label space of a tree's class folders, each folder's label, and how the folders were read.

    WordNet ids of ImageNet-1k keep their standard index; folders all named by integers (ImageNet-V2's ``0`` ...
    ``999``) are labelled by their integer, never by their string order; other names are numbered in sorted order.
    A tree mixing integer names with other names is refused: no labelling of it is right.
    """
    index = synset_to_index()
    if all(f in index for f in folders):
        return IMAGENET_CLASSES, index, "ImageNet-1k synset folders"
    numbers = [f for f in folders if re.fullmatch(r"[0-9]+", f)]
    if numbers and len(numbers) < len(folders):
        other = next(f for f in folders if f not in numbers)
        raise VitzooError(
            f"{root}: class folders mix integer names ({numbers[0]!r}) and other names ({other!r}); "
            "name every class folder by its class index, or none"
        )
    if numbers:
        labels = {f: int(f) for f in folders}
        if len(set(labels.values())) < len(labels):
            same = sorted(f for f in folders if [int(g) for g in folders].count(int(f)) > 1)
            raise VitzooError(f"{root}: class folders {', '.join(same)} name the same class index")
        names = tuple(str(i) for i in range(max(labels.values()) + 1))
        return Classes(names, by_index=True), labels, f"{len(folders)} class folders named by class index"
    return Classes(tuple(folders)), {f: i for i, f in enumerate(folders)}, f"{len(folders)} class folders"


def image_folder(path: str | os.PathLike) -> ImageDataset:
    """An ImageFolder tree: ``root/CLASS/**/file``.

    When every class folder is an ImageNet-1k WordNet id (``n01440764`` ...), labels are the standard
    ImageNet-1k indices (1000 classes, even if only some folders are present). When every folder is an integer
    (``0`` ... ``999``, as ImageNet-V2 ships), that integer is the label. Otherwise classes are sorted by name.
    """
    root = _directory(path)
    folders = class_folders(root)
    if not folders:
        raise VitzooError(f"{root}: no class folders (expected ROOT/CLASS/image files)")
    classes, label_of, kind = _folder_labels(root, folders)
    sources, labels = [], []
    for folder in sorted(folders, key=lambda f: label_of[f]):
        files = _files(root / folder)
        sources += [str(f) for f in files]
        labels += [label_of[folder]] * len(files)
    if not sources:
        raise VitzooError(f"{root}: the class folders hold no files")
    keys = [Path(s).stem for s in sources]
    return ImageDataset(sources, keys, labels, classes, f"{root} ({kind})")


def _parse_label(token: str, where: str) -> int:
    index = synset_to_index()
    if token in index:
        return index[token]
    try:
        label = int(token)
    except ValueError:
        raise VitzooError(f"{where}: {token!r} is neither an ImageNet-1k WordNet id nor a class index") from None
    if not 0 <= label < NUM_IMAGENET_CLASSES:
        raise VitzooError(f"{where}: class index {label} is outside 0..{NUM_IMAGENET_CLASSES - 1}")
    return label


def _read_label_lines(labels_file: Path) -> list[list[str]]:
    try:
        text = labels_file.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise VitzooError(f"cannot read label file {labels_file}: {e}") from None
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            parts = line.split(",") if "," in line else line.split()
            rows.append([parts[0].strip()] + ([parts[1].split()[0]] if len(parts) > 1 and parts[1].split() else []))
    return rows


def flat_folder(path: str | os.PathLike, labels_file: str | os.PathLike) -> ImageDataset:
    """A flat ImageNet validation folder with a label file; labels are ImageNet-1k indices.

    Each line of the label file is ``FILE LABEL`` (or ``FILE,LABEL``; Kaggle's ``LOC_val_solution.csv`` works:
    its header is skipped and the first WordNet id of each row is taken), or just ``LABEL`` for the files of
    the folder in sorted name order. ``FILE`` is a file name with or without extension; ``LABEL`` is a WordNet
    id or a class index 0-999. Every file a ``FILE LABEL`` file names must be in the folder: a label file naming
    some that are not is refused in one line (scored as unreadable images, they would change the denominator);
    files of the folder it does not name are not evaluated.
    """
    root, lf = _directory(path), Path(labels_file).expanduser()
    if not lf.is_file():
        raise VitzooError(f"{lf}: no such label file")
    rows = _read_label_lines(lf)
    if rows and len(rows[0]) == 2 and not _is_label(rows[0][1]):
        rows = rows[1:]  # a header line
    if not rows:
        raise VitzooError(f"{lf}: no labels")
    files = [f for f in _files(root) if f.parent == root and f.resolve() != lf.resolve()]
    where = str(lf)
    if all(len(r) == 1 for r in rows):
        if len(rows) != len(files):
            raise VitzooError(f"{lf}: {len(rows)} labels for {len(files)} files in {root}")
        sources, labels = [str(f) for f in files], [_parse_label(r[0], where) for r in rows]
    elif all(len(r) == 2 for r in rows):
        by_name = {f.name: f for f in files} | {f.stem: f for f in files}
        present = {r[0] for r in rows if r[0] in by_name or (root / r[0]).is_file()}  # or a path under ROOT
        missing = [r[0] for r in rows if r[0] not in present]  # the label file's fault (or --data's), not images'
        if len(missing) == len(rows):
            raise VitzooError(f"{lf}: none of the {len(rows)} files it labels is in {root} (first: {rows[0][0]}); "
                              "is it the label file of this folder?")  # fmt: skip
        if missing:  # scored as unreadable, they would silently change what the accuracy is over
            raise VitzooError(f"{lf}: {len(missing)} of {len(rows)} files it labels are not in {root} (first: "
                              f"{', '.join(missing[:3])}); restore them, or remove their lines from the label file "
                              "to evaluate the rest")  # fmt: skip
        sources = [str(by_name.get(r[0], root / r[0])) for r in rows]
        labels = [_parse_label(r[1], where) for r in rows]
    else:
        raise VitzooError(f"{lf}: mixes 'FILE LABEL' lines and 'LABEL' lines")
    keys = [Path(s).stem for s in sources]
    return ImageDataset(sources, keys, labels, IMAGENET_CLASSES, f"{root} (labels from {lf.name})")


def _is_label(token: str) -> bool:
    return token in synset_to_index() or token.isdigit()
