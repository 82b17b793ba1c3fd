"""Make tests/data/timm_keys.json: the state-dict keys and shapes of timm's own models, for small configurations.

timm is not a test dependency (nor installable where this was written), and vitzoo's timm key map is close to the
identity, so a round trip through it proves little. This script writes down what timm's modules are called, read
from timm's source (``huggingface/pytorch-image-models``, the files and commits in ``SOURCES``), as plain Python
that imports neither vitzoo nor timm: each function below mirrors the ``__init__`` it names, one submodule or
parameter at a time, in ``state_dict()`` order (a module's own parameters first, then its submodules in
registration order). Modules without parameters (dropout, activations, pooling, ``nn.Identity`` placeholders) are
omitted, as they are from a state dict. Run it from the repository root to regenerate the fixture (deterministic):

    python tests/data/make_timm_keys_fixture.py

tests/test_convert.py checks vitzoo's ``canonical_to_timm`` / ``timm_to_canonical`` and its timm reader against it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

OUT = Path(__file__).with_name("timm_keys.json")

REPO = "huggingface/pytorch-image-models"
SOURCES = {  # file -> the commit read (the stored versions differ by file; the names below are stable across them)
    "timm/models/vision_transformer.py": "0041cb7ba4ab3b8b3bce5bf105300f0ee57ffc22",
    "timm/layers/patch_embed.py": "a10ed118c94d767ca9c2e1eaaa177fe993c1216d",
    "timm/layers/attention.py": "f354b305260bfd7c03b44421eb83f6350216d619",
    "timm/layers/mlp.py": "3591fe90bad4686b8d0e9b2cf300387dad665b5a",
    "timm/models/vision_transformer_hybrid.py": "656757d26b78cbf35f526b454e4333b3cfda7012",
    "timm/layers/hybrid_embed.py": "392b78aee7c30c7e8cdd321aeb7a0d9818bfedee",
    "timm/models/resnetv2.py": "809c7bb1ec53d1386494e7703ac9077981732195",
    "timm/layers/std_conv.py": "e98c93264cde1657b188f974dc928b9d73303b18",
    "timm/layers/norm_act.py": "0173a139a2c66db3a41ebfe1d8ac4fb02483642e",
    "timm/layers/classifier.py": "bd5f9a341f605d51608db048106ce51b088a8c68",
}

Keys = dict[str, list[int]]


def _linear(keys: Keys, name: str, fan_in: int, fan_out: int) -> None:
    """``nn.Linear(fan_in, fan_out)`` (bias=True): weight (out, in), bias (out)."""
    keys[f"{name}.weight"] = [fan_out, fan_in]
    keys[f"{name}.bias"] = [fan_out]


def _conv(keys: Keys, name: str, cin: int, cout: int, kernel: int, bias: bool) -> None:
    """``nn.Conv2d`` / ``StdConv2d`` (std_conv.py: ``bias=False`` by default): weight (out, in, k, k)."""
    keys[f"{name}.weight"] = [cout, cin, kernel, kernel]
    if bias:
        keys[f"{name}.bias"] = [cout]


def _norm(keys: Keys, name: str, channels: int) -> None:
    """``LayerNorm`` / ``GroupNormAct`` (an ``nn.GroupNorm`` subclass, norm_act.py): weight, bias (channels)."""
    keys[f"{name}.weight"] = [channels]
    keys[f"{name}.bias"] = [channels]


def make_div(v: float, divisor: int = 8) -> int:
    """resnetv2.py ``make_div``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def resnetv2(keys: Keys, prefix: str, layers: tuple[int, ...], width_factor: int, preact: bool,
             num_classes: int) -> int:  # fmt: skip
    """resnetv2.py ``ResNetV2.__init__`` (channels (256, 512, 1024, 2048), stem_chs 64); returns num_features.

    preact=True: BiT (``PreActBottleneck``, final ``norm``, ``ClassifierHead(use_conv=True)``: a 1x1 conv ``head.fc``).
    preact=False: the hybrid backbone (``Bottleneck``, stem and projection norms, ``norm`` and head Identity since
    ``_resnetv2`` passes num_classes=0, global_pool='').
    """
    stem = make_div(64 * width_factor)
    _create_stem(keys, f"{prefix}stem.", stem, preact)
    prev = stem
    for s, (depth, channels) in enumerate(zip(layers, (256, 512, 1024, 2048), strict=False)):
        out = make_div(channels * width_factor)
        for b in range(depth):  # ResNetStage: proj_layer=DownsampleConv for block 0 only
            name = f"{prefix}stages.{s}.blocks.{b}."
            mid = make_div(out * 0.25)
            if b == 0:  # DownsampleConv: conv, then norm (apply_act=False) unless preact (Identity)
                _conv(keys, name + "downsample.conv", prev, out, 1, bias=False)
                if not preact:
                    _norm(keys, name + "downsample.norm", out)
            if preact:  # PreActBottleneck: norm1(in) conv1 norm2 conv2 norm3 conv3
                _norm(keys, name + "norm1", prev)
                _conv(keys, name + "conv1", prev, mid, 1, bias=False)
                _norm(keys, name + "norm2", mid)
                _conv(keys, name + "conv2", mid, mid, 3, bias=False)
                _norm(keys, name + "norm3", mid)
                _conv(keys, name + "conv3", mid, out, 1, bias=False)
            else:  # Bottleneck: conv1 norm1(mid) conv2 norm2 conv3 norm3(out)
                _conv(keys, name + "conv1", prev, mid, 1, bias=False)
                _norm(keys, name + "norm1", mid)
                _conv(keys, name + "conv2", mid, mid, 3, bias=False)
                _norm(keys, name + "norm2", mid)
                _conv(keys, name + "conv3", mid, out, 1, bias=False)
                _norm(keys, name + "norm3", out)
            prev = out
    if preact:
        _norm(keys, f"{prefix}norm", prev)
        if num_classes > 0:  # classifier.py _create_fc(use_conv=True): Conv2d(features, classes, 1, bias=True)
            _conv(keys, f"{prefix}head.fc", prev, num_classes, 1, bias=True)
    return prev


def _create_stem(keys: Keys, prefix: str, out: int, preact: bool) -> None:
    """resnetv2.py ``create_resnetv2_stem`` (7x7 stem): conv (StdConv, no bias), norm unless preact; pad/pool."""
    _conv(keys, prefix + "conv", 3, out, 7, bias=False)
    if not preact:
        _norm(keys, prefix + "norm", out)


def vision_transformer(img_size: int, patch_size: int, embed_dim: int, depth: int, mlp_ratio: float, num_classes: int,
                       class_token: bool = True, global_pool: str = "token", fc_norm: bool | None = None,
                       hybrid_layers: tuple[int, ...] | None = None) -> Keys:  # fmt: skip
    """vision_transformer.py ``VisionTransformer.__init__`` with its defaults (qkv_bias=True, pre_norm=False,
    final_norm=True, reg_tokens=0, no layer scale, learned pos_embed) and ``Block`` / ``Attention`` / ``Mlp``.

    ``hybrid_layers``: vision_transformer_hybrid.py ``_resnetv2(layers)`` inside a ``HybridEmbed``
    (hybrid_embed.py): ``patch_embed.backbone`` is a ``ResNetV2(preact=False, stem_type='same')``, or for
    ``layers=()`` the bare stem ``Sequential`` (so ``patch_embed.backbone.conv``, no ``stem.``).
    """
    embed: Keys = {}
    if hybrid_layers is None:  # PatchEmbed: proj Conv2d(3, D, P, stride P, bias=not pre_norm), norm Identity
        _conv(embed, "patch_embed.proj", 3, embed_dim, patch_size, bias=True)
        grid = img_size // patch_size
    else:  # HybridEmbed: backbone, then proj Conv2d(feature_dim, D, P, stride P, bias=True)
        if hybrid_layers:
            feature_dim = resnetv2(embed, "patch_embed.backbone.", hybrid_layers, 1, preact=False, num_classes=0)
        else:
            feature_dim = 64
            _create_stem(embed, "patch_embed.backbone.", feature_dim, preact=False)
        _conv(embed, "patch_embed.proj", feature_dim, embed_dim, patch_size, bias=True)
        feature = -(-img_size // 2)  # StdConv2dSame 7x7/2, TF 'SAME': ceil
        feature = -(-feature // 2)  # max-pool 3x3/2 'same'
        for _ in (hybrid_layers or ())[1:]:  # stride 2 in every stage but the first
            feature = -(-feature // 2)
        grid = feature // patch_size
    keys: Keys = {}  # the model's own parameters come before its submodules' in a state dict
    num_prefix = 1 if class_token else 0
    if class_token:
        keys["cls_token"] = [1, 1, embed_dim]
    keys["pos_embed"] = [1, grid * grid + num_prefix, embed_dim]  # no_embed_class=False
    keys.update(embed)
    hidden = int(embed_dim * mlp_ratio)
    for i in range(depth):  # Block: norm1, attn (qkv, proj), norm2, mlp (fc1, fc2)
        _norm(keys, f"blocks.{i}.norm1", embed_dim)
        _linear(keys, f"blocks.{i}.attn.qkv", embed_dim, 3 * embed_dim)
        _linear(keys, f"blocks.{i}.attn.proj", embed_dim, embed_dim)
        _norm(keys, f"blocks.{i}.norm2", embed_dim)
        _linear(keys, f"blocks.{i}.mlp.fc1", embed_dim, hidden)
        _linear(keys, f"blocks.{i}.mlp.fc2", hidden, embed_dim)
    use_fc_norm = global_pool in ("avg", "avgmax", "max") if fc_norm is None else fc_norm
    _norm(keys, "fc_norm" if use_fc_norm else "norm", embed_dim)
    if num_classes > 0:
        _linear(keys, "head", embed_dim, num_classes)
    return keys


def bit_resnetv2(layers: tuple[int, ...], width_factor: int, num_classes: int) -> Keys:
    """resnetv2.py ``_create_resnetv2_bit``: ``ResNetV2(layers, width_factor=..., stem_type='fixed')``, preact."""
    keys: Keys = {}
    resnetv2(keys, "", layers, width_factor, preact=True, num_classes=num_classes)
    return keys


# name -> (the timm construction in words, vitzoo's equivalent config as keyword arguments, keys)
CASES = {
    "vit_d2_w64_h2_p16_i32_c10": (
        "VisionTransformer(img_size=32, patch_size=16, embed_dim=64, depth=2, num_heads=2, mlp_ratio=4.0, "
        "num_classes=10)",
        {
            "family": "vit",
            "patch_size": 16,
            "width": 64,
            "depth": 2,
            "num_heads": 2,
            "mlp_dim": 256,
            "img_size": 32,
            "num_classes": 10,
        },
        vision_transformer(32, 16, 64, 2, 4.0, 10),
    ),
    "vit_gap_d1_w64_h2_p16_i32_c10": (
        "VisionTransformer(img_size=32, patch_size=16, embed_dim=64, depth=1, num_heads=2, mlp_ratio=4.0, "
        "num_classes=10, class_token=False, global_pool='avg', fc_norm=False)  (vitzoo's export kwargs for gap)",
        {
            "family": "vit",
            "patch_size": 16,
            "width": 64,
            "depth": 1,
            "num_heads": 2,
            "mlp_dim": 256,
            "img_size": 32,
            "num_classes": 10,
            "classifier": "gap",
        },
        vision_transformer(32, 16, 64, 1, 4.0, 10, class_token=False, global_pool="avg", fc_norm=False),
    ),
    "hybrid_stem_only_d1_w64_p8_i64_c10": (
        "vit_tiny_r_s16_p8_224's construction: _resnetv2(layers=()) in HybridEmbed, VisionTransformer(img_size=64, "
        "patch_size=8, embed_dim=64, depth=1, num_heads=2, mlp_ratio=4.0, num_classes=10)",
        {
            "family": "vit",
            "patch_size": 8,
            "width": 64,
            "depth": 1,
            "num_heads": 2,
            "mlp_dim": 256,
            "img_size": 64,
            "num_classes": 10,
            "backbone_layers": [],
        },
        vision_transformer(64, 8, 64, 1, 4.0, 10, hybrid_layers=()),
    ),
    "hybrid_r2x1_d1_w64_p1_i64_c10": (
        "vit_small_r26_s32_224's construction with _resnetv2(layers=(2, 1)) in HybridEmbed, "
        "VisionTransformer(img_size=64, patch_size=1, embed_dim=64, depth=1, num_heads=2, mlp_ratio=4.0, "
        "num_classes=10)",
        {
            "family": "vit",
            "patch_size": 1,
            "width": 64,
            "depth": 1,
            "num_heads": 2,
            "mlp_dim": 256,
            "img_size": 64,
            "num_classes": 10,
            "backbone_layers": [2, 1],
        },
        vision_transformer(64, 1, 64, 1, 4.0, 10, hybrid_layers=(2, 1)),
    ),
    "bit_resnetv2_1111x1_c10": (
        "resnetv2_50x1_bit's construction (_create_resnetv2_bit: stem_type='fixed', StdConv2d) with "
        "layers=[1, 1, 1, 1], width_factor=1, num_classes=10",
        {"family": "bit", "layers": [1, 1, 1, 1], "width_factor": 1, "num_classes": 10},
        bit_resnetv2((1, 1, 1, 1), 1, 10),
    ),
}


def main() -> None:
    fixture = {
        "source": {
            "repository": REPO,
            "files": SOURCES,
            "how": "written down by reading these files (module attribute names, parameter shapes, registration "
            "order), not by running timm; see tests/data/make_timm_keys_fixture.py",
        },
        "configs": {
            name: {"timm": timm, "vitzoo": vitzoo, "keys": keys} for name, (timm, vitzoo, keys) in CASES.items()
        },
    }
    text = json.dumps(fixture, indent=1)
    text = re.sub(r"\[[^\[\]{}\"]*\]", lambda m: json.dumps(json.loads(m.group(0))), text)  # a shape on one line
    OUT.write_text(text + "\n")
    print(f"wrote {OUT} ({sum(len(c['keys']) for c in fixture['configs'].values())} keys)")


if __name__ == "__main__":
    main()
