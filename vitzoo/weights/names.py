"""A model named on a command line: a registry name (``arch``, ``arch.tag``), a shell pattern of names, or a file.

Every command that takes ``NAME|FILE`` arguments (bench, flops, eval, fewshot, inspect, export, tradeoff, download)
tells files from names, expands patterns and checks them here, before any work starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from vitzoo.errors import ConfigError, VitzooError
from vitzoo.weights.checkpoint import refuse_url
from vitzoo.weights.loading import is_path, load_converted
from vitzoo.zoo.configs import ModelConfig
from vitzoo.zoo.lookup import check_overrides, expand_names, resolve_config


def expand_sources(names: Iterable[str]) -> list[str]:
    """``vitzoo.zoo.lookup.expand_names`` for command-line models: weight files are kept as they are."""
    return [n for name in names for n in ([name] if is_path(name) else expand_names([name]))]


def weight_file(name: str) -> Path:
    """The path of a weight file named on the command line; ConfigError if it is missing or a directory (or a URL)."""
    try:
        refuse_url(name)
    except VitzooError as e:
        raise ConfigError(str(e)) from None
    path = Path(name).expanduser()
    if path.is_dir():
        raise ConfigError(f"{name} is a directory, not a weight file")
    if not path.exists():
        raise ConfigError(f"no such weight file: {name} (a model is named arch or arch.tag; see `vitzoo list`)")
    return path


def check_source(name: str, *, img_size: int | None = None, read: bool = False) -> None:
    """Raise ConfigError for an unknown model name, an impossible size, or a weight file that is missing or a
    directory (``vitzoo.weights.loading.is_path`` tells files from names). ``read``: also read a weight file as
    ``vitzoo.load`` would (an image, a text, a truncated file, NaN weights: one line now, not a failed run later)."""
    if is_path(name):
        check_overrides(None, img_size)
        weight_file(name)
        if read:
            source_config(name, img_size=img_size)
    else:
        resolve_config(name, img_size=img_size)


def source_config(name: str, *, img_size: int | None = None) -> tuple[str, ModelConfig]:
    """(display name, architecture) of a registry name (``arch``, ``arch.tag``) or of a weight file (read and
    converted in memory, as ``vitzoo.load`` does; nothing is built)."""
    if not is_path(name):
        spec, weights, config = resolve_config(name, img_size=img_size)
        return (spec.name if weights is None else f"{spec.name}.{weights.tag}"), config
    check_overrides(None, img_size)
    converted, display, _ = load_converted(weight_file(name))
    config = converted.config
    if img_size is not None and img_size != config.img_size:
        try:
            config = config.replace(img_size=img_size)
        except ValueError as e:
            raise ConfigError(f"{display}: {e}") from None
    return display, config
