"""Names -> registry entries and configs: the lookups every entry point makes before any work (no torch).

``list_models`` and ``get_spec`` answer what exists; ``resolve_config`` gives the architecture a name (with
overrides) stands for; ``check_memory`` refuses, from the closed-form parameter count, a model that cannot fit.
"""

from __future__ import annotations

from collections.abc import Iterable

from vitzoo import machine
from vitzoo.errors import ConfigError
from vitzoo.zoo.analytic import count_params
from vitzoo.zoo.catalog import REGISTRY
from vitzoo.zoo.configs import ModelConfig
from vitzoo.zoo.registry import ModelSpec, Weights


def list_models(pattern: str | None = None) -> list[str]:
    """Registered architecture names, optionally filtered by a shell pattern such as ``"vit-*"``."""
    return REGISTRY.names(pattern)


def get_spec(name: str) -> ModelSpec:
    """The registry entry of ``arch`` or ``arch.tag``; unknown names raise ``UnknownModelError`` with hints."""
    return REGISTRY.get(name)


def is_pattern(name: str) -> bool:
    """Whether a name's architecture part is a shell pattern (``vit-b*``, ``vit-?16.augreg-in21k``)."""
    return any(c in name.partition(".")[0] for c in "*?[")


def expand_names(names: Iterable[str]) -> list[str]:
    """Each pattern replaced by the architectures it matches, in registry order, keeping its ``.tag``; other names
    as they are. ConfigError for a pattern that matches nothing."""
    out: list[str] = []
    for name in names:
        arch, dot, tag = name.partition(".")
        matches = REGISTRY.names(arch) if is_pattern(name) else [arch]
        if not matches:
            raise ConfigError(f"no model matches {arch!r}; see `vitzoo list`")
        out += [f"{a}{dot}{tag}" for a in matches]
    return out


def check_overrides(num_classes: int | None, img_size: int | None) -> None:
    """Reject a class count or resolution no model can have (one clear line)."""
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 0):
        raise ConfigError(f"num_classes must be an integer >= 0, not {num_classes!r}")
    if img_size is not None and (not isinstance(img_size, int) or img_size <= 0):
        raise ConfigError(f"img_size must be a positive integer, not {img_size!r}")


def check_memory(config: ModelConfig, label: str, copies: int = 1) -> None:
    """Refuse, with one line, a model whose float32 weights would not fit in the RAM available now.

    The size comes from the closed-form parameter count (``vitzoo.zoo.analytic``), so nothing is allocated to find
    out; ``copies`` is how many float32 copies of the weights the operation holds at once (converting and
    saving: 2). Where the available memory is unknown, nothing is checked.
    """
    free = machine.available_ram()
    params = count_params(config)
    need = params * 4 * copies
    if free is not None and need > free:
        raise ConfigError(
            f"{label} at img_size={config.img_size} has {params:,} parameters: about {_size(need)} of memory "
            f"needed, {_size(free)} available; choose a smaller img_size"
        )


def _size(n: int) -> str:
    """Bytes as MiB or GiB."""
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def resolve_config(
    name: str, *, num_classes: int | None = None, img_size: int | None = None
) -> tuple[ModelSpec, Weights | None, ModelConfig]:
    """The spec, the weights (default tag if none named) and the config they describe, with overrides."""
    check_overrides(num_classes, img_size)
    spec, weights = REGISTRY.resolve(name)
    config = spec.config_for(weights)
    if num_classes is not None:
        config = config.replace(num_classes=num_classes)
    if img_size is not None:
        try:
            config = config.replace(img_size=img_size)
        except ValueError as e:
            raise ConfigError(f"{spec.name}: {e}") from None
    return spec, weights, config
