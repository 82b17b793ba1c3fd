"""Features from any block: ``forward_intermediates`` and ``prune_intermediate_layers`` on ViT, hybrid and BiT,
checked against forward hooks on the blocks themselves and against ``forward_features``."""

from __future__ import annotations

import copy

import pytest
import torch

from vitzoo.models import build_model
from vitzoo.models.features import take_indices
from vitzoo.zoo.analytic import count_params
from vitzoo.zoo.configs import BiTConfig, HybridConfig, ViTConfig

VIT = ViTConfig(patch_size=8, width=16, depth=4, num_heads=2, mlp_dim=32, img_size=32, num_classes=5)
HYBRID = ViTConfig(
    patch_size=1, width=32, depth=3, num_heads=2, mlp_dim=32, img_size=32, num_classes=5, classifier="gap",
    backbone=HybridConfig(layers=(1, 1), width=32),
)  # fmt: skip
BIT = BiTConfig(layers=(1, 1, 1), width_factor=1, img_size=32, num_classes=5)
CONFIGS = {"vit": VIT, "hybrid": HYBRID, "bit": BIT}


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(CONFIGS[kind]).eval()
    with torch.no_grad():  # a random head and norms, so that nothing is trivially zero or one
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _images(kind: str, batch: int = 2) -> torch.Tensor:
    size = CONFIGS[kind].img_size
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def _blocks(model) -> list[torch.nn.Module]:
    """The modules whose outputs the indices name: encoder blocks, or BiT's root conv and stages."""
    if isinstance(model.config, BiTConfig):
        return [model.stem.conv, *model.stages]
    return list(model.blocks)


def _hooked(model, x) -> list[torch.Tensor]:
    """Every block's output, recorded by forward hooks during a plain forward."""
    outputs: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for m in _blocks(model)]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return outputs


def test_take_indices_as_timm():
    assert take_indices(12, None) == (list(range(12)), 11)
    assert take_indices(12, 3) == ([9, 10, 11], 11)
    assert take_indices(12, [0, -1, 5]) == ([0, 11, 5], 11)
    for bad in (0, 13, [12], [-13], [], "3", [1.5]):
        with pytest.raises(ValueError):
            take_indices(12, bad)


@pytest.mark.parametrize("kind", ["vit", "hybrid", "bit"])
def test_last_block_normed_is_forward_features(kind):
    model, x = _model(kind), _images(kind)
    with torch.inference_mode():
        final, inter = model.forward_intermediates(x, indices=1, norm=True, output_fmt="NCHW")
        features = model.forward_features(x)
    assert torch.equal(final, features)
    if kind == "bit":
        assert torch.equal(inter[0], features)
    else:  # the patch tokens of forward_features, as a map
        prefix = model.config.num_prefix_tokens
        g = model.config.grid_size
        tokens = features[:, prefix:].reshape(2, g, g, -1).permute(0, 3, 1, 2)
        assert torch.equal(inter[0], tokens)


@pytest.mark.parametrize("kind", ["vit", "hybrid", "bit"])
def test_every_index_equals_a_hook_on_its_block(kind):
    model, x = _model(kind), _images(kind)
    with torch.inference_mode():
        hooked = _hooked(model, x)
        inter = model.forward_intermediates(x, indices=None, output_fmt="NCHW", intermediates_only=True)
        picked = model.forward_intermediates(x, indices=[-1, 1], output_fmt="NCHW", intermediates_only=True)
    assert len(inter) == len(hooked) == len(_blocks(model))
    for got, out in zip(inter, hooked, strict=True):
        if kind != "bit":  # NLC tokens with the class token first -> the patch map
            prefix, g = model.config.num_prefix_tokens, model.config.grid_size
            out = out[:, prefix:].reshape(2, g, g, -1).permute(0, 3, 1, 2)
        assert torch.equal(got, out)
    assert [t.shape for t in picked] == [inter[1].shape, inter[-1].shape]  # block order, as timm
    assert torch.equal(picked[0], inter[1]) and torch.equal(picked[1], inter[-1])


@pytest.mark.parametrize("kind", ["vit", "hybrid"])
def test_nlc_and_nchw_layouts_and_prefix_tokens(kind):
    model, x = _model(kind), _images(kind)
    config = model.config
    g, D = config.grid_size, config.width
    with torch.inference_mode():
        nlc = model.forward_intermediates(x, [0], output_fmt="NLC", intermediates_only=True)[0]
        nchw = model.forward_intermediates(x, [0], output_fmt="NCHW", intermediates_only=True)[0]
        pairs = model.forward_intermediates(x, [0], return_prefix_tokens=True, intermediates_only=True)
        hooked = _hooked(model, x)[0]
    assert nlc.shape == (2, g * g, D) and nchw.shape == (2, D, g, g)
    assert torch.equal(nlc, nchw.flatten(2).transpose(1, 2))
    if config.num_prefix_tokens:
        tokens, cls = pairs[0]
        assert torch.equal(cls, hooked[:, :1]) and torch.equal(tokens, nchw)
    else:  # nothing to pair: timm returns the maps alone
        assert torch.equal(pairs[0], nchw)
    with pytest.raises(ValueError, match="output_fmt"):
        model.forward_intermediates(x, output_fmt="NHWC")


def test_bit_takes_only_nchw():
    model, x = _model("bit"), _images("bit")
    with pytest.raises(ValueError, match="output_fmt"):
        model.forward_intermediates(x, output_fmt="NLC")


@pytest.mark.parametrize("kind", ["vit", "hybrid", "bit"])
def test_stop_early_runs_no_later_block(kind):
    model, x = _model(kind), _images(kind)
    calls = []
    handle = _blocks(model)[-1].register_forward_hook(lambda *_: calls.append(1))
    with torch.inference_mode():
        early = model.forward_intermediates(x, [1], stop_early=True, intermediates_only=True)
        full = model.forward_intermediates(x, [1], intermediates_only=True)
    handle.remove()
    assert len(calls) == 1  # only the run without stop_early reached the last block
    assert torch.equal(early[0], full[0])


@pytest.mark.parametrize("kind", ["vit", "hybrid", "bit"])
@pytest.mark.parametrize("prune_norm", [False, True])
def test_prune_then_forward_intermediates_equals_unpruned(kind, prune_norm):
    model, x = _model(kind), _images(kind)
    pruned = copy.deepcopy(model)
    kept = pruned.prune_intermediate_layers([0, 1], prune_norm=prune_norm)
    assert kept == [0, 1] and len(_blocks(pruned)) == 2
    with torch.inference_mode():
        want = model.forward_intermediates(x, [0, 1], intermediates_only=True)
        got = pruned.forward_intermediates(x, [0, 1], intermediates_only=True)
        out = pruned(x)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    assert pruned.config.num_classes == 0 and out.shape == (2, pruned.num_features)
    norm_dropped = prune_norm or kind == "bit"  # BiT's final norm fits only its last stage
    norm_params = 2 * pruned.num_features if norm_dropped else 0
    assert count_params(pruned.config) == sum(p.numel() for p in pruned.parameters()) + norm_params


@pytest.mark.parametrize("kind", ["vit", "hybrid"])
def test_pruned_head_pools_the_last_kept_block(kind):
    model, x = _model(kind), _images(kind)
    pruned = copy.deepcopy(model)
    pruned.prune_intermediate_layers(2)  # the last two blocks kept: nothing removed but the head
    with torch.inference_mode():
        [last] = model.forward_intermediates(x, [-1], norm=True, return_prefix_tokens=True, intermediates_only=True)
        pooled = pruned(x)
    # the class token (ViT) or the mean of the patch map (GAP hybrid) of the last block, through the final norm
    want = last[1][:, 0] if kind == "vit" else last.mean(dim=(2, 3))
    assert torch.allclose(pooled, want, atol=1e-6)


def test_hybrid_backbone_maps_equal_hooks_on_its_root_and_stages():
    model, x = _model("hybrid"), _images("hybrid")
    backbone = model.patch_embed.backbone
    seen = []
    modules = [backbone.stem.norm, *backbone.stages]
    handles = [m.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in modules]
    with torch.inference_mode():
        model(x)
        for h in handles:
            h.remove()
        out, maps = backbone.forward_intermediates(x)
        last = backbone.forward_intermediates(x, [-1], stop_early=True, intermediates_only=True)
    assert len(maps) == 3 and torch.equal(maps[0], torch.relu(seen[0]))  # the root's map is after its ReLU
    assert all(torch.equal(a, b) for a, b in zip(maps[1:], seen[1:], strict=True))
    assert torch.equal(out, backbone(x)) and torch.equal(last[0], out)
    assert [tuple(m.shape[-2:]) for m in maps] == [(16, 16), (8, 8), (4, 4)]  # strides 2, 4, 8 on 32 px
