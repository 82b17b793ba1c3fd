"""Typed registry entries (architectures and their pretrained weights) and the registry itself.

An architecture is a ``ModelSpec`` (``vit-b16``); each of its checkpoints is a ``Weights`` tag, addressed as
``arch.tag`` (``vit-b16.orig-in21k-ft-in1k``). Everything here is immutable data; nothing touches files,
network or torch weights. ``vitzoo.zoo.catalog`` is the only module that fills the registry.
"""

from __future__ import annotations

import difflib
import fnmatch
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from vitzoo.errors import VitzooError
from vitzoo.zoo.configs import Family, ModelConfig, ViTConfig
from vitzoo.zoo.formats import CheckpointFormat
from vitzoo.zoo.labels import space_for
from vitzoo.zoo.preprocess import Preprocess


class UnknownModelError(VitzooError, KeyError):
    """Raised for a name that is not in the registry; the message suggests the closest names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class HubFile:
    """Where a checkpoint sits on the Hugging Face Hub, and in which key layout."""

    repo_id: str
    filename: str
    format: CheckpointFormat
    revision: str = "main"
    sha256: str | None = None  # of the file; checked after download when known

    @property
    def label(self) -> str:
        """``repo/file@revision``, as messages and ``vitzoo info`` show it."""
        return f"{self.repo_id}/{self.filename}@{self.revision}"


@dataclass(frozen=True)
class UrlFile:
    """A checkpoint file at a plain https URL (the originals in Google's buckets), and its key layout."""

    url: str
    format: CheckpointFormat
    sha256: str | None = None  # of the file; checked after download when known

    @property
    def label(self) -> str:
        """The URL."""
        return self.url


Source = HubFile | UrlFile
Protocol = Literal["authors", "timm"]


def same_url(a: str, b: str) -> bool:
    """Two URLs naming the same file: ``%2B`` and ``+`` (and any other %-escape) compare equal."""
    return urllib.parse.unquote(a) == urllib.parse.unquote(b)


@dataclass(frozen=True)
class Accuracy:
    """An ImageNet-1k top-1 accuracy (%) reported for a checkpoint, where it was reported and how it was measured.

    ``protocol`` is "authors" (the authors' own evaluation: the ViT paper's Table 5 runs, the vit_jax and
    big_transfer READMEs) or "timm" (timm's re-evaluation of this very file with its own preprocessing).
    """

    top1: float
    source: str
    protocol: Protocol


@dataclass(frozen=True)
class Weights:
    """One pretrained checkpoint of an architecture, with the places its file can be fetched from."""

    tag: str  # e.g. "orig-in21k-ft-in1k"; the full name is f"{arch}.{tag}"
    sources: tuple[Source, ...]  # in order of preference: Hub safetensors, Hub .bin, the original URL
    pretrain: str  # data and recipe, e.g. "ImageNet-21k (paper), fine-tuned on ImageNet-1k"
    preprocess: Preprocess
    num_classes: int  # classes of the stored head; 0 = checkpoint has no head
    representation_size: int | None = None  # pre_logits layer present in the checkpoint
    accuracies: tuple[Accuracy, ...] = ()  # the first is the one tables show; empty: not an ImageNet-1k classifier
    zero_head: bool = False  # the head was zeroed by its authors (2020 ImageNet-21k files): logits are useless
    published: bool = True  # False: no one can download it (the `testing` architecture's weights exist only in tests)
    licence: str | None = None  # as its publisher states it (the vit_jax and big_transfer READMEs); None: not stated
    notes: str = ""

    def __post_init__(self) -> None:
        one_source, one_accuracy = isinstance(self.sources, (HubFile, UrlFile)), isinstance(self.accuracies, Accuracy)
        object.__setattr__(self, "sources", (self.sources,) if one_source else tuple(self.sources))
        object.__setattr__(self, "accuracies", (self.accuracies,) if one_accuracy else tuple(self.accuracies))
        if not self.sources:
            raise ValueError(f"{self.tag}: a checkpoint needs at least one source")

    @property
    def img_size(self) -> int:
        """Resolution the checkpoint was trained or fine-tuned at."""
        return self.preprocess.img_size

    @property
    def hub(self) -> HubFile | None:
        """The preferred Hub file (None for a checkpoint that is only at its original URL)."""
        return next((s for s in self.sources if isinstance(s, HubFile)), None)

    @property
    def url(self) -> str | None:
        """The original file's URL (Google's buckets), for provenance and `vitzoo convert`."""
        return next((s.url for s in self.sources if isinstance(s, UrlFile)), None)

    @property
    def accuracy(self) -> Accuracy | None:
        """The accuracy tables show (the authors' own where known); None: not an ImageNet-1k classifier."""
        return self.accuracies[0] if self.accuracies else None

    @property
    def label_space(self) -> str | None:
        """What the head's classes are: "imagenet-1k" (1000), "imagenet-21k" (21,843), or None (no head, a head
        its authors zeroed, or a size without known names), as ``vitzoo.zoo.labels`` ships them."""
        return None if self.zero_head else space_for(self.num_classes)


@dataclass(frozen=True)
class ModelSpec:
    """An architecture: its config (at its default tag's resolution), family, citation and checkpoints."""

    name: str
    family: Family
    config: ModelConfig
    source: str  # where the architecture is defined, e.g. "ViT paper Table 1"
    weights: tuple[Weights, ...] = ()
    default_tag: str | None = None
    title: str = ""  # the paper's name, e.g. "R50+ViT-B/16"
    hidden: bool = False  # a test fixture (``testing``): resolvable by name, never listed nor matched by a pattern

    def __post_init__(self) -> None:
        tags = [w.tag for w in self.weights]
        if len(set(tags)) != len(tags):
            raise ValueError(f"{self.name}: duplicate tags in {tags}")
        if self.weights and self.default_tag not in tags:
            raise ValueError(f"{self.name}: default tag {self.default_tag!r} is not one of {tags}")

    def get_weights(self, tag: str | None = None) -> Weights | None:
        """The named tag, or the default one (None for an architecture without checkpoints)."""
        tag = tag or self.default_tag
        if tag is None:
            return None
        for w in self.weights:
            if w.tag == tag:
                return w
        raise UnknownModelError(_unknown_tag(self, tag))

    def full_name(self, weights: Weights | None) -> str:
        """``arch.tag`` of one of its checkpoints (the architecture's name for none): the one place a full name is
        composed (``Checkpoint.name`` carries it)."""
        return self.name if weights is None else f"{self.name}.{weights.tag}"

    def config_for(self, weights: Weights | None) -> ModelConfig:
        """The architecture exactly as a checkpoint stores it (resolution, classes, representation layer)."""
        if weights is None:
            return self.config
        changes: dict = {"img_size": weights.img_size, "num_classes": weights.num_classes}
        if isinstance(self.config, ViTConfig):
            changes["representation_size"] = weights.representation_size
        return self.config.replace(**changes)

    @property
    def default_config(self) -> ModelConfig:
        """The config of the default checkpoint: what ``create(name)`` and ``load(name)`` build."""
        return self.config_for(self.get_weights())


def _unknown(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `vitzoo list`"
    return f"unknown model {name!r}{hint}"


def _unknown_tag(spec: ModelSpec, tag: str) -> str:
    """An unknown ``arch.tag``: the closest tags, or all of them when none is close (an arch has a handful)."""
    name = f"{spec.name}.{tag}"
    if not spec.weights:
        return f"unknown model {name!r}: {spec.name} has no pretrained checkpoints; use {spec.name!r}"
    tags = [w.tag for w in spec.weights]
    close = difflib.get_close_matches(tag, tags, n=3, cutoff=0.5) or tags
    options = ", ".join(f"{spec.name}.{t}" for t in close)
    return f"unknown model {name!r} (no tag {tag!r}); did you mean {options}?"


@dataclass
class Registry:
    """Name -> ModelSpec. Registering a name twice raises."""

    _specs: dict[str, ModelSpec] = field(default_factory=dict)

    def register(self, spec: ModelSpec) -> ModelSpec:
        """Add an architecture; duplicate names raise ``ValueError``."""
        if spec.name in self._specs:
            raise ValueError(f"model {spec.name!r} is already registered")
        if "." in spec.name:
            raise ValueError(f"model names may not contain '.': {spec.name!r}")
        self._specs[spec.name] = spec
        return spec

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def names(self, pattern: str | None = None) -> list[str]:
        """Listed names in registration order, optionally filtered by a shell pattern (``vit-*``); hidden
        architectures (test fixtures) are left out."""
        listed = [n for n, s in self._specs.items() if not s.hidden]
        return [n for n in listed if pattern is None or fnmatch.fnmatchcase(n, pattern)]

    def listed(self) -> Iterator[ModelSpec]:
        """The architectures users see (``vitzoo list``, tables, tradeoff): every one but the hidden fixtures."""
        return (s for s in self._specs.values() if not s.hidden)

    def entry(self, arch: str, tag: str | None) -> tuple[ModelSpec, Weights | None]:
        """The spec and weights of an already resolved checkpoint (``Checkpoint.arch``/``.tag``): a keyed lookup,
        no name parsing (``vitzoo.zoo.lookup.resolve`` resolves names)."""
        spec = self._specs[arch]
        return spec, None if tag is None else spec.get_weights(tag)

    def resolve(self, name: str) -> tuple[ModelSpec, Weights | None]:
        """Split ``arch[.tag]`` into its spec and weights (the default tag when none is given).

        Unknown architectures and unknown tags (``vit-b16.bogus``, an empty ``vit-b16.``) raise
        ``UnknownModelError`` naming the closest candidates.
        """
        if not isinstance(name, str):  # get_spec(None), load(a_model): one clear error, not an AttributeError
            raise UnknownModelError(f"a model is named by a string such as 'vit-b16' or 'vit-b16.TAG', not {name!r}")
        arch, dot, tag = name.partition(".")
        if arch not in self._specs:
            raise UnknownModelError(_unknown(arch, self.names()))
        spec = self._specs[arch]
        if dot and not tag:
            raise UnknownModelError(_unknown_tag(spec, tag))
        return spec, spec.get_weights(tag or None)
