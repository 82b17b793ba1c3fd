"""Closed-form parameter and multiply-accumulate counts, from a model config alone (no torch).

MACs per image count every conv and dense layer and the two attention matmuls (Q K^T and A V,
N^2 D each); not norms, activations, softmax, pooling or additions. GFLOPs = 2 x GMACs.
"""

from __future__ import annotations

from vitzoo.zoo.configs import BiTConfig, HybridConfig, ModelConfig, ViTConfig


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _bottleneck_stages(layers: tuple[int, ...], width: int, size: int, pre_act: bool) -> int:
    """MACs of ResNet bottleneck stages on a size x size input with `width` channels.

    Both the hybrid and BiT put the stride on the 3x3 conv and the projection; BiT's symmetric
    padding gives floor sizes, the hybrid's SAME padding ceil sizes (equal for even sizes).
    """
    macs, cin = 0, width
    for i, depth in enumerate(layers):
        mid, stride = width * 2**i, 1 if i == 0 else 2
        for u in range(depth):
            s = stride if u == 0 else 1
            out = (size - 1) // s + 1 if pre_act else _ceil_div(size, s)
            macs += size * size * cin * mid  # conv1 1x1
            macs += out * out * mid * mid * 9  # conv2 3x3
            macs += out * out * mid * 4 * mid  # conv3 1x1
            if u == 0 and (cin != 4 * mid or s != 1):
                macs += out * out * cin * 4 * mid  # projection 1x1
            cin, size = 4 * mid, out
    return macs


def _hybrid_macs(backbone: HybridConfig, img_size: int) -> int:
    size = _ceil_div(img_size, 2)
    macs = size * size * backbone.width * 3 * 49  # root 7x7/2
    size = _ceil_div(size, 2)  # max-pool
    return macs + _bottleneck_stages(backbone.layers, backbone.width, size, pre_act=False)


def vit_macs(config: ViTConfig) -> int:
    """MACs of one forward pass of a (hybrid) ViT."""
    D, N, M, g = config.width, config.seq_len, config.mlp_dim, config.grid_size
    cin = 3 if config.backbone is None else config.backbone.out_channels
    macs = 0 if config.backbone is None else _hybrid_macs(config.backbone, config.img_size)
    macs += g * g * D * cin * config.patch_size**2  # patch embedding
    per_block = 4 * N * D * D + 2 * N * D * M + 2 * N * N * D  # qkv + proj, MLP, QK^T and AV
    macs += config.depth * per_block
    if config.representation_size:
        macs += D * config.representation_size
    return macs + config.num_features * config.num_classes


def bit_macs(config: BiTConfig) -> int:
    """MACs of one forward pass of a BiT ResNet-v2 at its img_size."""
    size = (config.img_size + 2 * 3 - 7) // 2 + 1  # root 7x7/2, pad 3
    macs = size * size * config.width * 3 * 49
    size = (size + 2 - 3) // 2 + 1  # zero pad 1, max-pool 3x3/2
    macs += _bottleneck_stages(config.layers, config.width, size, pre_act=True)
    return macs + config.num_features * config.num_classes


def count_macs(config: ModelConfig) -> int:
    """Closed-form MACs per image for any model config."""
    return vit_macs(config) if isinstance(config, ViTConfig) else bit_macs(config)


def _stage_params(layers: tuple[int, ...], width: int, pre_act: bool) -> int:
    """Bottleneck stages: 3 convs and 3 GroupNorms per unit, plus a projection per stage.

    Post-activation (hybrid): GNs after each conv (mid, mid, 4 mid) and on the projection.
    Pre-activation (BiT): GNs before each conv (unit input, mid, mid); the projection has none.
    """
    params, cin = 0, width
    for i, depth in enumerate(layers):
        mid = width * 2**i
        for u in range(depth):
            c = cin if u == 0 else 4 * mid
            params += c * mid + 9 * mid * mid + mid * 4 * mid  # conv1, conv2, conv3
            params += 2 * (c + 2 * mid) if pre_act else 2 * (6 * mid)  # GroupNorm scales and biases
            if u == 0 and (cin != 4 * mid or i > 0):
                params += cin * 4 * mid + (0 if pre_act else 2 * 4 * mid)
        cin = 4 * mid
    return params


def vit_params(config: ViTConfig) -> int:
    """Parameters of a (hybrid) ViT: the paper's Table 1 formula plus the hybrid ResNet."""
    D, M, P = config.width, config.mlp_dim, config.patch_size
    cin = 3 if config.backbone is None else config.backbone.out_channels
    params = cin * P * P * D + D  # patch embedding
    if config.backbone is not None:
        w = config.backbone.width
        params += 3 * 49 * w + 2 * w + _stage_params(config.backbone.layers, w, pre_act=False)
    params += config.seq_len * D + config.num_prefix_tokens * D  # pos_embed, cls
    params += config.depth * (4 * D * D + 4 * D + 2 * D * M + M + D + 4 * D)  # attn, MLP, 2 LNs
    params += 2 * D  # final LN
    if config.representation_size:
        params += (D + 1) * config.representation_size
    return params + (config.num_features + 1) * config.num_classes


def bit_params(config: BiTConfig) -> int:
    """Parameters of a BiT ResNet-v2."""
    w = config.width
    params = 3 * 49 * w + _stage_params(config.layers, w, pre_act=True)
    return params + 2 * config.num_features + (config.num_features + 1) * config.num_classes


def count_params(config: ModelConfig) -> int:
    """Closed-form parameter count for any model config."""
    return vit_params(config) if isinstance(config, ViTConfig) else bit_params(config)
