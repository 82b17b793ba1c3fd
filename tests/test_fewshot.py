"""vitzoo.evaluate.fewshot: the closed-form least-squares solver, the per-class sampling, features of real images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_evaluate import PP, colour_model, solid

from vitzoo.errors import VitzooError
from vitzoo.evaluate.data import image_folder, preprocess_image
from vitzoo.evaluate.fewshot import (
    BIAS_CONSTANT,
    Features,
    check_layer,
    check_shots,
    extract_features,
    fewshot_accuracy,
    fit_least_squares,
    split_shots,
)
from vitzoo.models import build_model
from vitzoo.zoo.configs import BiTConfig, ViTConfig


def _augmented_lstsq(x, labels, k, l2):
    """Ridge regression as an ordinary least-squares problem: [X; sqrt(l2) I] W = [Y; 0] (independent check)."""
    mean, std = x.mean(0), x.std(0) + 1e-5
    X = np.concatenate([(x - mean) / std, np.full((len(x), 1), BIAS_CONSTANT)], axis=1)
    Y = np.where(np.arange(k)[None, :] == labels[:, None], 1.0, -1.0)
    A = np.concatenate([X, np.sqrt(l2) * np.eye(X.shape[1])])
    B = np.concatenate([Y, np.zeros((X.shape[1], k))])
    return np.linalg.lstsq(A, B, rcond=None)[0]


@pytest.mark.parametrize(("n", "d"), [(40, 6), (12, 30)])  # primal (N >= D) and dual (D > N) forms
@pytest.mark.parametrize("l2", [0.5, 2.0**10])
def test_solver_matches_closed_form(n, d, l2):
    rng = np.random.default_rng(1)
    x, labels = rng.normal(size=(n, d)) * 3 + 1, rng.integers(0, 4, size=n)
    probe = fit_least_squares(x, labels, 4, l2)
    np.testing.assert_allclose(probe.weights, _augmented_lstsq(x, labels, 4, l2), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(probe.mean, x.mean(0))
    np.testing.assert_allclose(probe.std, x.std(0) + 1e-5)
    Xt = np.concatenate([(x - probe.mean) / probe.std, np.full((n, 1), BIAS_CONSTANT)], axis=1)
    np.testing.assert_allclose(probe.scores(x), Xt @ probe.weights)


def test_solver_rejects_bad_regularisation():
    with pytest.raises(VitzooError, match="l2_reg must be positive"):
        fit_least_squares(np.ones((3, 2)), np.array([0, 1, 0]), 2, 0.0)


def test_check_shots_says_before_extraction_what_the_fit_would():
    labels = np.repeat([3, 7, 9], [4, 6, 5])
    check_shots(labels, [1, 3])
    with pytest.raises(VitzooError, match="a class has 4 images; 4 shots need at least 5 per class"):
        check_shots(labels, [1, 4])
    with pytest.raises(VitzooError, match="at least two classes"):
        check_shots(np.zeros(9, int), [1])
    with pytest.raises(VitzooError, match="positive"):
        check_shots(labels, [0, 1])
    features = Features(np.random.default_rng(0).normal(size=(15, 4)), labels, 10)
    with pytest.raises(VitzooError, match="a class has 4 images; 4 shots need at least 5 per class"):
        fewshot_accuracy(features, [4])  # the same message as the fit itself


def test_split_is_deterministic_nested_and_disjoint():
    labels = np.repeat(np.arange(3), 10)
    train, test = split_shots(labels, [1, 5], seed=7)
    again, test2 = split_shots(labels, [5, 1], seed=7)
    assert all(np.array_equal(train[k], again[k]) for k in (1, 5)) and np.array_equal(test, test2)
    assert set(train[1]) <= set(train[5]) and not set(train[5]) & set(test)
    assert np.bincount(labels[train[5]]).tolist() == [5, 5, 5] and np.bincount(labels[test]).tolist() == [5, 5, 5]
    assert not np.array_equal(split_shots(labels, [5], seed=8)[0][5], train[5])
    with pytest.raises(VitzooError, match="10 images; 10 shots need at least 11"):
        split_shots(labels, [10], seed=0)
    with pytest.raises(VitzooError, match="positive"):
        split_shots(labels, [0], seed=0)


def test_fewshot_accuracy_on_separable_features():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 12)
    centres = rng.normal(size=(5, 16)) * 10
    x = centres[labels] + rng.normal(size=(60, 16))
    results = fewshot_accuracy(Features(x, labels, 5), [1, 2, 5], seed=3)
    assert [(r.shots, r.train_images, r.test_images) for r in results] == [(1, 5, 35), (2, 10, 35), (5, 25, 35)]
    assert [r.accuracy for r in results] == [100.0, 100.0, 100.0]
    assert fewshot_accuracy(Features(x, labels, 5), [1, 2, 5], seed=3) == results
    noise = fewshot_accuracy(Features(rng.normal(size=(60, 16)), labels, 5), [5], seed=3)[0].accuracy
    assert noise < 60.0
    with pytest.raises(VitzooError, match="at least two classes"):
        fewshot_accuracy(Features(x[:12], labels[:12], 5), [1])


def test_features_of_real_image_files(tmp_path):
    skdata = pytest.importorskip("skimage.data")
    for k in range(3):
        (tmp_path / f"c{k}").mkdir()
        for j in range(4):
            solid(k, size=(30 + j, 20)).save(tmp_path / f"c{k}" / f"{j}.png")
    from PIL import Image

    Image.fromarray(skdata.chelsea()).save(tmp_path / "c0" / "chelsea.jpg")
    (tmp_path / "c1" / "bad.jpg").write_text("not an image")
    model = colour_model(0)  # no head: forward gives the pre-logit (pooled) features
    feats = extract_features(model, PP, image_folder(tmp_path))
    assert feats.x.shape == (13, 6) and feats.labels.tolist() == [0] * 5 + [1] * 4 + [2] * 4
    assert [k for k, _ in feats.failures] == ["bad"]
    x = torch.stack([preprocess_image(Image.open(p), PP) for p in sorted((tmp_path / "c0").iterdir())])
    with torch.no_grad():
        np.testing.assert_allclose(feats.x[:5], model(x).double().numpy(), rtol=1e-6)
    keep = np.arange(13) != 4  # chelsea.jpg sorts last in c0; the solid colours of 3 directions are separable
    solids = Features(feats.x[keep], feats.labels[keep], 3)
    results = fewshot_accuracy(solids, [1, 3], seed=0)
    assert [(r.shots, r.accuracy, r.test_images) for r in results] == [(1, 100.0, 3), (3, 100.0, 3)]


PROBED = {
    "vit": ViTConfig(16, 16, 3, 2, 32, img_size=32, num_classes=0),  # class token
    "gap": ViTConfig(16, 16, 3, 2, 32, img_size=32, num_classes=0, classifier="gap"),
    "bit": BiTConfig((1, 1), 1, img_size=32, num_classes=0),
}


def _probed_model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(PROBED[kind]).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _two_class_folder(root):
    for k in range(2):
        (root / f"c{k}").mkdir(parents=True)
        for j in range(3):
            solid(k, size=(30 + j, 20 + 3 * j)).save(root / f"c{k}" / f"{j}.png")
    return image_folder(root)


@pytest.mark.parametrize("kind", ["vit", "gap", "bit"])
def test_layer_features_are_the_block_output_normed_and_pooled(tmp_path, kind):
    model, data = _probed_model(kind), _two_class_folder(tmp_path)
    feats = extract_features(model, PP, data, layer=1)
    from PIL import Image

    x = torch.stack([preprocess_image(Image.open(path), PP) for path in data.sources])
    block = model.stages[0] if kind == "bit" else model.blocks[1]  # BiT: 0 is the root, 1 the first stage
    seen = []
    handle = block.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.inference_mode():
        model(x)
        maps = model.forward_intermediates(x, [1], norm=True, intermediates_only=True)[0]
    handle.remove()
    out = seen[0]
    with torch.inference_mode():  # the model's own pooling of its last block, applied to block 1
        want = {"vit": lambda: model.norm(out)[:, 0], "gap": lambda: model.norm(out).mean(dim=1),
                "bit": lambda: out.mean(dim=(2, 3))}[kind]()  # fmt: skip
    np.testing.assert_allclose(feats.x, want.double().numpy(), rtol=1e-5, atol=1e-6)
    if kind != "vit":  # the same, from forward_intermediates' map (the class token is not in it)
        np.testing.assert_allclose(feats.x, maps.mean(dim=(2, 3)).double().numpy(), rtol=1e-5, atol=1e-6)


def test_last_layer_is_the_default_features_without_representation(tmp_path):
    model, data = _probed_model("vit"), _two_class_folder(tmp_path)
    np.testing.assert_allclose(extract_features(model, PP, data, layer=-1).x, extract_features(model, PP, data).x,
                               rtol=1e-6, atol=1e-7)  # fmt: skip
    with pytest.raises(VitzooError, match=r"layer 3 does not exist: the model has encoder blocks \(0 to 2"):
        extract_features(model, PP, data, layer=3)
    with pytest.raises(VitzooError, match=r"has its root \(0\) and stages \(1 to 2"):
        check_layer(PROBED["bit"], -4, "the model")
