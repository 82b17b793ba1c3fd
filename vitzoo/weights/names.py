"""A model named on a command line: a registry name (``arch``, ``arch.tag``), a shell pattern of names, or a file.

Every command that takes ``NAME|FILE`` arguments (bench, flops, eval, fewshot, inspect, export, tradeoff, download,
finetune, predict) resolves and checks them here, with ``vitzoo.zoo.lookup.resolve`` (the one resolution of every
name ``vitzoo.load`` also uses), before any work starts.
"""

from __future__ import annotations

from collections.abc import Iterable

from vitzoo.errors import ConfigError
from vitzoo.weights.loading import load_converted
from vitzoo.zoo.checkpoint import Checkpoint
from vitzoo.zoo.configs import ModelConfig
from vitzoo.zoo.lookup import resolve, resolve_one, weight_file  # noqa: F401 (weight_file re-exported)


def expand_sources(names: Iterable[str]) -> list[str]:
    """Each name as ``resolve`` resolves it: a pattern replaced by the full names it matches (a bare architecture
    in a pattern, as a bare name, keeps meaning its default checkpoint), a file kept as it is. One line for an
    unknown name, a pattern that matches nothing or a missing file."""
    out: list[str] = []
    for name in names:
        tagged = "." in name
        for checkpoint in resolve(name):
            out.append(name if checkpoint.is_file else checkpoint.name if tagged else checkpoint.arch)  # type: ignore[arg-type]
    return out


def check_source(name: str, *, img_size: int | None = None, read: bool = False) -> Checkpoint:
    """The checkpoint ``name`` stands for; ConfigError (one line) for an unknown model name, an impossible size, or a
    weight file that is missing or a directory. ``read``: also read a weight file as ``vitzoo.load`` would (an
    image, a text, a truncated file, NaN weights: one line now, not a failed run later)."""
    checkpoint = resolve_one(name, img_size=img_size)
    if checkpoint.is_file and read:
        source_config(name, img_size=img_size)
    return checkpoint


def source_config(name: str, *, img_size: int | None = None) -> tuple[str, ModelConfig]:
    """(display name, architecture) of a registry name (``arch``, ``arch.tag``) or of a weight file (read and
    converted in memory, as ``vitzoo.load`` does; nothing is built)."""
    checkpoint = resolve_one(name, img_size=img_size)
    if not checkpoint.is_file:
        return checkpoint.name, checkpoint.config  # type: ignore[return-value]
    converted, display, _ = load_converted(checkpoint.name)
    config = converted.config
    if img_size is not None and img_size != config.img_size:
        try:
            config = config.replace(img_size=img_size)
        except ValueError as e:
            raise ConfigError(f"{display}: {e}") from None
    return display, config
