"""The PyTorch ports found on the Hub, in both directions: timm and transformers (HF) key layouts.

vitzoo's canonical keys are timm's ViT names, so timm needs only two fixes (BiT's 1x1-conv head, the
stem-only R+Ti/16 backbone). transformers renames everything and stores q, k, v as three Linear layers,
fused here into one qkv projection (rows [q; k; v], as transformers' ``convert_vit_timm_to_pytorch.py`` splits
them). Rules are templates usable both ways: ``{i}`` matches a number, ``{w}`` weight|bias, ``{m}`` a conv/norm name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


_HF_COMMON = [  # canonical <-> transformers ViTModel (ViTForImageClassification adds "vit." to all but the head)
    ("cls_token", "embeddings.cls_token"),
    ("pos_embed", "embeddings.position_embeddings"),
    ("patch_embed.proj.{w}", "embeddings.patch_embeddings.projection.{w}"),
    ("norm.{w}", "layernorm.{w}"),
    ("pre_logits.fc.{w}", "pooler.dense.{w}"),
    ("head.{w}", "classifier.{w}"),
]


@dataclass(frozen=True)
class HFLayout:
    """One spelling of transformers' ViT blocks: the per-block rules and the separate q, k, v projections."""

    rules: list[tuple[str, str]]  # canonical <-> transformers, everything but q/k/v
    qkv: str  # template of one of q, k, v ({n}: one of qkv_names)
    qkv_names: tuple[str, str, str]
    block: str  # regex of a block's prefix, capturing its index


HF_LEGACY = HFLayout(  # transformers < 5, and the files every version writes and the Hub holds
    rules=[
        ("blocks.{i}.norm1.{w}", "encoder.layer.{i}.layernorm_before.{w}"),
        ("blocks.{i}.attn.proj.{w}", "encoder.layer.{i}.attention.output.dense.{w}"),
        ("blocks.{i}.norm2.{w}", "encoder.layer.{i}.layernorm_after.{w}"),
        ("blocks.{i}.mlp.fc1.{w}", "encoder.layer.{i}.intermediate.dense.{w}"),
        ("blocks.{i}.mlp.fc2.{w}", "encoder.layer.{i}.output.dense.{w}"),
        *_HF_COMMON,
    ],
    qkv="encoder.layer.{i}.attention.attention.{n}.{w}",
    qkv_names=("query", "key", "value"),
    block=r"encoder\.layer\.(\d+)\.",
)
HF_V5 = HFLayout(  # transformers >= 5 in memory (``model.state_dict()``; its files keep the legacy names)
    rules=[
        ("blocks.{i}.norm1.{w}", "layers.{i}.layernorm_before.{w}"),
        ("blocks.{i}.attn.proj.{w}", "layers.{i}.attention.o_proj.{w}"),
        ("blocks.{i}.norm2.{w}", "layers.{i}.layernorm_after.{w}"),
        ("blocks.{i}.mlp.fc1.{w}", "layers.{i}.mlp.fc1.{w}"),
        ("blocks.{i}.mlp.fc2.{w}", "layers.{i}.mlp.fc2.{w}"),
        *_HF_COMMON,
    ],
    qkv="layers.{i}.attention.{n}.{w}",
    qkv_names=("q_proj", "k_proj", "v_proj"),
    block=r"layers\.(\d+)\.",
)
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


def hf_layout(keys) -> HFLayout:
    """The transformers spelling a ViT state dict uses (with or without the "vit." prefix)."""
    v5 = any(re.match(HF_V5.block, k.removeprefix("vit.")) for k in keys)
    return HF_V5 if v5 else HF_LEGACY


def transformers_to_canonical(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """HF ViT / ViTModel / BiT state dict (either ViT spelling) -> (canonical state dict, keys left unused)."""
    if any(k.startswith("bit.") for k in tensors):
        mapping = rename(tensors, HF_BIT, reverse=True)
        sd = {mapping[k]: v for k, v in tensors.items() if k in mapping}
        return sd, sorted(set(tensors) - set(mapping))
    plain = {k.removeprefix("vit."): v for k, v in tensors.items()}
    layout = hf_layout(plain)
    mapping = rename(plain, layout.rules, reverse=True)
    sd = {mapping[k]: v for k, v in plain.items() if k in mapping}
    used = set(mapping)
    for i in sorted({int(m.group(1)) for k in plain if (m := re.match(layout.block, k))}):
        for w in ("weight", "bias"):
            names = [layout.qkv.format(i=i, n=n, w=w) for n in layout.qkv_names]
            missing = [n for n in names if n not in plain]
            if missing:
                raise CheckpointError(f"checkpoint lacks {missing[0]!r}")
            sd[f"blocks.{i}.attn.qkv.{w}"] = torch.cat([plain[n] for n in names])
            used.update(names)
    leftover = sorted({k for k in tensors if k.removeprefix("vit.") not in used})
    return sd, leftover


def canonical_to_transformers(
    state_dict: dict[str, torch.Tensor], bit: bool, layout: HFLayout = HF_LEGACY
) -> dict[str, torch.Tensor]:
    """Canonical -> the layout of ``ViTForImageClassification`` (or ``ViTModel`` without a head) / BiT.

    ``layout``: ``HF_LEGACY`` for files (what every transformers version reads), ``HF_V5`` to
    ``load_state_dict`` into a transformers >= 5 model in memory (``hf_layout(model.state_dict())`` tells).
    """
    if bit:
        mapping = rename(state_dict, HF_BIT)
        return {mapping[k]: v for k, v in state_dict.items()}
    prefix = "vit." if "head.weight" in state_dict else ""
    mapping = rename(state_dict, layout.rules)
    out = {}
    for k, v in state_dict.items():
        if m := re.fullmatch(r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)", k):
            for n, part in zip(layout.qkv_names, v.chunk(3), strict=True):
                out[prefix + layout.qkv.format(i=m.group(1), n=n, w=m.group(2))] = part.contiguous()
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
