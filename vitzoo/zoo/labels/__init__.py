"""Class names as data: the ImageNet-1k and ImageNet-21k label spaces, with WordNet lemmas (no torch).

A *label space* names what the classes of a head are. ``imagenet-1k``: the 1000 ILSVRC-2012 WordNet ids in
class-index order (sorted; the order of every ImageNet-1k classifier here). ``imagenet-21k``: the 21,843 ids of
Google's ImageNet-21k in the order of the ViT and BiT in21k heads. ``custom``: a checkpoint's own names (a user's
fine-tune, ``vitzoo convert --labels FILE``). A head of another size has no known names.

The files beside this module are copied unchanged from timm's ``data/_info`` (see README.md here for the source
and licences). A class's human-readable name is the first of its WordNet lemmas: 0 is "tench", 999 "toilet tissue".
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path

from vitzoo.errors import VitzooError

IMAGENET_1K = "imagenet-1k"
IMAGENET_21K = "imagenet-21k"
CUSTOM = "custom"  # names stored with the checkpoint
SPACES = {IMAGENET_1K: 1000, IMAGENET_21K: 21843}  # the spaces vitzoo ships names for, and their sizes
_SYNSET_FILES = {IMAGENET_1K: "imagenet_synsets.txt", IMAGENET_21K: "imagenet21k_goog_synsets.txt"}
_LEMMA_FILE = "imagenet_synset_to_lemma.txt"


def _read(filename: str) -> str:
    return resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")


def _check_space(space: str) -> None:
    if space not in SPACES:
        raise VitzooError(f"unknown label space {space!r}; vitzoo ships {', '.join(SPACES)}")


@cache
def synsets(space: str) -> tuple[str, ...]:
    """The WordNet ids of a label space; class index = position."""
    _check_space(space)
    ids = tuple(_read(_SYNSET_FILES[space]).split())
    assert len(ids) == SPACES[space], f"{_SYNSET_FILES[space]} holds {len(ids)} ids, not {SPACES[space]}"
    return ids


@cache
def lemmas() -> dict[str, str]:
    """WordNet id -> its lemmas, comma-separated ("n01440764" -> "tench, Tinca tinca"), for both spaces."""
    return dict(line.split("\t", 1) for line in _read(_LEMMA_FILE).splitlines() if line)


@cache
def class_names(space: str) -> tuple[str, ...]:
    """The human-readable name of every class of a label space: the first lemma (0 -> "tench")."""
    table = lemmas()
    return tuple(table[wnid].split(",")[0].strip() for wnid in synsets(space))


def space_for(num_classes: int) -> str | None:
    """The label space of a head of ``num_classes`` classes (None: no head, or a size without known names)."""
    return next((space for space, n in SPACES.items() if n == num_classes), None)


def names_for(space: str | None) -> tuple[str, ...] | None:
    """``class_names(space)`` for a shipped space, None for no space (or ``custom``, whose names the file holds)."""
    return class_names(space) if space in SPACES else None


def read_label_file(path: str | os.PathLike, num_classes: int) -> tuple[str, ...]:
    """One class name per line (blank lines at the end ignored); exactly ``num_classes`` distinct, non-empty names."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise VitzooError(f"cannot read label file {p}: {getattr(e, 'strerror', None) or e}") from None
    names = [line.strip() for line in text.rstrip("\n\r \t").splitlines()] if text.strip() else []
    if num_classes == 0:
        raise VitzooError(f"{p}: the model has no classification head, so it takes no class names")
    if len(names) != num_classes:
        raise VitzooError(f"{p}: {len(names)} class names for a head of {num_classes} classes (one name per line)")
    if "" in names:
        raise VitzooError(f"{p}: line {names.index('') + 1} is empty; every class needs a name")
    seen: dict[str, int] = {}
    for i, name in enumerate(names, 1):
        if name in seen:
            raise VitzooError(f"{p}: {name!r} names both line {seen[name]} and line {i}; class names must differ")
        seen[name] = i
    return tuple(names)
