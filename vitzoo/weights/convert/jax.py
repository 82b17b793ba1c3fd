"""Original Google JAX checkpoints (vit_jax ViT / hybrid ``.npz``, big_transfer BiT ``.npz``) -> canonical keys.

Layout rules (as vit_jax's ``models_vit.py`` and big_transfer's ``bit_jax/models.py`` store parameters): conv
kernels HWIO -> OIHW; dense kernels (in, out) -> (out, in); attention q/k/v kernels (D, H, hd) are flattened
head-major and fused into one (3D, D) qkv weight; the out kernel (H, hd, D) contracts over (H, hd); GroupNorm params
stored (1, 1, 1, C) are squeezed.
"""

from __future__ import annotations

import re

import torch

from vitzoo.weights.checkpoint import CheckpointError

# Encoder-block submodules, in released (pre-Linen, one counter per parent) and Linen numbering.
PRE_LINEN = {
    "LayerNorm_0": "norm1",
    "MultiHeadDotProductAttention_1": "attn",
    "LayerNorm_2": "norm2",
    "MlpBlock_3": "mlp",
}
LINEN = {"LayerNorm_0": "norm1", "MultiHeadDotProductAttention_0": "attn", "LayerNorm_1": "norm2", "MlpBlock_0": "mlp"}


class Source:
    """The tensors of a checkpoint, remembering which ones a converter used."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors
        self.used: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self.tensors

    def take(self, key: str) -> torch.Tensor:
        """The tensor under ``key``, marked as used."""
        if key not in self.tensors:
            raise CheckpointError(f"checkpoint lacks {key!r}")
        self.used.add(key)
        return self.tensors[key]

    def leftover(self) -> list[str]:
        """Keys no converter rule consumed."""
        return sorted(set(self.tensors) - self.used)


def conv(w: torch.Tensor) -> torch.Tensor:
    """HWIO -> OIHW."""
    return w.permute(3, 2, 0, 1).contiguous()


def dense(w: torch.Tensor) -> torch.Tensor:
    """(in, out) -> (out, in)."""
    return w.t().contiguous()


def squeeze(v: torch.Tensor) -> torch.Tensor:
    """(1, 1, 1, C) or (C,) -> (C,)."""
    return v.reshape(-1).contiguous()


def strip_optimizer(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Unwrap params saved with their optimizer (``opt/target/...``); optimizer state is ignored explicitly."""
    if not any(k.startswith("opt/target/") for k in tensors):
        return tensors, []
    params = {k.removeprefix("opt/target/"): v for k, v in tensors.items() if k.startswith("opt/target/")}
    ignored = sorted(k for k in tensors if not k.startswith("opt/target/"))
    strays = [k for k in ignored if not k.startswith("opt/")]
    if strays:
        raise CheckpointError(f"unexpected keys beside opt/target/: {', '.join(strays[:5])}")
    return params, ignored


def _count(keys, pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    if found and found != set(range(1, max(found) + 1)) and found != set(range(max(found) + 1)):
        raise CheckpointError(f"non-contiguous numbering for {pattern}: {sorted(found)}")
    return len(found)


def vit_jax_to_canonical(src: Source) -> tuple[dict[str, torch.Tensor], int]:
    """A vit_jax ViT/hybrid param tree -> (canonical state dict, number of heads)."""
    keys = list(src.tensors)
    names = PRE_LINEN if any("MultiHeadDotProductAttention_1" in k for k in keys) else LINEN
    inv = {v: k for k, v in names.items()}
    sd: dict[str, torch.Tensor] = {}
    sd["patch_embed.proj.weight"] = conv(src.take("embedding/kernel"))
    sd["patch_embed.proj.bias"] = src.take("embedding/bias")
    D = sd["patch_embed.proj.weight"].shape[0]
    if "cls" in src:
        sd["cls_token"] = src.take("cls").reshape(1, 1, D)
    sd["pos_embed"] = src.take("Transformer/posembed_input/pos_embedding")
    depth = _count(keys, r"Transformer/encoderblock_(\d+)/")
    heads = 0
    for i in range(depth):
        b, t = f"Transformer/encoderblock_{i}/", f"blocks.{i}."
        for ln in ("norm1", "norm2"):
            sd[t + ln + ".weight"] = src.take(f"{b}{inv[ln]}/scale")
            sd[t + ln + ".bias"] = src.take(f"{b}{inv[ln]}/bias")
        a = f"{b}{inv['attn']}/"
        q = src.take(a + "query/kernel")  # (D, H, hd)
        heads = q.shape[1]
        qkv = [q] + [src.take(a + f"{n}/kernel") for n in ("key", "value")]
        sd[t + "attn.qkv.weight"] = torch.cat([k.reshape(D, -1).t() for k in qkv]).contiguous()
        sd[t + "attn.qkv.bias"] = torch.cat([src.take(a + f"{n}/bias").reshape(-1) for n in ("query", "key", "value")])
        out = src.take(a + "out/kernel")  # (H, hd, D)
        sd[t + "attn.proj.weight"] = out.reshape(-1, out.shape[-1]).t().contiguous()
        sd[t + "attn.proj.bias"] = src.take(a + "out/bias")
        for j, fc in ((0, "fc1"), (1, "fc2")):
            sd[f"{t}mlp.{fc}.weight"] = dense(src.take(f"{b}{inv['mlp']}/Dense_{j}/kernel"))
            sd[f"{t}mlp.{fc}.bias"] = src.take(f"{b}{inv['mlp']}/Dense_{j}/bias")
    sd["norm.weight"] = src.take("Transformer/encoder_norm/scale")
    sd["norm.bias"] = src.take("Transformer/encoder_norm/bias")
    if "pre_logits/kernel" in src:
        sd["pre_logits.fc.weight"] = dense(src.take("pre_logits/kernel"))
        sd["pre_logits.fc.bias"] = src.take("pre_logits/bias")
    if "head/kernel" in src:
        sd["head.weight"] = dense(src.take("head/kernel"))
        sd["head.bias"] = src.take("head/bias")
    if "conv_root/kernel" in src:
        sd.update(_hybrid_resnet(src))
    return sd, heads


def _hybrid_resnet(src: Source) -> dict[str, torch.Tensor]:
    """conv_root / gn_root / block{s}/unit{u}/{conv,gn}{1,2,3,_proj} -> patch_embed.backbone.*"""
    p = "patch_embed.backbone."
    sd = {
        p + "stem.conv.weight": conv(src.take("conv_root/kernel")),
        p + "stem.norm.weight": squeeze(src.take("gn_root/scale")),
        p + "stem.norm.bias": squeeze(src.take("gn_root/bias")),
    }
    keys = list(src.tensors)
    for s in range(1, _count(keys, r"block(\d+)/") + 1):
        for u in range(1, _count(keys, rf"block{s}/unit(\d+)/") + 1):
            b, t = f"block{s}/unit{u}/", f"{p}stages.{s - 1}.blocks.{u - 1}."
            for k in ("1", "2", "3", "_proj"):
                if f"{b}conv{k}/kernel" not in src:
                    continue
                tk = "downsample.{}" if k == "_proj" else "{}" + k
                sd[t + tk.format("conv") + ".weight"] = conv(src.take(f"{b}conv{k}/kernel"))
                sd[t + tk.format("norm") + ".weight"] = squeeze(src.take(f"{b}gn{k}/scale"))
                sd[t + tk.format("norm") + ".bias"] = squeeze(src.take(f"{b}gn{k}/bias"))
    return sd


def bit_jax_to_canonical(src: Source) -> dict[str, torch.Tensor]:
    """A big_transfer ResNet-v2 ``.npz`` (``resnet/...`` TF names) -> canonical state dict."""
    # Some files number their convs `standardized_conv2d_<k>`: normalise (as big_vision does).
    renamed = {re.sub(r"standardized_conv2d_\d+", "standardized_conv2d", k): k for k in src.tensors}
    if len(renamed) != len(src.tensors):
        raise CheckpointError("ambiguous standardized_conv2d names in BiT checkpoint")

    def take(key: str) -> torch.Tensor:
        return src.take(renamed.get(key, key))

    r = "resnet/"
    sd = {"stem.conv.weight": conv(take(r + "root_block/standardized_conv2d/kernel"))}
    keys = list(renamed)
    for s in range(1, _count(keys, r"resnet/block(\d+)/") + 1):
        for u in range(1, _count(keys, rf"resnet/block{s}/unit(\d+)/") + 1):
            b, t = f"{r}block{s}/unit{u:02d}/", f"stages.{s - 1}.blocks.{u - 1}."
            for letter, k in (("a", "1"), ("b", "2"), ("c", "3")):
                sd[f"{t}norm{k}.weight"] = squeeze(take(f"{b}{letter}/group_norm/gamma"))
                sd[f"{t}norm{k}.bias"] = squeeze(take(f"{b}{letter}/group_norm/beta"))
                sd[f"{t}conv{k}.weight"] = conv(take(f"{b}{letter}/standardized_conv2d/kernel"))
            if f"{b}a/proj/standardized_conv2d/kernel" in renamed:
                sd[f"{t}downsample.conv.weight"] = conv(take(f"{b}a/proj/standardized_conv2d/kernel"))
    sd["norm.weight"] = squeeze(take(r + "group_norm/gamma"))
    sd["norm.bias"] = squeeze(take(r + "group_norm/beta"))
    if r + "head/conv2d/kernel" in renamed:
        head = take(r + "head/conv2d/kernel")  # (1, 1, F, C)
        sd["head.weight"] = head.reshape(head.shape[-2], head.shape[-1]).t().contiguous()
        sd["head.bias"] = take(r + "head/conv2d/bias")
    return sd
