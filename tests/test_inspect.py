"""vitzoo.inspection: the maths of the paper's Figures 6 and 7, checked on constructed cases with known answers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import vitzoo
from vitzoo.errors import VitzooError
from vitzoo.inspection import (
    analyse_attention,
    attention_rollout,
    cosine_similarity_grid,
    filter_components,
    load_images,
    mean_attention_distance,
    patch_distances,
    posemb_similarity,
    record_attention,
    rollout_maps,
    upsample_maps,
)
from vitzoo.models import build_model
from vitzoo.zoo.configs import BiTConfig, HybridConfig, ViTConfig
from vitzoo.zoo.preprocess import Preprocess


def _vit(classifier: str = "token", depth: int = 3, img_size: int = 32, patch: int = 8) -> torch.nn.Module:
    config = ViTConfig(patch, 16, depth, 4, 32, img_size=img_size, num_classes=5, classifier=classifier)
    return build_model(config).eval()


def _uniform_attention(model: torch.nn.Module) -> torch.nn.Module:
    """Zero the q and k projections: every score is 0, so every query attends uniformly to all tokens."""
    with torch.no_grad():
        for block in model.blocks:
            dim = block.attn.proj.in_features
            block.attn.qkv.weight[: 2 * dim] = 0
            block.attn.qkv.bias[: 2 * dim] = 0
    return model


# --- the explicit-softmax mode of Attention ---------------------------------------------------------------------


@pytest.mark.parametrize("classifier", ["token", "gap"])
def test_explicit_softmax_equals_sdpa_and_probs_are_distributions(classifier):
    model = _vit(classifier).double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
        with record_attention(model) as probs:
            got = model(x)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    n = 16 + (classifier == "token")
    assert len(probs) == 3 and all(p.shape == (2, 4, n, n) for p in probs)
    for p in probs:
        assert (p >= 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones(2, 4, n, dtype=torch.float64), rtol=0, atol=1e-12)
    assert all(block.attn.saved_probs is None for block in model.blocks)


def test_sdpa_path_is_untouched_when_not_recording(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    model, x = _vit(), torch.randn(1, 3, 32, 32)
    model(x)
    assert len(calls) == 3
    with record_attention(model):
        model(x)
    assert len(calls) == 3  # the explicit path never calls SDPA
    model(x)
    assert len(calls) == 6


def test_recording_is_restored_after_an_exception():
    model = _vit()
    with pytest.raises(RuntimeError), record_attention(model):
        raise RuntimeError("boom")
    assert all(block.attn.saved_probs is None for block in model.blocks)


def test_non_vit_models_are_refused():
    bit = build_model(BiTConfig((1, 1, 1, 1), 1, num_classes=0))
    for call in (lambda: record_attention(bit).__enter__(), lambda: posemb_similarity(bit)):
        with pytest.raises(VitzooError, match="needs a Vision Transformer"):
            call()


# --- position-embedding similarity --------------------------------------------------------------------------------


def _sinusoid(grid: int, freqs: np.ndarray) -> np.ndarray:
    """(g*g, 4F) 2-D sinusoidal embedding [sin wx, cos wx, sin wy, cos wy] for each frequency w, row-major."""
    y, x = np.divmod(np.arange(grid * grid), grid)
    wx, wy = x[:, None] * freqs, y[:, None] * freqs
    return np.concatenate([np.sin(wx), np.cos(wx), np.sin(wy), np.cos(wy)], axis=1)


@pytest.mark.parametrize("img_size", [224, 384])  # 14x14 and 24x24 grids
def test_sinusoidal_posemb_gives_the_cosine_of_the_displacement(img_size):
    model = build_model(ViTConfig(16, 16, 1, 4, 16, img_size=img_size)).double()  # width 16 = 4 x 4 frequencies
    g, freqs = img_size // 16, np.array([0.1, 0.35, 0.8, 2.0])
    with torch.no_grad():
        model.pos_embed[0, 0] = 123.0  # the class slot must not matter
        model.pos_embed[0, 1:] = torch.from_numpy(_sinusoid(g, freqs))
    sim = posemb_similarity(model)
    assert sim.shape == (g, g, g, g)
    # <e_p, e_q> = sum_w cos(w dx) + cos(w dy) and |e|^2 = 2F: the similarity depends only on the displacement
    r, c = np.divmod(np.arange(g * g), g)
    dy, dx = (r[:, None] - r[None, :]).reshape(g, g, g, g), (c[:, None] - c[None, :]).reshape(g, g, g, g)
    expected = sum(np.cos(w * dx) + np.cos(w * dy) for w in freqs) / (2 * len(freqs))
    np.testing.assert_allclose(sim, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.einsum("ijij->ij", sim), 1.0, rtol=0, atol=1e-12)  # each patch with itself
    assert math.isclose(sim[0, 0, 0, 1], sim[5, 7, 5, 8], abs_tol=1e-12)  # one column to the right, anywhere


def test_cosine_similarity_grid_edge_cases():
    sim = cosine_similarity_grid(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]))
    np.testing.assert_array_equal(sim.reshape(4, 4)[0], [1.0, 0.0, 0.0, -1.0])  # a zero embedding gives 0, not NaN
    with pytest.raises(ValueError, match="g\\*g"):
        cosine_similarity_grid(np.ones((5, 3)))


# --- patch-embedding filters ---------------------------------------------------------------------------------------


def test_filter_pca_recovers_constructed_components():
    model = vitzoo.create("testing")  # D = 10 filters of shape (3, 16, 16)
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((768, 2)))  # two orthonormal directions
    e1, e2 = basis.T
    a = 3.0 * np.array([1, -1] * 5)  # zero mean, |a|^2 = 90
    b = np.array([1, 1, -1, -1, 1, 1, -1, -1, 0, 0], dtype=float)  # zero mean, orthogonal to a, |b|^2 = 8
    mean = rng.standard_normal(768)  # removed by the centring
    weights = mean + a[:, None] * e1 + b[:, None] * e2
    with torch.no_grad():
        model.patch_embed.proj.weight.copy_(torch.from_numpy(weights.reshape(10, 3, 16, 16)))
    pca = filter_components(model, k=2)
    assert pca.components.shape == (2, 3, 16, 16)
    got = pca.components.reshape(2, -1)
    for component, expected in zip(got, (e1, e2), strict=True):
        expected = expected * np.sign(expected[np.abs(expected).argmax()])  # the documented sign convention
        np.testing.assert_allclose(component, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(pca.explained_variance_ratio, [90 / 98, 8 / 98], rtol=1e-6)
    rgb = pca.rgb()
    assert rgb.shape == (2, 16, 16, 3) and rgb.min() == 0 and rgb.max() == 1
    assert len(filter_components(model).components) == 9  # 28 asked, D - 1 = 9 exist


def test_filters_refuse_hybrids():
    hybrid = build_model(ViTConfig(1, 8, 1, 2, 8, img_size=32, backbone=HybridConfig(())))
    with pytest.raises(VitzooError, match="filters needs a plain ViT"):
        filter_components(hybrid)


# --- mean attention distance ---------------------------------------------------------------------------------------


def _mean_pairwise_distance(g: int) -> float:
    """Brute force: the mean Euclidean distance between two patches of a g x g grid, self pairs included."""
    cells = list(itertools.product(range(g), repeat=2))
    return sum(math.dist(p, q) for p in cells for q in cells) / len(cells) ** 2


def test_self_attention_has_distance_zero_and_uniform_the_mean_pairwise_distance():
    g, n = 4, 16
    identity = np.eye(n + 1)  # with a class token
    assert mean_attention_distance(identity, g, 16.0, 1) == 0.0
    uniform = np.full((2, 3, n + 1, n + 1), 1 / (n + 1))
    got = mean_attention_distance(uniform, g, 16.0, 1)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, 16.0 * _mean_pairwise_distance(g), rtol=1e-12)
    assert math.isclose(mean_attention_distance(np.full((4, 4), 0.25), 2, 10.0), 10 * (2 + math.sqrt(2)) / 4)


def test_class_token_weight_is_renormalised_away():
    g, n = 3, 9
    probs = np.zeros((n + 1, n + 1))
    probs[1:, 0] = 0.5
    probs[1:, 1:] += 0.5 * np.eye(n)  # half on the class token, half on itself
    assert mean_attention_distance(probs, g, 32.0, 1) == 0.0
    probs[1:, 0], probs[1:, 1:] = 0.9, 0.1 / n  # 0.9 on the class token, the rest uniform over patches
    assert math.isclose(mean_attention_distance(probs, g, 32.0, 1), 32 * _mean_pairwise_distance(g), rel_tol=1e-12)


def test_patch_distances_are_row_major():
    d = patch_distances(3)
    assert d[0, 1] == 1 and d[0, 3] == 1 and d[0, 4] == math.sqrt(2) and d[0, 8] == math.sqrt(8)


# --- attention rollout ---------------------------------------------------------------------------------------------


def test_rollout_of_identity_attention():
    n, layers = 5, [np.tile(np.eye(5), (2, 3, 1, 1))] * 4  # (B=2, H=3, 5, 5), four layers
    rollout = attention_rollout(layers)
    np.testing.assert_array_equal(rollout, np.broadcast_to(np.eye(n), (2, n, n)))
    # class token: its row is one-hot at itself, so nothing reaches the patches
    np.testing.assert_array_equal(rollout_maps(rollout, 2, 1), np.zeros((2, 2, 2)))
    # GAP (no class token): the mean row of the identity is uniform over the tokens
    square = attention_rollout([np.tile(np.eye(4), (1, 1, 1, 1))] * 3)
    np.testing.assert_array_equal(rollout_maps(square, 2, 0), np.full((1, 2, 2), 0.25))


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_rollout_of_uniform_attention_is_uniform_over_tokens(depth):
    n = 10
    rollout = attention_rollout([np.full((1, 2, n, n), 1 / n)] * depth)
    # A' = (U + I) / 2 with U = 1/N everywhere and U @ U = U, so R = (1 - 2^-L) U + 2^-L I exactly
    expected = (1 - 2.0**-depth) / n + 2.0**-depth * np.eye(n)
    np.testing.assert_allclose(rollout[0], expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(rollout_maps(rollout, 3, 1), (1 - 2.0**-depth) / n, rtol=1e-14)  # equal patches
    gap = attention_rollout([np.full((1, 2, 9, 9), 1 / 9)] * depth)
    np.testing.assert_allclose(rollout_maps(gap, 3, 0), 1 / 9, rtol=1e-14)  # exactly uniform


def test_rollout_multiplies_first_layer_on_the_right():
    rng = np.random.default_rng(0)
    a1, a2 = (rng.dirichlet(np.ones(4), size=(1, 1, 4)) for _ in range(2))  # row-stochastic (1, 1, 4, 4)
    r1, r2 = (0.5 * a[0, 0] + 0.5 * np.eye(4) for a in (a1, a2))
    np.testing.assert_allclose(attention_rollout([a1, a2])[0], r2 @ r1, rtol=1e-14)


def test_display_maps_are_divided_by_their_maximum():
    maps = np.stack([np.full((2, 2), 0.3), np.zeros((2, 2)), np.array([[0.0, 1.0], [2.0, 4.0]])])
    shown = upsample_maps(maps, 8)
    assert shown.shape == (3, 8, 8)
    np.testing.assert_allclose(shown[0], 1.0, rtol=1e-15)  # a flat map stays flat
    np.testing.assert_array_equal(shown[1], 0.0)  # an all-zero map (identity attention) stays zero, no NaN
    assert shown[2].max() == 1.0 and shown[2, 0, 0] == 0.0 and shown[2].min() == 0.0


# --- end to end through a model -------------------------------------------------------------------------------------


@pytest.mark.parametrize("classifier", ["token", "gap"])
def test_model_with_uniform_attention(classifier):
    depth = 3
    model = _uniform_attention(_vit(classifier, depth=depth, img_size=64))  # 8x8 grid of 8-pixel patches
    result = analyse_attention(model, torch.randn(3, 3, 64, 64))
    assert result.distance.shape == (depth, 4) and result.num_images == 3 and result.token_stride == 8
    np.testing.assert_allclose(result.distance, 8 * _mean_pairwise_distance(8), rtol=1e-5)
    n = 64 + (classifier == "token")
    expected = (1 - 2.0**-depth) / n if classifier == "token" else 1 / n
    np.testing.assert_allclose(result.rollout, np.full((3, 8, 8), expected), rtol=1e-5)


def test_hybrid_token_stride_is_image_pixels_per_token():
    config = ViTConfig(1, 8, 2, 2, 8, img_size=64, backbone=HybridConfig(()))  # root only: 16x16 map, stride 4
    model = _uniform_attention(build_model(config).eval())
    result = analyse_attention(model, torch.randn(1, 3, 64, 64))
    assert result.token_stride == 4.0
    np.testing.assert_allclose(result.distance, 4 * patch_distances(16).mean(), rtol=1e-5)


def test_analyse_attention_checks_the_input_shape():
    with pytest.raises(VitzooError, match=r"expected images of shape \(B, 3, 32, 32\)"):
        analyse_attention(_vit(), torch.randn(1, 3, 64, 64))


# --- images ---------------------------------------------------------------------------------------------------------


def test_load_images_squash_and_centre_crop(tmp_path):
    pixels = np.zeros((200, 400, 3), dtype=np.uint8)
    pixels[:, :100, 0] = 255  # red | green | blue, the green part 200 wide in the middle
    pixels[:, 100:300, 1] = 255
    pixels[:, 300:, 2] = 255
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    crop = load_images([tmp_path / "rgb.png"], Preprocess(100, resize="shorter", interpolation="bicubic"))
    assert crop.tensor.shape == (1, 3, 100, 100) and crop.pixels.shape == (1, 100, 100, 3)
    assert crop.names == ("rgb.png",)
    np.testing.assert_array_equal(crop.pixels[0, :, 5:95], np.broadcast_to([0, 255, 0], (100, 90, 3)))
    squash = load_images([tmp_path / "rgb.png"], Preprocess(100))  # mean = std = 0.5: [0, 1] -> [-1, 1]
    assert squash.pixels[0, 50, 10].tolist() == [255, 0, 0] and squash.pixels[0, 50, 90].tolist() == [0, 0, 255]
    assert squash.tensor[0, :, 50, 10].tolist() == [1.0, -1.0, -1.0]


def test_load_images_errors(tmp_path):
    with pytest.raises(VitzooError, match=r"image not found: .*missing\.jpg"):
        load_images([tmp_path / "missing.jpg"], Preprocess(32))
    (tmp_path / "bad.jpg").write_text("not an image")
    with pytest.raises(VitzooError, match=r"cannot read image .*bad\.jpg"):
        load_images([tmp_path / "bad.jpg"], Preprocess(32))
    with pytest.raises(VitzooError, match="is a directory, not a file"):
        load_images([tmp_path], Preprocess(32))


def test_load_images_pixels_are_the_rounded_network_view(tmp_path):
    """vit_jax's resize leaves fractional pixels: the overlay pixels are them rounded, the tensor is unrounded."""
    Image.fromarray(np.tile(np.arange(0, 250, 10, dtype=np.uint8), (25, 1))[..., None].repeat(3, 2)).save(
        tmp_path / "ramp.png"
    )
    batch = load_images([tmp_path / "ramp.png"], Preprocess(32, resize="tf"))
    view = (batch.tensor[0].permute(1, 2, 0).numpy() + 1) / 2 * 255
    np.testing.assert_array_equal(batch.pixels[0], np.clip(np.rint(view), 0, 255).astype(np.uint8))
    assert not np.allclose(view, np.rint(view), atol=1e-3)  # upsampling a ramp: in-between values
