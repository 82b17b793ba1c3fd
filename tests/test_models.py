"""The networks themselves: every registered architecture runs, and the layers compute what the originals do."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vitzoo
from vitzoo.models import build_model, resize_pos_embed
from vitzoo.models.layers import StdConv2d, pad_same, same_padding
from vitzoo.weights.checkpoint import save_vitzoo
from vitzoo.zoo.analytic import count_params
from vitzoo.zoo.catalog import REGISTRY as _REGISTRY
from vitzoo.zoo.configs import BiTConfig, HybridConfig, ViTConfig

ALL_NAMES = [s.name for s in _REGISTRY]  # the listed models and the hidden `testing` fixture


def _small_size(name: str) -> int:
    """The smallest input giving a 2x2 token grid (ViTs) or a 2x2 final map (BiT)."""
    config = vitzoo.get_spec(name).config
    if isinstance(config, BiTConfig):
        return 64
    return 2 * config.patch_size * (config.img_size // config.feature_size)


def _forward_params(name: str):
    """Every arch; those over 150M parameters (seconds to minutes just to initialise) carry the ``slow`` marker.

    Each family keeps real forwards in the default run; ``pytest -m slow`` runs the big ones.
    """
    big = count_params(vitzoo.get_spec(name).config) > 150_000_000
    return pytest.param(name, marks=pytest.mark.slow) if big else name


@pytest.mark.parametrize("name", [_forward_params(n) for n in ALL_NAMES])
def test_every_arch_builds_and_runs(name):
    size = _small_size(name)
    model = vitzoo.create(name, img_size=size).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, size, size))
    config = model.config
    assert out.shape == (2, config.num_classes or model.num_features)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL_NAMES)
def test_create_on_meta_device_allocates_nothing(name):
    with torch.device("meta"):
        model = vitzoo.create(name)
    assert all(p.is_meta for p in model.parameters())


def test_create_overrides_and_validates():
    model = vitzoo.create("testing", num_classes=3, img_size=32)
    assert model.config.num_classes == 3 and model.pos_embed.shape == (1, 5, 10)
    with pytest.raises(vitzoo.errors.ConfigError, match="multiple of the patch size"):
        vitzoo.create("testing", img_size=30)
    with pytest.raises(vitzoo.errors.ConfigError, match="num_classes"):
        vitzoo.create("testing", num_classes=-1)


def test_wrong_input_size_gives_clear_error():
    model = vitzoo.create("testing", img_size=32)
    with pytest.raises(ValueError, match="built for 5"):
        model(torch.randn(1, 3, 64, 64))


def test_vit_uses_tanh_gelu_and_flax_layernorm_eps():
    model = vitzoo.create("testing")
    assert all(m.eps == 1e-6 for m in model.modules() if isinstance(m, torch.nn.LayerNorm))
    mlp = model.blocks[0].mlp
    x = torch.randn(4, 10)
    expected = mlp.fc2(F.gelu(mlp.fc1(x), approximate="tanh"))
    torch.testing.assert_close(mlp(x), expected, rtol=0, atol=0)


def _reference_attention(attn, x):
    """Explicit softmax(q k^T / sqrt(hd)) v with heads split head-major, as flax DenseGeneral does."""
    B, N, D = x.shape
    H = attn.num_heads
    q, k, v = attn.qkv(x).split(D, dim=-1)
    q, k, v = (t.reshape(B, N, H, D // H).transpose(1, 2) for t in (q, k, v))
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // H), dim=-1)
    return attn.proj((a @ v).transpose(1, 2).reshape(B, N, D))


def test_sdpa_attention_equals_explicit_softmax():
    model = build_model(ViTConfig(patch_size=8, width=48, depth=1, num_heads=4, mlp_dim=96, img_size=32))
    x = torch.randn(2, 17, 48, dtype=torch.float64)
    attn = model.blocks[0].attn.double()
    torch.testing.assert_close(attn(x), _reference_attention(attn, x), rtol=1e-12, atol=1e-12)


def test_token_vs_gap_pooling():
    torch.manual_seed(1)
    config = ViTConfig(patch_size=8, width=16, depth=1, num_heads=2, mlp_dim=32, img_size=16, num_classes=0)
    x = torch.randn(2, 3, 16, 16)
    token = build_model(config)
    tokens = token.forward_features(x)
    torch.testing.assert_close(token(x), tokens[:, 0])
    gap = build_model(config.replace(classifier="gap"))
    assert gap.cls_token is None and gap.pos_embed.shape[1] == 4
    torch.testing.assert_close(gap(x), gap.forward_features(x).mean(1))


def test_pre_logits_is_dense_tanh():
    model = build_model(ViTConfig(16, 10, 1, 2, 10, num_classes=5, representation_size=7))
    tokens = torch.randn(3, 197, 10)
    expected = model.head(torch.tanh(model.pre_logits.fc(tokens[:, 0])))
    torch.testing.assert_close(model.forward_head(tokens), expected)
    assert model.forward_head(tokens, pre_logits=True).shape == (3, 7)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (224, 7, 2, (2, 3)),
        (112, 3, 2, (0, 1)),
        (56, 3, 2, (0, 1)),
        (56, 3, 1, (1, 1)),
        (56, 1, 2, (0, 0)),
        (7, 3, 2, (1, 1)),
    ],
)
def test_tf_same_padding(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_same_maxpool_pads_with_minus_inf():
    x = -torch.ones(1, 1, 4, 4)
    y = F.max_pool2d(pad_same(x, 3, 2, value=float("-inf")), 3, 2)
    assert torch.equal(y, -torch.ones(1, 1, 2, 2))  # zero padding would give 0 at the border


@pytest.mark.parametrize(("sqrt_eps", "eps"), [(False, 1e-5), (True, 1e-10)])
def test_std_conv_formulas(sqrt_eps, eps):
    conv = StdConv2d(4, 8, 3, padding=1, eps=eps, sqrt_eps=sqrt_eps).double()
    w = conv.weight.detach().numpy()
    mean = w.mean(axis=(1, 2, 3), keepdims=True)
    std = w.std(axis=(1, 2, 3), keepdims=True)  # population std, as jnp.std
    expected = (w - mean) / (np.sqrt(std**2 + eps) if sqrt_eps else std + eps)
    np.testing.assert_allclose(conv.standardized_weight().detach().numpy(), expected, rtol=1e-12)


def test_hybrid_feature_sizes():
    assert HybridConfig((3, 4, 9)).feature_size(224) == 14
    assert HybridConfig((3, 4, 9)).feature_size(384) == 24
    assert HybridConfig(()).feature_size(224) == 56  # R+Ti/16: root only, then 8x8 patches -> 7x7
    assert HybridConfig((2, 2, 2, 2)).out_channels == 2048
    model = build_model(ViTConfig(1, 32, 1, 2, 32, img_size=64, backbone=HybridConfig((1, 1))))
    assert model.patch_embed(torch.randn(1, 3, 64, 64)).shape == (1, 8 * 8, 32)


@pytest.mark.parametrize(("old", "new"), [(14, 24), (24, 14), (7, 12), (3, 5)])
def test_resize_pos_embed_matches_scipy_zoom(old, new):
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    posemb = torch.randn(1, 1 + old * old, 6, dtype=torch.float64)
    out = resize_pos_embed(posemb, new, num_prefix_tokens=1)
    grid = posemb[0, 1:].reshape(old, old, 6).numpy()
    expected = scipy_ndimage.zoom(grid, (new / old, new / old, 1), order=1)  # what vit_jax does
    assert torch.equal(out[:, :1], posemb[:, :1])  # class token kept apart
    np.testing.assert_allclose(out[0, 1:].reshape(new, new, 6).numpy(), expected, atol=1e-12)


def test_resize_pos_embed_rejects_non_square():
    with pytest.raises(ValueError, match="square"):
        resize_pos_embed(torch.randn(1, 1 + 12, 4), 4, num_prefix_tokens=1)


def _frozen(config, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model.requires_grad_(False)


def _input_grad(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    model(x).square().sum().backward()
    return x.grad


@pytest.mark.parametrize(
    "config",
    [
        BiTConfig((1,), 1, img_size=32, num_classes=5),
        ViTConfig(1, 32, 1, 2, 32, img_size=32, num_classes=5, backbone=HybridConfig((1, 1), width=32)),
    ],
    ids=["bit", "hybrid"],
)
def test_saliency_after_an_inference_mode_pass(config):
    """A frozen model's cached standardised kernel must not break gradients w.r.t. the input (saliency)."""
    x = torch.randn(2, 3, 32, 32)
    model = _frozen(config)
    with torch.inference_mode():
        fast = model(x)  # fills the StdConv caches
    convs = [m for m in model.modules() if isinstance(m, StdConv2d)]
    assert convs and all("_cached_weight" in m.__dict__ for m in convs)
    grad = _input_grad(model, x)
    reference = _input_grad(_frozen(config).requires_grad_(True), x)  # trainable weights: no cache at all
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    torch.testing.assert_close(grad, reference, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():  # and inference still reuses the cache and gives the same output
        kernels = [m.__dict__["_cached_weight"][1] for m in convs]
        torch.testing.assert_close(model(x), fast, rtol=0, atol=0)
    assert all(m.__dict__["_cached_weight"][1] is k for m, k in zip(convs, kernels, strict=True))


# --- any resolution at run time (dynamic_img_size) ---

DYN_VIT = ViTConfig(16, 16, 2, 2, 32, img_size=224, num_classes=7)
DYN_HYBRID = ViTConfig(1, 32, 1, 2, 32, img_size=64, num_classes=7, classifier="gap", backbone=HybridConfig((1, 1), 32))


def _saved(tmp_path, config) -> Path:
    """A file of random (non-trivial) weights that ``vitzoo.load`` reads, at the config's resolution."""
    model = _frozen(config, seed=3)
    with torch.no_grad():
        model.pos_embed.normal_(0, 1.0)  # a position embedding that matters
    return save_vitzoo(tmp_path / "tiny.safetensors", model.state_dict(), config)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize(("config", "sizes"), [(DYN_VIT, (224, 288, 384)), (DYN_HYBRID, (64, 96, 128))],
                         ids=["vit", "hybrid"])  # fmt: skip
def test_dynamic_size_equals_loading_at_that_size(tmp_path, config, sizes):
    path = _saved(tmp_path, config)
    dynamic = vitzoo.load(path, dynamic_img_size=True)
    assert dynamic.config.img_size == config.img_size  # the nominal size stays
    for size in sizes:
        x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.inference_mode():
            got, want = dynamic(x), vitzoo.load(path, img_size=size)(x)
        assert _max_diff(got, want) <= 1e-6, size


def test_dynamic_non_square_size_matches_vit_jax_resampling(tmp_path):
    """224x320 (14x20 patches): the position embedding zoomed as vit_jax does (scipy, float64), run by hand."""
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    path = _saved(tmp_path, DYN_VIT)
    static, dynamic = vitzoo.load(path), vitzoo.load(path, dynamic_img_size=True)
    grid = static.pos_embed.detach()[0, 1:].double().reshape(14, 14, -1).numpy()
    zoomed = torch.from_numpy(scipy_ndimage.zoom(grid, (14 / 14, 20 / 14, 1), order=1)).float().reshape(1, 280, -1)
    pos = torch.cat([static.pos_embed.detach()[:, :1], zoomed], dim=1)
    x = torch.randn(2, 3, 224, 320, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        tokens = torch.cat([static.cls_token.expand(2, -1, -1), static.patch_embed(x)], dim=1) + pos
        want = static.forward_head(static.norm(static.blocks(tokens)))
        got = dynamic(x)
        inter = dynamic.forward_intermediates(x, [-1], intermediates_only=True)[0]
    assert _max_diff(got, want) <= 1e-6
    assert inter.shape == (2, 16, 14, 20)  # the patch map has the input's aspect


def test_dynamic_size_refuses_sizes_the_stride_does_not_divide():
    vit = vitzoo.create("testing", dynamic_img_size=True)
    with pytest.raises(ValueError, match=r"input 224x200 is not divisible by the model's stride 16"):
        vit(torch.randn(1, 3, 224, 200))
    hybrid = build_model(DYN_HYBRID, dynamic_img_size=True)
    assert DYN_HYBRID.stride == 8
    with pytest.raises(ValueError, match="stride 8"):
        hybrid(torch.randn(1, 3, 60, 64))
    with pytest.raises(ValueError, match="dynamic_img_size=True"):  # a fixed-size model says how to get one
        vitzoo.create("testing")(torch.randn(1, 3, 240, 240))


def test_dynamic_position_embedding_is_cached_per_grid(monkeypatch):
    import vitzoo.models.vit as vit_module

    calls = []
    real = vit_module.resize_pos_embed
    monkeypatch.setattr(vit_module, "resize_pos_embed", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    model = vitzoo.create("testing", dynamic_img_size=True).eval()
    with torch.inference_mode():
        model(torch.randn(1, 3, 288, 288))
        first = model.pos_embed_for((288, 288))
        model(torch.randn(2, 3, 288, 288))
        model(torch.randn(1, 3, 224, 224))  # the model's own grid: its parameter, nothing resampled
        model(torch.randn(1, 3, 192, 320))
        again = model.pos_embed_for((288, 288))
        own = model.pos_embed_for((224, 224))
    assert calls == [(18, 18), (12, 20)]  # one resample per new grid, none on a cache hit
    assert again is first and own is model.pos_embed
    with torch.no_grad():
        model.pos_embed.mul_(2)  # an in-place update (an optimiser step, load_state_dict) invalidates the cache
        fresh = model.pos_embed_for((288, 288))
    assert calls[-1] == (18, 18) and torch.equal(fresh, real(model.pos_embed, (18, 18), 1))
    assert "_posemb_cache" not in copy.deepcopy(model).__dict__  # copies and pickles rebuild it


def test_dynamic_size_trains_the_position_embedding():
    model = vitzoo.create("testing", dynamic_img_size=True).train()
    torch.nn.init.normal_(model.head.weight)  # created with the paper's zero head: no gradient would flow
    model(torch.randn(2, 3, 288, 288)).square().sum().backward()
    assert model.pos_embed.grad is not None and model.pos_embed.grad.abs().sum() > 0
    assert "_posemb_cache" not in model.__dict__  # while it takes gradients it is resampled on every call


def test_bit_accepts_dynamic_img_size():
    model = vitzoo.create("bit-r50x1", dynamic_img_size=True, img_size=64)  # fully convolutional: any size anyway
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 64, 96)).shape == (1, 1000)


GRAD_CHECKPOINT_CONFIGS = {
    "vit": ViTConfig(8, 32, 3, 2, 64, img_size=32, num_classes=5),
    "hybrid": ViTConfig(1, 32, 1, 2, 32, img_size=64, num_classes=3, backbone=HybridConfig((1, 2))),
    "bit": BiTConfig((1, 2), 1, img_size=64, num_classes=5),
}


@pytest.mark.parametrize("family", list(GRAD_CHECKPOINT_CONFIGS))
def test_grad_checkpointing_recomputes_blocks_and_changes_no_number(family, monkeypatch):
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: much faster on one thread when other processes load the CPUs
    try:
        _check_grad_checkpointing(family, monkeypatch)
    finally:
        torch.set_num_threads(threads)


def _check_grad_checkpointing(family, monkeypatch):
    import torch.utils.checkpoint

    model = build_model(GRAD_CHECKPOINT_CONFIGS[family])
    x = torch.randn(1, 3, model.config.img_size, model.config.img_size)

    def grads():
        model.zero_grad()
        out = model(x)
        out.square().sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    out, ref = grads()
    calls = []
    real = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda fn, *a, **k: calls.append(fn) or real(fn, *a, **k))
    assert model.set_grad_checkpointing() is model
    out2, got = grads()
    units = {"vit": 3, "hybrid": 1 + 3, "bit": 3}[family]  # blocks, or bottleneck units (hybrid: both)
    assert len(calls) == units and torch.equal(out, out2)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-7, msg=name)
    with torch.no_grad():  # inference never checkpoints
        calls.clear()
        assert torch.equal(model(x), out) and not calls
    model.set_grad_checkpointing(False)
    calls.clear()
    grads()
    assert not calls
