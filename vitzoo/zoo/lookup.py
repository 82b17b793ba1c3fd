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
from vitzoo.zoo.configs import ModelConfig, ViTConfig
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
