"""The PyTorch ports found on the Hub, in both directions: timm and transformers (HF) key layouts.

vitzoo's canonical keys are timm's ViT names, so timm needs only two fixes (BiT's 1x1-conv head, the
stem-only R+Ti/16 backbone). transformers renames everything and stores q, k, v as three Linear layers,
fused here into one qkv projection (rows [q; k; v], formats.md §4.2). Rules are templates usable both ways:
``{i}`` matches a number, ``{w}`` weight|bias, ``{m}`` a conv/norm name.
"""

from __future__ import annotations

import re

import torch

from vitzoo.weights.checkpoint import CheckpointError

_HOLES = {"i": r"\d+", "s": r"\d+", "u": r"\d+", "w": r"weight|bias", "m": r"(?:conv|norm)[123]"}


def _regex(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w)\}", template)
    out = "".join(re.escape(p) if n % 2 == 0 else f"(?P<{p}>{_HOLES[p]})" for n, p in enumerate(parts))
    return re.compile(out + r"\Z")


def rename(keys, rules: list[tuple[str, str]], reverse: bool = False) -> dict[str, str]:
    """Map keys canonical -> foreign (``reverse``: foreign -> canonical) by the first matching rule; {old: new}."""
    pairs = [(foreign, canonical) if reverse else (canonical, foreign) for canonical, foreign in rules]
    compiled = [(_regex(pattern), template) for pattern, template in pairs]
    out = {}
    for key in keys:
        for pattern, template in compiled:
            if m := pattern.match(key):
                out[key] = template.format(**m.groupdict())
                break
    return out


HF_VIT = [  # canonical <-> transformers ViTModel (ViTForImageClassification adds "vit." to all but the head)
    ("cls_token", "embeddings.cls_token"),
    ("pos_embed", "embeddings.position_embeddings"),
    ("patch_embed.proj.{w}", "embeddings.patch_embeddings.projection.{w}"),
    ("blocks.{i}.norm1.{w}", "encoder.layer.{i}.layernorm_before.{w}"),
    ("blocks.{i}.attn.proj.{w}", "encoder.layer.{i}.attention.output.dense.{w}"),
    ("blocks.{i}.norm2.{w}", "encoder.layer.{i}.layernorm_after.{w}"),
    ("blocks.{i}.mlp.fc1.{w}", "encoder.layer.{i}.intermediate.dense.{w}"),
    ("blocks.{i}.mlp.fc2.{w}", "encoder.layer.{i}.output.dense.{w}"),
    ("norm.{w}", "layernorm.{w}"),
    ("pre_logits.fc.{w}", "pooler.dense.{w}"),
    ("head.{w}", "classifier.{w}"),
]
HF_QKV = "encoder.layer.{i}.attention.attention.{n}.{w}"
HF_BIT = [
    ("stem.conv.weight", "bit.embedder.convolution.weight"),
    ("stages.{s}.blocks.{u}.{m}.weight", "bit.encoder.stages.{s}.layers.{u}.{m}.weight"),
    ("stages.{s}.blocks.{u}.{m}.bias", "bit.encoder.stages.{s}.layers.{u}.{m}.bias"),
    ("stages.{s}.blocks.{u}.downsample.conv.weight", "bit.encoder.stages.{s}.layers.{u}.downsample.conv.weight"),
    ("norm.{w}", "bit.norm.{w}"),
    ("head.{w}", "classifier.1.{w}"),
]


def is_transformers(keys: set[str]) -> bool:
    """HF ViT (with or without the "vit." prefix) or HF BiT key names."""
    return any(k.startswith(("vit.embeddings.", "embeddings.patch_embeddings.", "bit.embedder.")) for k in keys)


def is_timm(keys: set[str]) -> bool:
    """timm (= canonical) ViT, hybrid or BiT key names."""
    return "patch_embed.proj.weight" in keys or (
        "stem.conv.weight" in keys and "stages.0.blocks.0.conv1.weight" in keys
    )


def transformers_to_canonical(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """HF ViT / ViTModel / BiT state dict -> (canonical state dict, keys left unused)."""
    if any(k.startswith("bit.") for k in tensors):
        mapping = rename(tensors, HF_BIT, reverse=True)
        sd = {mapping[k]: v for k, v in tensors.items() if k in mapping}
        return sd, sorted(set(tensors) - set(mapping))
    plain = {k.removeprefix("vit."): v for k, v in tensors.items()}
    mapping = rename(plain, HF_VIT, reverse=True)
    sd = {mapping[k]: v for k, v in plain.items() if k in mapping}
    used = set(mapping)
    for i in sorted({int(m.group(1)) for k in plain if (m := re.match(r"encoder\.layer\.(\d+)\.", k))}):
        for w in ("weight", "bias"):
            names = [HF_QKV.format(i=i, n=n, w=w) for n in ("query", "key", "value")]
            missing = [n for n in names if n not in plain]
            if missing:
                raise CheckpointError(f"checkpoint lacks {missing[0]!r}")
            sd[f"blocks.{i}.attn.qkv.{w}"] = torch.cat([plain[n] for n in names])
            used.update(names)
    leftover = sorted({k for k in tensors if k.removeprefix("vit.") not in used})
    return sd, leftover


def canonical_to_transformers(state_dict: dict[str, torch.Tensor], bit: bool) -> dict[str, torch.Tensor]:
    """Canonical -> the layout of ``ViTForImageClassification`` (or ``ViTModel`` without a head) / BiT."""
    if bit:
        mapping = rename(state_dict, HF_BIT)
        return {mapping[k]: v for k, v in state_dict.items()}
    prefix = "vit." if "head.weight" in state_dict else ""
    mapping = rename(state_dict, HF_VIT)
    out = {}
    for k, v in state_dict.items():
        if m := re.fullmatch(r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)", k):
            for n, part in zip(("query", "key", "value"), v.chunk(3), strict=True):
                out[prefix + HF_QKV.format(i=m.group(1), n=n, w=m.group(2))] = part.contiguous()
        elif k.startswith("head."):
            out[mapping[k]] = v
        else:
            out[prefix + mapping[k]] = v
    return out


def timm_to_canonical(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm ViT / hybrid / BiT -> canonical: BiT's conv head to a Linear, the stem-only hybrid's names."""
    sd = {}
    for k, v in tensors.items():
        if k in ("head.fc.weight", "head.fc.bias"):
            k, v = k.replace(".fc", ""), v.reshape(v.shape[0], -1) if v.ndim == 4 else v
        elif re.fullmatch(r"patch_embed\.backbone\.(conv|norm)\.(weight|bias)", k):  # R+Ti/16: stem only
            k = k.replace("backbone.", "backbone.stem.")
        sd[k] = v
    return sd


def canonical_to_timm(state_dict: dict[str, torch.Tensor], bit: bool) -> dict[str, torch.Tensor]:
    """Canonical -> timm key layout."""
    out = {}
    stem_only = not any(k.startswith("patch_embed.backbone.stages.") for k in state_dict)
    for k, v in state_dict.items():
        if bit and k.startswith("head."):
            k, v = k.replace("head.", "head.fc."), v[:, :, None, None] if v.ndim == 2 else v
        elif stem_only and k.startswith("patch_embed.backbone.stem."):
            k = k.replace("backbone.stem.", "backbone.")
        out[k] = v
    return out
