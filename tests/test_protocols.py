"""vitzoo.evaluate.protocols on real photos: ImageNet-A/-R restricted to their 200 classes, ReaL with the shipped
labels, V2's integer folders, detection; each score checked against numpy over the model's own logits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_evaluate import PHOTOS, PP, colour_model, photo, solid

from vitzoo.errors import VitzooError
from vitzoo.evaluate.accuracy import RunOptions, evaluate
from vitzoo.evaluate.data import image_folder, open_image_file, preprocess_image
from vitzoo.evaluate.imagenet import IMAGENET_SYNSETS
from vitzoo.evaluate.protocols import (
    LABELS,
    PROTOCOLS,
    choose,
    detect,
    prepare,
    real_labels,
    set_name_protocol,
    subset_classes,
)


def random_head_model() -> torch.nn.Module:
    """The colour model (a real ViT) with a seeded random 1000-way head: every class gets its own score."""
    model = colour_model(1000)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor(rng.normal(size=(1000, 6)), dtype=torch.float32))
        model.head.bias.copy_(torch.tensor(rng.normal(size=1000) * 0.1, dtype=torch.float32))
    return model


def images() -> list:
    return [photo(n) for n in PHOTOS] + [solid(k, size=(40 + k, 30)) for k in range(8)]


def logits_of(model, pictures) -> np.ndarray:
    """The model's 1000 logits per picture, straight from its forward pass (no dataset, loader or scoring)."""
    with torch.no_grad():
        return model(torch.stack([preprocess_image(p, PP) for p in pictures])).double().numpy()


def ece_by_bins(confidence: np.ndarray, hit: np.ndarray) -> float:
    """15-bin ECE written out bin by bin."""
    total = 0.0
    for b in range(15):
        inside = (confidence > b / 15) & (confidence <= (b + 1) / 15)
        if inside.any():
            total += inside.sum() / len(hit) * abs(hit[inside].mean() - confidence[inside].mean())
    return total


def subset_tree(root, protocol: str, model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All 200 class folders of A or R, the photos in some: half under their restricted top-1 class, half not.

    Returns each picture's label, its logits and the ImageNet-1k columns of the protocol.
    """
    columns = np.array(subset_classes(protocol))
    for i in columns:
        (root / IMAGENET_SYNSETS[i]).mkdir(parents=True)
    pictures = images()
    logits = logits_of(model, pictures)
    order = columns[np.argsort(-logits[:, columns], axis=1)]  # restricted ranking, as ImageNet indices
    labels = np.array([order[j, 0] if j % 2 == 0 else order[j, 1 + j % 7] for j in range(len(pictures))])
    for j, (picture, label) in enumerate(zip(pictures, labels, strict=True)):
        picture.save(root / IMAGENET_SYNSETS[label] / f"{j}.png")
    return labels, logits, columns


@pytest.mark.parametrize("protocol", ["a", "r"])
def test_a_and_r_score_the_200_column_slice(tmp_path, protocol):
    model = random_head_model()
    root = tmp_path / "sketch"  # the class folders are unambiguous: they win over the set folder's name
    labels, logits, columns = subset_tree(root, protocol, model)
    assert detect(root)[0] == protocol
    assert choose(root, image_folder(root)) == (protocol, f"the 200 class folders of {PROTOCOLS[protocol].title}")
    data, scoring = prepare(image_folder(root), protocol)
    result = evaluate(model, PP, data, options=RunOptions(batch_size=5), scoring=scoring)
    sliced = logits[:, columns]  # the independent computation: numpy over the 200 columns
    pred = columns[sliced.argmax(axis=1)]
    top5 = columns[np.argsort(-sliced, axis=1)[:, :5]]
    assert result.top1 == pytest.approx(100 * np.mean(pred == labels), abs=1e-12) and result.top1 == 50.0
    assert result.top5 == pytest.approx(100 * np.mean((top5 == labels[:, None]).any(axis=1)), abs=1e-12)
    assert (logits.argmax(axis=1) != pred).any()  # without the mask the top-1 would be another class
    assert result.protocol == protocol and result.num_images == 14
    probs = np.exp(sliced - sliced.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    expected_ece = ece_by_bins(probs.max(axis=1), (pred == labels).astype(float))
    assert result.ece == pytest.approx(100 * expected_ece, abs=1e-4)  # float32 logits, other batches
    assert result.top1_ci_low <= result.top1 <= result.top1_ci_high


def test_a_class_outside_the_200_is_refused(tmp_path):
    a = subset_classes("a")
    outside = next(i for i in range(1000) if i not in a)
    for i in (a[0], outside):
        (tmp_path / IMAGENET_SYNSETS[i]).mkdir()
        solid(0).save(tmp_path / IMAGENET_SYNSETS[i] / "x.png")
    assert detect(tmp_path)[0] == "imagenet"
    assert choose(tmp_path, image_folder(tmp_path)) == ("imagenet", "2 ImageNet-1k synset folders (ImageNet-Sketch "
                                                        "alike: --protocol sketch)")  # fmt: skip
    with pytest.raises(
        VitzooError, match=f"class {IMAGENET_SYNSETS[outside]} is not one of the 200 classes of ImageNet-A"
    ):
        prepare(image_folder(tmp_path), "a")
    colours = tmp_path / "colours" / "c0"
    colours.mkdir(parents=True)
    solid(0).save(colours / "x.png")
    assert choose(tmp_path / "colours", image_folder(tmp_path / "colours")) == (None, "classes of its own")
    assert choose(tmp_path / "colours", image_folder(tmp_path / "colours"), "r") == ("r", "--protocol")
    with pytest.raises(VitzooError, match="needs ImageNet-1k labels"):
        prepare(image_folder(tmp_path / "colours"), "sketch")
    with pytest.raises(VitzooError, match="unknown protocol 'b'"):
        prepare(image_folder(tmp_path), "b")


def test_shipped_label_files():
    """Checked against the files' own first lines, copied by hand from timm's data/_info."""
    assert len(subset_classes("a")) == len(subset_classes("r")) == 200
    assert subset_classes("a")[:3] == (6, 11, 13) and IMAGENET_SYNSETS[6] == "n01498041"
    real = real_labels()
    assert len(real) == 50_000 and real["ILSVRC2012_val_00000001"] == frozenset()
    assert real["ILSVRC2012_val_00000002"] == {970, 795} and real["ILSVRC2012_val_00000003"] == {230, 231}
    assert sum(not v for v in real.values()) == 3163  # images its authors found no right label for
    assert (LABELS / "README.md").read_text().count("aa4b5850c1543fa488abf260f18390eda46cf85d") == 1


def test_real_scores_with_the_shipped_labels(tmp_path):
    """Photos named like ILSVRC val files: ReaL top-1 over the images with labels, from the json by hand."""
    shipped = json.loads((LABELS / "imagenet_real_labels.json").read_text())
    model = random_head_model()
    folder = tmp_path / "val" / IMAGENET_SYNSETS[0]
    folder.mkdir(parents=True)
    chosen = {1}  # image 1 has no ReaL label: left out of the score
    for j, picture in enumerate(images()):
        picture.convert("RGB").save(tmp_path / "x.jpg", quality=95)
        pred = int(logits_of(model, [open_image_file(str(tmp_path / "x.jpg"))])[0].argmax())
        right = j % 3 != 0  # two of three named after an image whose ReaL set holds the prediction
        entry = next(e for e in range(50_000) if e + 1 not in chosen and shipped[e]
                     and (pred in shipped[e]) == right)  # fmt: skip
        chosen.add(entry + 1)
        (tmp_path / "x.jpg").rename(folder / f"ILSVRC2012_val_{entry + 1:08d}.JPEG")
    solid(3).save(folder / "ILSVRC2012_val_00000001.JPEG", quality=95)
    data, scoring = prepare(image_folder(tmp_path / "val"), "real")
    result = evaluate(model, PP, data, scoring=scoring)
    files = sorted(folder.iterdir())
    logits = logits_of(model, [open_image_file(str(f)) for f in files])
    labels = [shipped[int(f.stem.rsplit("_", 1)[1]) - 1] for f in files]  # ILSVRC2012_val_00000001 is entry 0
    scored = [(int(z.argmax()) in y, np.argsort(-z)[:5]) for z, y in zip(logits, labels, strict=True) if y]
    assert result.real_images == len(scored) == 14 and result.num_images == 15
    assert result.real_top1 == pytest.approx(100 * np.mean([hit for hit, _ in scored]), abs=1e-12)
    assert result.real_top1 == pytest.approx(100 * 9 / 14, abs=1e-12) and result.protocol_top1 == result.real_top1
    expected_top5 = np.mean([any(int(c) in y for c in top) for (_, top), y in zip(scored, [y for y in labels if y],
                                                                                strict=True)])  # fmt: skip
    assert result.real_top5 == pytest.approx(100 * expected_top5, abs=1e-12)
    assert result.top1 == pytest.approx(100 * np.mean(logits.argmax(axis=1) == 0), abs=1e-12)  # folder labels


def test_v2_folders_and_detection(tmp_path):
    model = random_head_model()
    pictures = images()
    logits = logits_of(model, pictures)
    v2 = tmp_path / "imagenetv2-matched-frequency"
    for i in range(1000):
        (v2 / str(i)).mkdir(parents=True)
    labels = [int(z.argmax()) if j % 2 else (int(z.argmax()) + 1) % 1000 for j, z in enumerate(logits)]
    for j, (picture, label) in enumerate(zip(pictures, labels, strict=True)):
        picture.save(v2 / str(label) / f"{j}.png")
    assert detect(v2) == ("v2", "class folders 0 ... 999, as ImageNet-V2 ships")
    data, scoring = prepare(image_folder(v2), "v2")
    assert data.classes.imagenet and data.num_classes == 1000
    result = evaluate(model, PP, data, scoring=scoring)
    assert result.top1 == pytest.approx(100 * np.mean(logits.argmax(axis=1) == np.array(labels)), abs=1e-12) == 50.0
    assert result.protocol == "v2"
    assert [set_name_protocol(p) for p in (v2, "imagenet-a", "ImageNet_Sketch", "r", "real", "imagenet", "val")] == [
        "v2", "a", "sketch", "r", "real", "imagenet", None,
    ]  # fmt: skip
    assert detect(tmp_path / "nope") == (None, "not ImageNet-1k classes")
    assert set(PROTOCOLS) == {"imagenet", "real", "v2", "a", "r", "sketch"}
