"""Names -> checkpoints: the one resolution every entry point makes before any work (no torch).

``resolve`` turns a ``NAME``, ``NAME.TAG``, ``FILE`` or ``PATTERN`` into ``Checkpoint`` values (``resolve_one``: one
of them, with size overrides); ``is_path`` is the one rule that tells a file from a name. ``list_models`` and
``get_spec`` answer what exists; ``check_memory`` refuses, from the closed-form parameter count, a model that
cannot fit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from vitzoo import machine
from vitzoo.errors import ConfigError, VitzooError
from vitzoo.zoo.analytic import count_params
from vitzoo.zoo.catalog import REGISTRY
from vitzoo.zoo.checkpoint import Checkpoint, refuse_url
from vitzoo.zoo.configs import ModelConfig, ViTConfig
from vitzoo.zoo.registry import ModelSpec, UnknownModelError, UrlFile, Weights, same_url

FILE_SUFFIXES = (".npz", ".safetensors", ".bin", ".pth")


def list_models(pattern: str | None = None) -> list[str]:
    """Listed architecture names, optionally filtered by a shell pattern such as ``"vit-*"`` (test fixtures such as
    ``testing`` are not listed, but resolve by name)."""
    return REGISTRY.names(pattern)


def get_spec(name: str) -> ModelSpec:
    """The registry entry of ``arch`` or ``arch.tag`` (via ``resolve_one``); unknown names raise
    ``UnknownModelError`` with hints."""
    checkpoint = refuse_file(resolve_one(name), "get_spec")
    return REGISTRY.entry(checkpoint.arch, checkpoint.tag)[0]  # type: ignore[arg-type]


def is_pattern(name: str) -> bool:
    """Whether a name's architecture part is a shell pattern (``vit-b*``, ``vit-?16.augreg-in21k``)."""
    return any(c in name.partition(".")[0] for c in "*?[")


def is_path(name_or_path: str | os.PathLike) -> bool:
    """Whether a model argument names a weight file rather than a registry entry: the one rule every entry point
    uses (``resolve``, hence ``load``, ``create``, ``export``, every command and ``tradeoff``).

    A ``PathLike``, a name with a path separator or a .npz/.safetensors/.bin/.pth suffix, or an existing path that is
    not also a registry name (the registry wins a tie: a folder called ``testing`` does not hide the model). So
    ``load("chelsea.png")`` says what that file is, not that no model has that name.
    """
    if isinstance(name_or_path, os.PathLike):
        return True
    if not isinstance(name_or_path, str):
        return False  # not a name either: the registry says so in one line
    s = name_or_path
    if os.sep in s or s.endswith(FILE_SUFFIXES):
        return True
    if not os.path.lexists(s):
        return False
    try:
        REGISTRY.resolve(s)
    except VitzooError:
        return True
    return False


def resolve(name: str | os.PathLike) -> list[Checkpoint]:
    """Every checkpoint a command-line or Python model argument stands for, before any work starts.

    ``arch`` (its default checkpoint), ``arch.tag``, a shell pattern of architectures (``vit-b*``, keeping a
    ``.tag``: ``vit-?16.augreg-in21k``; test fixtures are never matched), or a weight file (``is_path``; described
    from its header, ``Checkpoint.from_file``). One line for an unknown name or tag (with the closest names), a
    pattern that matches nothing, a URL, a missing file or a directory.
    """
    if isinstance(name, str) and not is_path(name) and is_pattern(name):
        arch, dot, tag = name.partition(".")
        matches = REGISTRY.names(arch)
        if not matches:
            raise ConfigError(f"no model matches {arch!r}; see `vitzoo list`")
        return [resolve_one(f"{a}{dot}{tag}") for a in matches]
    return [resolve_one(name)]


def resolve_all(names: Iterable[str | os.PathLike]) -> list[Checkpoint]:
    """``resolve`` of each name, in order."""
    return [c for name in names for c in resolve(name)]


def resolve_one(name: str | os.PathLike, *, num_classes: int | None = None, img_size: int | None = None) -> Checkpoint:
    """The one checkpoint ``name`` stands for (a pattern is refused), at ``img_size`` with ``num_classes`` when
    given (the architecture a model built from it has)."""
    check_overrides(num_classes, img_size)
    if is_path(name):
        checkpoint = Checkpoint.from_file(weight_file(name))
        config = checkpoint.config
        if config is not None and (img_size or num_classes is not None):
            config = _override(config, checkpoint.name, num_classes, img_size)
            checkpoint = replace(checkpoint, config=config)
        return checkpoint
    if not isinstance(name, str):  # get_spec(None), load(a_model): one clear error, not an AttributeError
        raise UnknownModelError(f"a model is named by a string such as 'vit-b16' or 'vit-b16.TAG', not {name!r}")
    if is_pattern(name):
        matches = ", ".join(c.name for c in resolve(name))  # none: "no model matches", as every command says it
        raise ConfigError(f"{name!r} is a pattern (it matches {matches}); name one model")
    spec, weights = REGISTRY.resolve(name)
    config = _override(spec.config_for(weights), spec.name, num_classes, img_size)
    return Checkpoint.of(spec, weights, config)


def refuse_file(checkpoint: Checkpoint, what: str, hint: str = "") -> Checkpoint:
    """``checkpoint`` when it is a catalogue entry; one line when it is a weight file, where ``what`` (a command, a
    function) takes catalogue names only (``hint``: what to do with the file instead)."""
    if checkpoint.is_file:
        raise ConfigError(f"{checkpoint.name} is a file; {what} takes catalogue names (NAME[.TAG]; see "
                          f"`vitzoo list`){'; ' + hint if hint else ''}")  # fmt: skip
    return checkpoint


def by_source(url: str) -> Checkpoint | None:
    """The catalogue checkpoint one of whose sources is ``url`` (``%2B`` and ``+`` spellings match), or None."""
    for spec in REGISTRY:
        for w in spec.weights:
            if any(isinstance(s, UrlFile) and same_url(s.url, url) for s in w.sources):
                return Checkpoint.of(spec, w)
    return None


def weight_file(name: str | os.PathLike) -> Path:
    """The path of a weight file named as a model; ConfigError if it is missing or a directory, CheckpointError for a
    URL."""
    refuse_url(name)  # CheckpointError: a URL is not a file
    path = Path(name).expanduser()
    if path.is_dir():
        raise ConfigError(f"{name} is a directory, not a weight file")
    if not path.exists():
        raise ConfigError(f"no such weight file: {name} (a model is named arch or arch.tag; see `vitzoo list`)")
    return path


def _override(config: ModelConfig, label: str, num_classes: int | None, img_size: int | None) -> ModelConfig:
    if num_classes is not None:
        config = config.replace(num_classes=num_classes)
    if img_size is not None:
        try:
            config = config.replace(img_size=img_size)
        except ValueError as e:
            raise ConfigError(f"{label}: {e}") from None
    return config


def check_overrides(num_classes: int | None, img_size: int | None) -> None:
    """Reject a class count or resolution no model can have (one clear line)."""
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 0):
        raise ConfigError(f"num_classes must be an integer >= 0, not {num_classes!r}")
    if img_size is not None and (not isinstance(img_size, int) or img_size <= 0):
        raise ConfigError(f"img_size must be a positive integer, not {img_size!r}")


def check_memory(config: ModelConfig, label: str, copies: int = 1, batch: int = 0) -> None:
    """Refuse, with one line, a model whose float32 weights (and activations) would not fit in the RAM available now.

    The one memory check, on every path that builds or runs a model. The size comes from the closed-form parameter
    count (``vitzoo.zoo.analytic``), so nothing is allocated to find out; ``copies`` is how many float32 copies of
    the weights the operation holds at once (converting and saving: 2; 0 when they are already in memory);
    ``batch`` how many images a forward pass then runs, whose largest activations (``activation_bytes``) must fit
    too. Where the available memory is unknown, nothing is checked.
    """
    free = machine.available_ram()
    params = count_params(config)
    need = params * 4 * copies + batch * activation_bytes(config)
    if free is not None and need > free:
        what = f"{params:,} parameters" + (f" and the activations of {batch} image(s)" if batch else "")
        head = config.num_features * config.num_classes
        fix = "fewer classes" if 2 * head > params else "a smaller img_size" + (" or batch" if batch > 1 else "")
        raise ConfigError(
            f"{label} at img_size={config.img_size} with {config.num_classes:,} classes has {what}: about "
            f"{_size(need)} of memory needed, {_size(free)} available; choose {fix}"
        )


def activation_bytes(config: ModelConfig) -> int:
    """A lower bound of the float32 activations one image holds at once in a forward pass: for a ViT the attention
    scores and probabilities of one layer (heads x tokens^2, twice) beside its MLP hidden layer; for a ResNet (BiT
    or a hybrid's stem) its stem's output and the block beside it. Quadratic (ViT) or linear (ResNet) in pixels:
    what makes a huge ``img_size`` fail."""
    size = config.img_size
    if isinstance(config, ViTConfig):
        tokens = config.seq_len
        attention = 2 * config.num_heads * tokens**2 + tokens * max(config.mlp_dim, 3 * config.width)
        stem = 0 if config.backbone is None else 4 * config.backbone.width * (size // 2) ** 2
        return 4 * (attention + stem)
    return 4 * 4 * config.width * (size // 2) ** 2


def _size(n: int) -> str:
    """Bytes as MiB or GiB."""
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def resolve_config(
    name: str, *, num_classes: int | None = None, img_size: int | None = None
) -> tuple[ModelSpec, Weights | None, ModelConfig]:
    """The spec, the weights (default tag if none named) and the config they describe, with overrides: a view of
    ``resolve_one`` for code that wants the registry entry itself."""
    checkpoint = refuse_file(resolve_one(name, num_classes=num_classes, img_size=img_size), "resolve_config")
    spec, weights = REGISTRY.entry(checkpoint.arch, checkpoint.tag)  # type: ignore[arg-type]
    return spec, weights, checkpoint.config  # type: ignore[return-value]
