"""Test helper: write a canonical state dict back in the original JAX layouts (vit_jax and big_transfer .npz).

Written independently of vitzoo.weights.convert (from the layouts vit_jax's ``models_vit.py`` and big_transfer's
``bit_jax/models.py`` give their parameters), so that model -> npz -> convert is a real round trip of the converter.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().numpy()


def _hwio(w: torch.Tensor) -> np.ndarray:
    return _np(w.permute(2, 3, 1, 0))  # OIHW -> HWIO


def vit_jax_arrays(sd: dict[str, torch.Tensor], heads: int, *, linen: bool = False, gn_4d: bool = False) -> dict:
    """Canonical ViT/hybrid weights -> vit_jax param names (pre-Linen numbering unless ``linen``)."""
    mha, ln2, mlp = ("MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0") if linen else (
        "MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3")  # fmt: skip
    out: dict[str, np.ndarray] = {}
    D = sd["pos_embed"].shape[-1]
    for key, t in sd.items():
        if key == "patch_embed.proj.weight":
            out["embedding/kernel"] = _hwio(t)
        elif key == "patch_embed.proj.bias":
            out["embedding/bias"] = _np(t)
        elif key == "cls_token":
            out["cls"] = _np(t)
        elif key == "pos_embed":
            out["Transformer/posembed_input/pos_embedding"] = _np(t)
        elif key.startswith("norm."):
            out[f"Transformer/encoder_norm/{'scale' if key.endswith('weight') else 'bias'}"] = _np(t)
        elif key.startswith(("head.", "pre_logits.fc.")):
            name = "head" if key.startswith("head.") else "pre_logits"
            out[f"{name}/{'kernel' if key.endswith('weight') else 'bias'}"] = _np(t.t() if t.ndim == 2 else t)
        elif m := re.fullmatch(r"blocks\.(\d+)\.(.+)", key):
            b, rest = f"Transformer/encoderblock_{m.group(1)}/", m.group(2)
            leaf = "scale" if rest.endswith("weight") else "bias"
            if rest.startswith("norm1"):
                out[f"{b}LayerNorm_0/{leaf}"] = _np(t)
            elif rest.startswith("norm2"):
                out[f"{b}{ln2}/{leaf}"] = _np(t)
            elif rest.startswith("mlp.fc"):
                j = int(rest[6]) - 1
                out[f"{b}{mlp}/Dense_{j}/{'kernel' if rest.endswith('weight') else 'bias'}"] = _np(
                    t.t() if t.ndim == 2 else t
                )
            elif rest == "attn.qkv.weight":
                for name, part in zip(("query", "key", "value"), t.chunk(3), strict=True):
                    out[f"{b}{mha}/{name}/kernel"] = _np(part.t().reshape(D, heads, D // heads))
            elif rest == "attn.qkv.bias":
                for name, part in zip(("query", "key", "value"), t.chunk(3), strict=True):
                    out[f"{b}{mha}/{name}/bias"] = _np(part.reshape(heads, D // heads))
            elif rest == "attn.proj.weight":
                out[f"{b}{mha}/out/kernel"] = _np(t.t().reshape(heads, D // heads, D))
            elif rest == "attn.proj.bias":
                out[f"{b}{mha}/out/bias"] = _np(t)
        elif key.startswith("patch_embed.backbone."):
            name, value = _hybrid_name(key.removeprefix("patch_embed.backbone."), t)
            out[name] = value.reshape(1, 1, 1, -1) if gn_4d and value.ndim == 1 else value
        else:
            raise KeyError(key)
    return out


def _hybrid_name(key: str, t: torch.Tensor) -> tuple[str, np.ndarray]:
    leaf = {"weight": "scale", "bias": "bias"}[key.rsplit(".", 1)[1]]
    if key.startswith("stem."):
        return ("conv_root/kernel", _hwio(t)) if ".conv." in key else (f"gn_root/{leaf}", _np(t))
    m = re.fullmatch(r"stages\.(\d+)\.blocks\.(\d+)\.(downsample\.)?(conv|norm)(\d?)\.(weight|bias)", key)
    s, u, proj, kind, k = int(m.group(1)) + 1, int(m.group(2)) + 1, m.group(3), m.group(4), m.group(5)
    suffix = "_proj" if proj else k
    if kind == "conv":
        return f"block{s}/unit{u}/conv{suffix}/kernel", _hwio(t)
    return f"block{s}/unit{u}/gn{suffix}/{leaf}", _np(t)


def bit_jax_arrays(sd: dict[str, torch.Tensor]) -> dict:
    """Canonical BiT weights -> big_transfer ``resnet/...`` names."""
    out: dict[str, np.ndarray] = {}
    for key, t in sd.items():
        if key == "stem.conv.weight":
            out["resnet/root_block/standardized_conv2d/kernel"] = _hwio(t)
        elif key.startswith("norm."):
            out[f"resnet/group_norm/{'gamma' if key.endswith('weight') else 'beta'}"] = _np(t)
        elif key == "head.weight":
            out["resnet/head/conv2d/kernel"] = _np(t.t())[None, None]
        elif key == "head.bias":
            out["resnet/head/conv2d/bias"] = _np(t)
        else:
            m = re.fullmatch(r"stages\.(\d+)\.blocks\.(\d+)\.(downsample\.conv|conv\d|norm\d)\.(weight|bias)", key)
            s, u, part = int(m.group(1)) + 1, int(m.group(2)) + 1, m.group(3)
            b = f"resnet/block{s}/unit{u:02d}/"
            if part == "downsample.conv":
                out[b + "a/proj/standardized_conv2d/kernel"] = _hwio(t)
            else:
                letter = "abc"[int(part[-1]) - 1]
                if part.startswith("conv"):
                    out[f"{b}{letter}/standardized_conv2d/kernel"] = _hwio(t)
                else:
                    out[f"{b}{letter}/group_norm/{'gamma' if m.group(4) == 'weight' else 'beta'}"] = _np(t)
    return out


def save_npz(arrays: dict, path: Path) -> Path:
    np.savez(path, **arrays)
    return path
