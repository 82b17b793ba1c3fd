"""Name -> model: build architectures from the registry, and describe them as plain data."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vitzoo.errors import ConfigError
from vitzoo.models import BiTConfig, ModelConfig, ViTConfig, build_model
from vitzoo.zoo.analytic import count_macs, count_params
from vitzoo.zoo.catalog import REGISTRY
from vitzoo.zoo.registry import HubFile, ModelSpec, Source, Weights, describe_preprocess


def list_models(pattern: str | None = None) -> list[str]:
    """Registered architecture names, optionally filtered by a shell pattern such as ``"vit-*"``."""
    return REGISTRY.names(pattern)


def get_spec(name: str) -> ModelSpec:
    """The registry entry of ``arch`` or ``arch.tag``; unknown names raise ``UnknownModelError`` with hints."""
    return REGISTRY.get(name)


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
    from vitzoo.measure.peak import available_ram

    free = available_ram()
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


def create(name: str, *, num_classes: int | None = None, img_size: int | None = None) -> nn.Module:
    """A randomly initialised model: the architecture ``load(name)`` returns, without its weights.

    ``name`` is ``arch`` or ``arch.tag``; resolution and classes default to those of the (default) tag.
    Honours the current default device, so ``with torch.device("meta"): create(...)`` allocates nothing.
    """
    spec, _, config = resolve_config(name, num_classes=num_classes, img_size=img_size)
    if torch.get_default_device().type == "cpu":
        check_memory(config, spec.name)
    return build_model(config)


def _arch_fields(config: ModelConfig) -> dict[str, Any]:
    if isinstance(config, BiTConfig):
        return {"layers": list(config.layers), "width_factor": config.width_factor}
    assert isinstance(config, ViTConfig)
    return {
        "patch": config.patch_size,
        "width": config.width,
        "depth": config.depth,
        "heads": config.num_heads,
        "mlp_dim": config.mlp_dim,
        "classifier": config.classifier,
        "tokens": config.seq_len,
        "hybrid_layers": None if config.backbone is None else list(config.backbone.layers),
    }


def source_info(source: Source) -> dict[str, Any]:
    """One source of a checkpoint as plain data: kind, where, format."""
    if isinstance(source, HubFile):
        return {"kind": "hub", "repo": source.repo_id, "file": source.filename, "revision": source.revision,
                "format": source.format, "label": source.label}  # fmt: skip
    return {"kind": "url", "url": source.url, "format": source.format, "label": source.label}


def weights_info(spec: ModelSpec, weights: Weights) -> dict[str, Any]:
    """One checkpoint as plain data (JSON-serialisable)."""
    config = spec.config_for(weights)
    pp = weights.preprocess
    hub, acc = weights.hub, weights.accuracy
    first = weights.sources[0]
    return {
        "name": f"{spec.name}.{weights.tag}",
        "tag": weights.tag,
        "default": weights.tag == spec.default_tag,
        "pretrain": weights.pretrain,
        "img_size": weights.img_size,
        "num_classes": weights.num_classes,
        "params": count_params(config),
        "gmacs": count_macs(config) / 1e9,
        "top1": None if acc is None else acc.top1,
        "top1_source": None if acc is None else acc.source,
        "top1_protocol": None if acc is None else acc.protocol,
        "accuracies": [{"top1": a.top1, "source": a.source, "protocol": a.protocol} for a in weights.accuracies],
        "hub_repo": None if hub is None else hub.repo_id,
        "hub_file": None if hub is None else hub.filename,
        "hub_revision": None if hub is None else hub.revision,
        "format": first.format,
        "url": weights.url,
        "sources": [source_info(s) for s in weights.sources],
        "preprocess": {
            "description": describe_preprocess(pp),
            "resize": pp.resize,
            "crop_pct": pp.crop_pct,
            "interpolation": pp.interpolation,
            "mean": list(pp.mean),
            "std": list(pp.std),
        },
        "representation_size": weights.representation_size,
        "zero_head": weights.zero_head,
        "notes": weights.notes,
    }


def describe(name: str) -> dict[str, Any]:
    """An architecture as plain data: its default model (params, GMACs, accuracy) and all its tags."""
    spec = get_spec(name)
    config = spec.default_config
    default = spec.get_weights()
    acc = None if default is None else default.accuracy
    return {
        "name": spec.name,
        "title": spec.title,
        "family": spec.family,
        "params": count_params(config),
        "img_size": config.img_size,
        "gmacs": count_macs(config) / 1e9,
        "default_tag": spec.default_tag,
        "top1": None if acc is None else acc.top1,
        "top1_source": None if acc is None else acc.source,
        "source": spec.source,
        **_arch_fields(config),
        "tags": [weights_info(spec, w) for w in spec.weights],
    }
