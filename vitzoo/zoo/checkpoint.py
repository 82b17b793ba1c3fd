"""A checkpoint as one frozen value (no torch): what a name, a catalogue entry or a weight file stands for.

``vitzoo.zoo.lookup.resolve`` turns every ``NAME``, ``NAME.TAG``, ``FILE`` and ``PATTERN`` into ``Checkpoint``
values; ``vitzoo.load`` and ``vitzoo.create`` attach one to the model they return (``model.checkpoint``), filled in
with what building it found out (the sha256 of the weight file, the head's class names, a zeroed head). The model's
``name``, ``preprocess``, ``preprocess_source`` and ``weights_sha256`` are read-only views of it.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitzoo.errors import CheckpointError
from vitzoo.zoo.configs import ModelConfig, config_from_json, family_of
from vitzoo.zoo.labels import CUSTOM, names_for, space_for
from vitzoo.zoo.preprocess import Preprocess, default_preprocess, preprocess_from_json

if TYPE_CHECKING:
    from vitzoo.zoo.registry import Accuracy, ModelSpec, Source, Weights

MAX_HEADER = 100 * 2**20  # a safetensors header larger than this is not one


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint: a catalogue entry (``arch.tag``), an architecture without checkpoints, or a weight file.

    ``name`` is the full name (``arch.tag``; the architecture's name when it has no checkpoints; the path of a
    file). ``config`` is the architecture exactly as the checkpoint stores it (None for a file whose header does not
    say: any file but vitzoo's own safetensors, until it is loaded). ``labels`` are filled in by ``load``/``create``.
    """

    name: str
    preprocess: Preprocess | None  # the evaluation preprocessing at config.img_size; None: a file that names none
    preprocess_source: str  # where that comes from (the registry tag, the file, a family default)
    weights_sha256: str | None = None  # of the file the weights came from (a loaded model); None: not known
    label_space: str | None = None  # "imagenet-1k", "imagenet-21k", "custom" (names stored in the file) or None
    labels: tuple[str, ...] | None = None  # the name of every class of the head (a built model's)
    zero_head: bool = False  # the head is all zeros (the 2020 ImageNet-21k upstreams): it classifies nothing
    config: ModelConfig | None = None
    sources: tuple[Source, ...] = ()  # where the file is fetched from, in order (a catalogue entry)
    accuracies: tuple[Accuracy, ...] = ()  # reported ImageNet-1k top-1, with protocol and citation
    licence: str | None = None  # the weights' licence where their publisher states it
    pretrain: str = ""  # data and recipe
    notes: str = ""
    arch: str | None = None  # the catalogue architecture (None: a file)
    tag: str | None = None  # the catalogue tag (None: a file, or an architecture without checkpoints)
    path: str | None = None  # the weight file (None: a catalogue entry)

    @property
    def full_name(self) -> str:
        """``arch.tag`` (or the architecture, or the file's path): what messages, tables and the store show."""
        return self.name

    @property
    def is_file(self) -> bool:
        """Whether this describes a weight file rather than a catalogue entry."""
        return self.path is not None

    @property
    def accuracy(self) -> Accuracy | None:
        """The accuracy tables show (the authors' own where known); None: not an ImageNet-1k classifier."""
        return self.accuracies[0] if self.accuracies else None

    def __repr__(self) -> str:  # 21,843 names would drown the rest
        labels = None if self.labels is None else f"<{len(self.labels)} names>"
        return (f"Checkpoint(name={self.name!r}, label_space={self.label_space!r}, labels={labels}, "
                f"weights_sha256={self.weights_sha256!r}, preprocess={self.preprocess!r}, "
                f"preprocess_source={self.preprocess_source!r}, zero_head={self.zero_head})")  # fmt: skip

    @classmethod
    def of(cls, spec: ModelSpec, weights: Weights | None, config: ModelConfig | None = None) -> Checkpoint:
        """The catalogue entry ``spec``/``weights`` (None: the architecture alone), at ``config`` (the tag's
        stored architecture when not given: overrides such as ``img_size`` change it)."""
        config = config or spec.config_for(weights)
        if weights is None:
            family = family_of(config)
            pp, why = default_preprocess(family, config.img_size), f"default for a {family} model: no registry tag"
            return cls(spec.name, pp, why, config=config, label_space=space_for(config.num_classes), arch=spec.name)
        name = spec.full_name(weights)
        same_head = config.num_classes == weights.num_classes
        return cls(
            name, replace(weights.preprocess, img_size=config.img_size), f"registry tag {name}",
            label_space=weights.label_space if same_head else space_for(config.num_classes),
            zero_head=weights.zero_head, config=config, sources=weights.sources, accuracies=weights.accuracies,
            licence=weights.licence, pretrain=weights.pretrain, notes=weights.notes, arch=spec.name, tag=weights.tag,
        )  # fmt: skip

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Checkpoint:
        """A weight file, described from its header alone: a vitzoo safetensors file says its architecture, the
        preprocessing and class names it stores and the catalogue tag it was made from (``name``); other files
        say nothing until they are loaded (``vitzoo.load``)."""
        metadata = safetensors_metadata(path)
        config = config_from_json(metadata["config"]) if metadata.get("config") else None
        preprocess, why = None, "not known before the file is loaded"
        if metadata.get("preprocess"):
            pp = preprocess_from_json(metadata["preprocess"])
            preprocess, why = (pp if config is None else replace(pp, img_size=config.img_size)), "stored in the file"
        labels = None
        if metadata.get("labels"):
            try:
                labels = tuple(json.loads(metadata["labels"]))
            except (ValueError, TypeError):
                labels = None
        space = CUSTOM if labels else (None if config is None else space_for(config.num_classes))
        notes = f"made from {metadata['name']}" if metadata.get("name") else ""
        return cls(str(path), preprocess, why, label_space=space, labels=labels, config=config, notes=notes,
                   path=str(path))  # fmt: skip


_URL = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*)://")


def refuse_url(src: str | os.PathLike, *, downloads: bool = False) -> None:
    """Raise one line for a URL where a file path is expected (a path would only say "no such file").

    ``downloads``: the caller downloads http(s) URLs itself (``vitzoo convert``), so only other schemes are refused.
    """
    match = _URL.match(src) if isinstance(src, str) else None
    if match is None:
        return
    scheme = match.group(1).lower()
    if scheme not in ("http", "https"):
        raise CheckpointError(f"{src}: unsupported URL scheme {scheme}://; vitzoo downloads https:// and http:// URLs "
                              "(`vitzoo convert URL OUT.safetensors`); copy the file here (gsutil cp, aws s3 cp, "
                              "...) and give its path")  # fmt: skip
    if not downloads:
        raise CheckpointError(f"{src}: a URL, not a file; download and convert it with "
                              f"`vitzoo convert {src} OUT.safetensors`, then use OUT.safetensors")  # fmt: skip


def safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file, read from its header alone; {} for any other file."""
    try:
        with Path(path).expanduser().open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return {}
            (size,) = struct.unpack("<Q", head)
            if not 2 <= size <= MAX_HEADER:
                return {}
            header = json.loads(f.read(size))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return {k: v for k, v in metadata.items() if isinstance(v, str)} if isinstance(metadata, dict) else {}


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


def checkpoint_of(model: Any) -> Checkpoint | None:
    """The ``Checkpoint`` a model was made from (``model.checkpoint``); None for any other module."""
    checkpoint = getattr(model, "checkpoint", None)
    return checkpoint if isinstance(checkpoint, Checkpoint) else None


def label_of(model: Any, default: str | None = None) -> str:
    """How messages name a model: its checkpoint's full name; else ``default``, or its class."""
    checkpoint = checkpoint_of(model)
    if checkpoint is None:
        return default or type(model).__name__
    return checkpoint.name


def attach(model: Any, checkpoint: Checkpoint) -> Any:
    """Set ``model.checkpoint`` (the model's ``name``, ``preprocess``, ... read it); returns ``model``."""
    model.checkpoint = checkpoint
    return model
