"""The zoo as plain data: an architecture and its checkpoints described for tables and JSON (no torch)."""

from __future__ import annotations

from typing import Any

from vitzoo.zoo.analytic import count_macs, count_params
from vitzoo.zoo.configs import BiTConfig, ModelConfig, ViTConfig
from vitzoo.zoo.lookup import get_spec
from vitzoo.zoo.preprocess import describe_preprocess
from vitzoo.zoo.registry import HubFile, ModelSpec, Source, Weights
from vitzoo.zoo.timm_results import timm_name, timm_results


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
        "name": spec.full_name(weights),
        "tag": weights.tag,
        "default": weights.tag == spec.default_tag,
        "pretrain": weights.pretrain,
        "img_size": weights.img_size,
        "num_classes": weights.num_classes,
        "label_space": weights.label_space,
        "params": count_params(config),
        "gmacs": count_macs(config) / 1e9,
        "top1": None if acc is None else acc.top1,
        "top1_source": None if acc is None else acc.source,
        "top1_protocol": None if acc is None else acc.protocol,
        "accuracies": [{"top1": a.top1, "source": a.source, "protocol": a.protocol} for a in weights.accuracies],
        "timm_name": timm_name(weights),
        "timm_results": {d: {"top1": t1, "top5": t5} for d, (t1, t5) in timm_results(weights).items()},
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
