"""vitzoo.evaluate.accuracy on real image files, with a hand-set ViT whose predictions are known exactly.

The "colour model" is a ViT (patch 16, GAP) whose encoder block is the identity (all its weights zero),
whose patch embedding writes each patch's mean colour v (and -v) into its token, so that the final
LayerNorm turns tokens into v / |v| (times a constant); the head then scores unit colour directions W.
A solid image of colour W[k] is therefore predicted as class k, and for any other image ``reference_scores``
computes the logits with numpy alone.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vitzoo.errors import VitzooError
from vitzoo.evaluate.accuracy import (
    Counts,
    RunOptions,
    Scoring,
    evaluate,
    load_real_labels,
    model_num_classes,
    result_from_counts,
    run_batches,
    score_batch,
)
from vitzoo.evaluate.data import flat_folder, image_folder, preprocess_image
from vitzoo.evaluate.imagenet import IMAGENET_SYNSETS
from vitzoo.models import build_model
from vitzoo.zoo.configs import ViTConfig
from vitzoo.zoo.preprocess import Preprocess

skdata = pytest.importorskip("skimage.data")

K = 8  # colour classes
PP = Preprocess(32, resize="tf")  # vit_jax's resize to 32x32 (a file's default): 2x2 patches of 16
DIRECTIONS = np.random.default_rng(0).normal(size=(K, 3))
DIRECTIONS /= np.linalg.norm(DIRECTIONS, axis=1, keepdims=True)
PHOTOS = ("coffee", "chelsea", "rocket", "coins", "logo", "hubble_deep_field")  # RGB, greyscale, RGBA


def colour_model(num_classes: int = K, img_size: int = 32) -> torch.nn.Module:
    """The hand-set ViT described in the module docstring (heads beyond K score 0)."""
    config = ViTConfig(16, 6, 1, 2, 4, img_size=img_size, num_classes=num_classes, classifier="gap")
    model = build_model(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.norm.weight.fill_(1.0)
        w = model.patch_embed.proj.weight  # (6, 3, 16, 16)
        for c in range(3):
            w[c, c] = 1 / 256
            w[c + 3, c] = -1 / 256
        if num_classes:
            model.head.weight[: min(K, num_classes), :3] = torch.tensor(DIRECTIONS[:num_classes], dtype=torch.float32)
    return model


def reference_scores(x: np.ndarray) -> np.ndarray:
    """The colour model's logits for one preprocessed (3, S, S) image, in numpy."""
    g = x.shape[1] // 16
    v = x.reshape(3, g, 16, g, 16).mean(axis=(2, 4)).reshape(3, -1).T.astype(np.float64)  # (tokens, 3)
    tok = np.concatenate([v, -v], axis=1)
    u = (tok - tok.mean(1, keepdims=True)) / np.sqrt(tok.var(1, keepdims=True) + 1e-6)
    return DIRECTIONS @ u.mean(0)[:3]


def solid(k: int, size=(40, 30)) -> Image.Image:
    """A solid image whose colour points along DIRECTIONS[k] (in the model's [-1, 1] input space)."""
    c = 0.9 * DIRECTIONS[k] / np.abs(DIRECTIONS[k]).max()
    return Image.new("RGB", size, tuple(round(v) for v in (c + 1) / 2 * 255))


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)())


def ranking(image: Image.Image) -> np.ndarray:
    """Classes of the colour model for ``image``, best first (checked free of near-ties)."""
    scores = reference_scores(preprocess_image(image, PP).numpy())
    order = np.argsort(-scores)
    assert np.min(-np.diff(scores[order])) > 1e-4
    return order


def build_folder(root) -> dict[str, float]:
    """ImageFolder c0..c7: 8 solid images (right), 6 photos (2 right, 2 right only in top-5, 2 wrong), 2 bad files.

    Returns the exact top-1 / top-5 (%) the colour model must score.
    """
    for k in range(K):
        (root / f"c{k}").mkdir(parents=True)
        solid(k).save(root / f"c{k}" / f"solid{k}.png")
    for i, name in enumerate(PHOTOS):
        rank = (0, 0, 2, 2, K - 1, K - 1)[i]  # the class's rank in the model's prediction
        photo(name).save(root / f"c{ranking(photo(name))[rank]}" / f"{name}.png")
    (root / "c0" / "readme.txt").write_text("not an image")
    (root / "c1" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 50)
    return {"top1": 100 * 10 / 14, "top5": 100 * 12 / 14}


def test_colour_model_matches_its_numpy_reference():
    model = colour_model()
    images = [photo(n) for n in PHOTOS] + [solid(k) for k in range(K)]
    x = torch.stack([preprocess_image(im, PP) for im in images])
    with torch.no_grad():
        logits = model(x).double().numpy()
    expected = np.stack([reference_scores(xi.numpy()) for xi in x])
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    assert logits[len(PHOTOS) :].argmax(1).tolist() == list(range(K))


def test_eval_top1_top5_exact(tmp_path):
    expected = build_folder(tmp_path)
    calls = []
    result = evaluate(colour_model(), PP, image_folder(tmp_path), options=RunOptions(batch_size=5),
                      progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    assert result.num_images == 14 and result.skipped == 2
    assert result.top1 == pytest.approx(expected["top1"], abs=1e-12)
    assert result.top5 == pytest.approx(expected["top5"], abs=1e-12)
    assert sorted(k for k, _ in result.failures) == ["readme", "truncated"]
    assert result.real_top1 is None and result.num_classes == K and result.preprocess == PP
    assert calls[-1] == (16, 16) and [d for d, _ in calls] == [5, 10, 15, 16]
    assert result.images_per_s > 0
    m = result.metrics()
    assert m["top1"] == result.top1 and m["img_size"] == 32 and m["preprocess"].startswith("resize to 32x32")
    json.dumps(m)  # storable


INDICES = (2, 10, 100, 7, 999, 31, 64, 500)  # where the colour directions sit in a 1000-way head; "10" < "100" < "2"


def remapped_colour_model() -> torch.nn.Module:
    """The colour model with a 1000-way head whose class k sits at row INDICES[k], lifted above the 992 others."""
    model = colour_model(1000)
    with torch.no_grad():
        w = model.head.weight[:K].clone()
        model.head.weight.zero_()
        model.head.weight[list(INDICES)] = w
        model.head.bias[list(INDICES)] = 10.0  # the 8 scored directions outrank the all-zero rows
    return model


def build_index_folders(root, name_of) -> dict[str, float]:
    """``build_folder``'s images (without the bad files) under folder ``name_of(ImageNet index)``; expected scores."""
    for k in range(K):
        (root / name_of(INDICES[k])).mkdir(parents=True, exist_ok=True)
        solid(k).save(root / name_of(INDICES[k]) / f"solid{k}.png")
    for i, name in enumerate(PHOTOS):
        label = INDICES[ranking(photo(name))[(0, 0, 2, 2, K - 1, K - 1)[i]]]
        (root / name_of(label)).mkdir(parents=True, exist_ok=True)
        photo(name).save(root / name_of(label) / f"{name}.png")
    return {"top1": 100 * 10 / 14, "top5": 100 * 12 / 14}


def test_integer_folders_score_like_their_wordnet_folders(tmp_path):
    """The same photos under folders 2, 10, 100, ... and under their WordNet ids: the same, exact, scores."""
    expected = build_index_folders(tmp_path / "numbers", str)
    build_index_folders(tmp_path / "wnids", lambda i: IMAGENET_SYNSETS[i])
    model = remapped_colour_model()
    by_number = evaluate(model, PP, image_folder(tmp_path / "numbers"), options=RunOptions(batch_size=4))
    by_wnid = evaluate(model, PP, image_folder(tmp_path / "wnids"), options=RunOptions(batch_size=4))
    assert by_number.num_images == by_wnid.num_images == 14
    assert by_number.top1 == by_wnid.top1 == pytest.approx(expected["top1"], abs=1e-12)
    assert by_number.top5 == by_wnid.top5 == pytest.approx(expected["top5"], abs=1e-12)
    with pytest.raises(VitzooError, match=r"head has 8 classes but .* has class index 999"):
        evaluate(colour_model(), PP, image_folder(tmp_path / "numbers"))


def test_counts_of_batches_add_up_in_any_order(tmp_path):
    """Per-batch counts are plain sums: shards of a dataset (other processes) can be scored apart and added."""
    expected = build_folder(tmp_path)
    data, model = image_folder(tmp_path), colour_model()
    parts = [score_batch(out, b, data.keys, 5) for out, b in run_batches(model, PP, data, model, RunOptions(3))]
    forward, backward = sum(parts, Counts()), sum(reversed(parts), Counts())
    assert (forward.top1, forward.top5) == (backward.top1, backward.top5) == (10, 12)
    assert sorted(forward.failures) == sorted(backward.failures) and len(forward.failures) == 2
    result = result_from_counts(forward, data, PP, seconds=1.0)
    assert (result.top1, result.top5, result.num_images) == (expected["top1"], expected["top5"], 14)


def test_eval_with_workers_gives_the_same_numbers(tmp_path):
    build_folder(tmp_path)
    a = evaluate(colour_model(), PP, image_folder(tmp_path), options=RunOptions(batch_size=4, workers=0))
    b = evaluate(colour_model(), PP, image_folder(tmp_path), options=RunOptions(batch_size=3, workers=2))
    assert (a.top1, a.top5, a.num_images, a.skipped) == (b.top1, b.top5, b.num_images, b.skipped)


def _imagenet_val(root, labels):
    """Flat val folder ILSVRC2012_val_0000000{i}.JPEG with solid colours of class i-1, and its label file."""
    root.mkdir()
    for i in range(1, len(labels) + 1):
        solid(i - 1).save(root / f"ILSVRC2012_val_{i:08d}.JPEG", quality=98)
    lf = root.parent / "val_labels.txt"
    lf.write_text("".join(f"ILSVRC2012_val_{i:08d}.JPEG {IMAGENET_SYNSETS[y]}\n" for i, y in enumerate(labels, 1)))
    return flat_folder(root, lf)


def test_real_labels_scoring(tmp_path):
    data = _imagenet_val(tmp_path / "val", [0, 1, 2, 9, 4, 5])  # predictions are 0..5: 5 of 6 right
    real = tmp_path / "real.json"
    real.write_text(json.dumps([[0], [1, 5], [4], [], [7, 4], [6]]))  # right, right, wrong, none, right, wrong
    result = evaluate(colour_model(1000), PP, data, scoring=Scoring(real_labels=load_real_labels(real)))
    assert result.top1 == pytest.approx(100 * 5 / 6, abs=1e-12) and result.num_images == 6
    assert result.real_top1 == pytest.approx(60.0, abs=1e-12) and result.real_images == 5
    # a JSON object keyed by file name scores the same way; images without an entry are left out
    real.write_text(json.dumps({"ILSVRC2012_val_00000002.JPEG": [3], "ILSVRC2012_val_00000005": [4]}))
    result = evaluate(colour_model(1000), PP, data, scoring=Scoring(real_labels=load_real_labels(real)))
    assert result.real_top1 == pytest.approx(50.0, abs=1e-12) and result.real_images == 2


def test_real_labels_errors(tmp_path):
    data = _imagenet_val(tmp_path / "val", [0, 1])
    bad = tmp_path / "real.json"
    bad.write_text("{not json")
    with pytest.raises(VitzooError, match="cannot read ReaL labels"):
        load_real_labels(bad)
    bad.write_text(json.dumps([["a"]]))
    with pytest.raises(VitzooError, match="not a list of class indices"):
        load_real_labels(bad)
    bad.write_text(json.dumps({"other.jpg": [1]}))
    with pytest.raises(VitzooError, match="none of the 2 images has a ReaL label"):
        evaluate(colour_model(1000), PP, data, scoring=Scoring(real_labels=load_real_labels(bad)))


def test_head_mismatch_is_a_clear_error(tmp_path):
    data = _imagenet_val(tmp_path / "val", [0, 1])
    with pytest.raises(VitzooError, match=r"head has 21843 classes but .* has 1000 \(an ImageNet-21k checkpoint"):
        evaluate(colour_model(21843), PP, data)
    with pytest.raises(VitzooError, match="no classification head"):
        evaluate(colour_model(0), PP, data)
    build_folder(tmp_path / "colours")
    with pytest.raises(VitzooError, match=r"head has 1000 classes but .* has 8"):
        evaluate(colour_model(1000), PP, image_folder(tmp_path / "colours"))
    assert model_num_classes(colour_model(3)) == 3


def test_only_unreadable_files_is_an_error(tmp_path):
    for k in range(2):
        (tmp_path / f"c{k}").mkdir()
        (tmp_path / f"c{k}" / "x.jpg").write_text("nope")
    with pytest.raises(VitzooError, match="no readable image"):
        evaluate(colour_model(2), PP, image_folder(tmp_path))
