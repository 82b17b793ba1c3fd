"""The ImageNet evaluation protocols: which set a tree of images is, and how its authors score a 1000-way head on it:

- ``imagenet``: ILSVRC-2012 val (50,000 images, 1000 classes): the 1000-way logits against the folder labels;
- ``real``: the same images with ReaL labels (Beyer et al. 2020): top-1 right when in the image's ReaL label set,
  images with an empty set left out;
- ``v2``: ImageNet-V2 (10,000 images, folders ``0`` ... ``999``): the 1000-way logits, each folder's integer its label;
- ``sketch``: ImageNet-Sketch (50,889 images, 1000 synset folders): the 1000-way logits;
- ``a``, ``r``: ImageNet-A (7,500 images) and -R (30,000), 200 classes each: the logits restricted to those 200.

The class lists of A and R and the ReaL labels ship in ``vitzoo/evaluate/labels/`` (timm's ``data/_info``; see the
README there). ``detect`` recognises a tree where it is unambiguous: class folders ``0`` ... ``999`` are V2, the 200
synset folders of A or R are A or R; 1000 synset folders are ImageNet val or Sketch alike, so ``imagenet`` is assumed
and said. ``prepare`` checks the data fits the protocol and returns the ``Scoring`` to evaluate with.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from vitzoo.errors import VitzooError
from vitzoo.evaluate.accuracy import RealLabels, Scoring, load_real_labels
from vitzoo.evaluate.data import IMAGENET_CLASSES, ImageDataset, class_folders
from vitzoo.evaluate.imagenet import IMAGENET_SYNSETS, NUM_IMAGENET_CLASSES, synset_to_index
from vitzoo.zoo.timm_results import DATASETS as NAMES

LABELS = Path(__file__).parent / "labels"


@dataclass(frozen=True)
class EvalProtocol:
    """One evaluation protocol, as the README's table shows it."""

    name: str
    title: str
    classes: int  # classes that compete for the top-1
    scoring: str
    detection: str


PROTOCOLS = {
    p.name: p
    for p in (
        EvalProtocol("imagenet", "ImageNet-1k val", 1000, "1000-way logits, folder (or label file) labels",
                 "ImageNet-1k synset folders or a label file, when nothing more specific matches"),
        EvalProtocol("real", "ImageNet-ReaL", 1000, "1000-way top-1 right when in the image's ReaL set (shipped "
                 "labels, matched by ILSVRC2012_val_NNNNNNNN file name); images with an empty set left out",
                 "never (same images as imagenet): --protocol real, or a set folder named real"),
        EvalProtocol("v2", "ImageNet-V2", 1000, "1000-way logits, the folder's integer is the label",
                 "class folders exactly 0 ... 999"),
        EvalProtocol("a", "ImageNet-A", 200, "logits restricted to its 200 classes", "its 200 synset folders exactly"),
        EvalProtocol("r", "ImageNet-R", 200, "logits restricted to its 200 classes", "its 200 synset folders exactly"),
        EvalProtocol("sketch", "ImageNet-Sketch", 1000, "1000-way logits",
                 "never (same folders as imagenet): --protocol sketch, or a set folder named sketch"),
    )
}  # fmt: skip
assert set(NAMES) == set(PROTOCOLS)


def _read_lines(name: str) -> tuple[str, ...]:
    return tuple((LABELS / name).read_text().split())


@cache
def subset_classes(protocol: str) -> tuple[int, ...]:
    """The ImageNet-1k indices of ImageNet-A's or -R's 200 classes, ascending (the columns their scores keep)."""
    synsets, indices = _read_lines(f"imagenet_{protocol}_synsets.txt"), _read_lines(f"imagenet_{protocol}_indices.txt")
    index = synset_to_index()
    columns = tuple(int(i) for i in indices)
    assert columns == tuple(index[s] for s in synsets) == tuple(sorted(columns)), f"{protocol}: inconsistent lists"
    return columns


@cache
def real_labels() -> RealLabels:
    """The shipped ImageNet-ReaL labels, keyed ``ILSVRC2012_val_00000001`` ... (entry 0 is image 1)."""
    return load_real_labels(LABELS / "imagenet_real_labels.json")


def set_name_protocol(path: str | os.PathLike) -> str | None:
    """The protocol a set folder's own name gives (``a``, ``imagenet-a``, ``imagenet_sketch``, ``imagenetv2`` ...)."""
    name = re.sub(r"[-_ ]", "", Path(path).name.lower())
    if name == "v2" or name.startswith("imagenetv2"):  # imagenetv2-matched-frequency
        return "v2"
    name = name.removeprefix("imagenet") or "imagenet"
    return name if name in PROTOCOLS else None


def detect(path: str | os.PathLike) -> tuple[str | None, str]:
    """The protocol of an ImageFolder tree, from its class folders alone, and the reason, for one line.

    None for a tree that is not labelled by ImageNet-1k classes (a dataset of its own).
    """
    root = Path(path).expanduser()
    folders = set(class_folders(root)) if root.is_dir() else set()
    synset_folders = folders and folders <= set(IMAGENET_SYNSETS)
    if folders == {str(i) for i in range(NUM_IMAGENET_CLASSES)}:
        return "v2", "class folders 0 ... 999, as ImageNet-V2 ships"
    for name in ("a", "r"):
        if folders == {IMAGENET_SYNSETS[i] for i in subset_classes(name)}:
            return name, f"the 200 class folders of {PROTOCOLS[name].title}"
    if synset_folders:
        return "imagenet", f"{len(folders)} ImageNet-1k synset folders (ImageNet-Sketch alike: --protocol sketch)"
    return None, "not ImageNet-1k classes"


def choose(path: str | os.PathLike | None, data: ImageDataset, given: str | None = None) -> tuple[str | None, str]:
    """The protocol to evaluate ``data`` (read from ``path``) with, and why, for one line.

    In order: ``given`` (``--protocol``); the tree's class folders where they are unambiguous (``detect``: V2, A,
    R); the set folder's own name (``set_name_protocol``: ``real``, ``sketch`` ...); ImageNet-1k labels (synset
    folders, a label file, a 1000-class Hugging Face dataset: ``imagenet``); none.
    """
    if given is not None:
        return given, "--protocol"
    found, reason = detect(path) if path is not None else (None, "")
    if found not in (None, "imagenet"):
        return found, reason
    named = set_name_protocol(path) if path is not None else None
    if named is not None:
        return named, f"the set folder is named {Path(path).name}"  # type: ignore[arg-type]
    if found is not None:
        return found, reason
    if data.classes.imagenet:
        return "imagenet", "ImageNet-1k labels"
    return None, "classes of its own"


def suite_sets(path: str | os.PathLike) -> list[Path]:
    """The sets of a suite: the non-hidden sub-folders of ``path``, by name (each an ImageFolder tree)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise VitzooError(f"{root}: not a directory" if root.exists() else f"{root}: no such directory")
    sets = [root / name for name in class_folders(root)]
    if not sets:
        raise VitzooError(f"{root}: no set folders (expected SUITE/SET/CLASS/image files, e.g. SUITE/a, SUITE/v2)")
    return sets


def prepare(data: ImageDataset, protocol: str | None, real: RealLabels | None = None) -> tuple[ImageDataset, Scoring]:
    """``data`` made ready for ``protocol`` and the ``Scoring`` it is evaluated with; refuses data that does not fit.

    ``real``: ReaL labels of the user's own (``--real-labels FILE``); protocol "real" takes the shipped ones
    otherwise. Without a protocol (a dataset of its own classes) only ``real`` applies, as before.
    """
    if protocol is None:
        return data, Scoring(real_labels=real)
    if protocol not in PROTOCOLS:
        raise VitzooError(f"unknown protocol {protocol!r}; choose one of {', '.join(NAMES)}")
    title = PROTOCOLS[protocol].title
    if protocol == "v2" and data.classes.by_index:
        if data.num_classes > NUM_IMAGENET_CLASSES:
            raise VitzooError(f"{title} has classes 0 ... 999, but {data.description} has class index "
                              f"{data.num_classes - 1}")  # fmt: skip
        data = data.with_classes(IMAGENET_CLASSES)
    if not data.classes.imagenet:
        raise VitzooError(f"protocol {protocol} ({title}) needs ImageNet-1k labels (synset folders"
                          f"{', or folders 0 ... 999' if protocol == 'v2' else ''}); {data.description} has "
                          f"{data.num_classes} classes of its own")  # fmt: skip
    columns = None
    if protocol in ("a", "r"):
        columns = subset_classes(protocol)
        allowed = set(columns)
        outside = sorted({y for y in data.labels if y not in allowed})
        if outside:
            raise VitzooError(f"{data.description}: class {IMAGENET_SYNSETS[outside[0]]} is not one of the 200 "
                              f"classes of {title} ({len(outside)} such class(es))")  # fmt: skip
    if protocol == "real" and real is None:
        real = real_labels()
    return data, Scoring(protocol, columns, real)
