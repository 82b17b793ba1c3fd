"""`vitzoo predict` and `vitzoo.predict` on real photos with converted original checkpoints (the vit_jax reference
cases of tests/data/reference): top-k equal to an independent forward + softmax, ImageNet-1k and ImageNet-21k
names, unreadable images, zeroed heads, random weights, bad inputs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from jax_writer import save_npz, vit_jax_arrays
from PIL import Image
from reference import write_npz

import vitzoo
from vitzoo.cli import main
from vitzoo.errors import VitzooError
from vitzoo.evaluate.data import preprocess_image
from vitzoo.models import build_model
from vitzoo.zoo import labels
from vitzoo.zoo.configs import ViTConfig

skdata = pytest.importorskip("skimage.data")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # sorted: the order a folder is read in


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i, name in enumerate(PHOTOS):
        Image.fromarray(getattr(skdata, name)()).save(folder / f"{name}.{'png' if i % 2 else 'jpg'}")
    return folder


def _converted(tmp_path_factory, case: str, *args) -> Path:
    """A reference checkpoint in the original vit_jax layout, converted by `vitzoo convert` as a user would."""
    folder = tmp_path_factory.mktemp(case)
    out = folder / f"{case}.safetensors"
    result = _run("convert", write_npz(case, folder / f"{case}.npz"), out, *args)
    assert result.exit_code == 0, result.output
    return out


FLOWERS = ("daisy", "dandelion", "rose", "sunflower", "tulip", "iris", "lily", "orchid", "poppy", "violet")


@pytest.fixture(scope="module")
def flowers_file(tmp_path_factory) -> Path:
    """ViT-Ti/16 with 10 classes, converted with its own class names (a user's fine-tune)."""
    names = tmp_path_factory.mktemp("names") / "flowers.txt"
    names.write_text("\n".join(FLOWERS) + "\n")
    return _converted(tmp_path_factory, "ti16_opt_10cls_224", "--labels", names)


@pytest.fixture(scope="module")
def in1k_file(tmp_path_factory) -> Path:
    return _converted(tmp_path_factory, "s16_gap_224")  # ViT-S/16 (gap), 1000 classes


def _vit_jax_file(path: Path, num_classes: int, *, zero_head: bool = False) -> Path:
    """A small vit_jax .npz in the released layout (tests/jax_writer.py) with a pre-logits layer and a head of
    ``num_classes``: non-zero weights, or the head zeroed as in the 2020 ImageNet-21k upstreams."""
    config = ViTConfig(16, 10, 1, 2, 10, num_classes=num_classes, representation_size=10)
    torch.manual_seed(0)
    model = build_model(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        if zero_head:
            model.head.weight.zero_()
            model.head.bias.zero_()
    return save_npz(vit_jax_arrays(model.state_dict(), config.num_heads), path)


@pytest.fixture(scope="module")
def in21k_file(tmp_path_factory) -> Path:
    """An AugReg-like upstream with a valid 21,843-class head, converted by `vitzoo convert`."""
    folder = tmp_path_factory.mktemp("in21k")
    out = folder / "in21k.safetensors"
    assert _run("convert", _vit_jax_file(folder / "in21k.npz", 21843), out).exit_code == 0
    return out


def _reference_probabilities(model, images: list[Path]) -> np.ndarray:
    """Forward + softmax computed here: the model's logits in float64 numpy, softmax by hand."""
    x = torch.stack([preprocess_image(Image.open(p).convert("RGB"), model.preprocess) for p in images])
    with torch.inference_mode():
        logits = model(x).double().numpy()
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _lemma(space_file: str, index: int) -> str:
    """The first WordNet lemma of class ``index``, read from the package's synset and lemma files by hand."""
    folder = Path(labels.__file__).parent
    wnid = (folder / space_file).read_text().split()[index]
    line = next(x for x in (folder / "imagenet_synset_to_lemma.txt").read_text().splitlines() if x.startswith(wnid))
    return line.split("\t")[1].split(",")[0]


def test_cli_top5_is_the_softmax_of_an_independent_forward_with_imagenet_1k_names(in1k_file, photos):
    result = _run("predict", in1k_file, photos, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    images = sorted(photos.iterdir())
    assert [Path(p["image"]) for p in out] == images
    probs = _reference_probabilities(vitzoo.load(in1k_file), images)
    for p, ref in zip(out, probs, strict=True):
        assert [g["rank"] for g in p["top"]] == [1, 2, 3, 4, 5]
        assert [g["index"] for g in p["top"]] == np.argsort(-ref)[:5].tolist()
        np.testing.assert_allclose([g["probability"] for g in p["top"]], np.sort(ref)[::-1][:5], rtol=0, atol=1e-6)
        assert [g["name"] for g in p["top"]] == [_lemma("imagenet_synsets.txt", g["index"]) for g in p["top"]]
    assert "1,000 classes (imagenet-1k)" in result.stderr
    assert "resize to 224x224 as vit_jax" in result.stderr  # a converted original: vit_jax's own preprocessing


def test_a_21843_class_head_answers_with_imagenet_21k_names(in21k_file, photos):
    model = vitzoo.load(in21k_file)
    assert model.checkpoint.label_space == "imagenet-21k"
    images = [photos / "chelsea.png", photos / "coffee.jpg"]
    calls = []
    predictions = vitzoo.predict(model, images, top_k=3, batch_size=1, progress=lambda *a: calls.append(a))
    assert calls == [(1, 2), (2, 2)]  # one report per batch
    probs = _reference_probabilities(model, images)
    for p, ref in zip(predictions, probs, strict=True):
        assert [g.index for g in p.top] == np.argsort(-ref)[:3].tolist()
        np.testing.assert_allclose([g.probability for g in p.top], np.sort(ref)[::-1][:3], rtol=0, atol=1e-6)
        assert [g.name for g in p.top] == [_lemma("imagenet21k_goog_synsets.txt", g.index) for g in p.top]


def test_library_takes_pil_images_and_clamps_top_k_to_the_head(photos):
    torch.manual_seed(0)
    model = vitzoo.create("testing").eval()  # 10 classes, no known names
    image = Image.open(next(photos.iterdir()))
    [p] = vitzoo.predict(model, image, top_k=50)
    assert p.image == "image[0]" and len(p.top) == 10 and p.error is None
    assert [g.name for g in p.top] == [None] * 10
    assert abs(sum(g.probability for g in p.top) - 1) < 1e-5
    with pytest.raises(VitzooError, match="top_k must be at least 1"):
        vitzoo.predict(model, image, top_k=0)


def test_a_fine_tune_answers_with_its_own_names(flowers_file, photos):
    model = vitzoo.load(flowers_file)
    [p] = vitzoo.predict(model, photos / "astronaut.jpg", top_k=10)
    ref = _reference_probabilities(model, [photos / "astronaut.jpg"])[0]
    assert [g.index for g in p.top] == np.argsort(-ref).tolist()
    assert [g.name for g in p.top] == [FLOWERS[g.index] for g in p.top]


def test_unreadable_images_are_one_line_each_and_the_others_print(flowers_file, photos, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    result = _run("predict", flowers_file, photos / "chelsea.png", tmp_path / "broken.jpg", tmp_path / "absent.png",
                  photos / "coffee.jpg", "--csv", "-k", "2")  # fmt: skip
    assert result.exit_code == 1
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(Path(r["image"]).name, r["rank"]) for r in rows] == [
        ("chelsea.png", "1"), ("chelsea.png", "2"), ("coffee.jpg", "1"), ("coffee.jpg", "2"),
    ]  # fmt: skip
    assert {"index", "name", "probability"} <= set(rows[0])
    lines = result.stderr.strip().splitlines()
    assert any("broken.jpg: cannot be read" in line for line in lines)
    assert any("absent.png: cannot be read (FileNotFoundError: no such file)" in line for line in lines)
    assert lines[-1] == "error: 2 of 4 image(s) could not be read"


def test_table_output_names_each_image_once(flowers_file, photos):
    result = CliRunner().invoke(main, ["predict", str(flowers_file), str(photos / "rocket.png"), "-k", "3"],
                                env={"COLUMNS": "160"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.count("rocket.png") == 1 and "top-3 of 10 classes" in result.stdout
    assert "10 classes (custom)" in result.stderr


def test_a_zeroed_in21k_head_is_refused_in_one_line(tmp_path, photos):
    npz = _vit_jax_file(tmp_path / "ViT-B_16.npz", 21843, zero_head=True)
    result = _run("predict", npz, photos)
    assert result.exit_code == 1 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "no classifier: its authors zeroed the head" in line
    with pytest.warns(vitzoo.weights.loading.ZeroHeadWarning):
        model = vitzoo.load(npz)
    with pytest.raises(VitzooError, match="zeroed"):
        vitzoo.predict(model, photos)


def test_random_init_says_the_answers_are_meaningless(photos):
    result = _run("predict", "testing", photos / "coffee.jpg", "--random-init", "--json", "-k", "2")
    assert result.exit_code == 0, result.output
    assert "RANDOM WEIGHTS" in result.stderr and "meaningless" in result.stderr
    assert len(json.loads(result.stdout)[0]["top"]) == 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["testing", "x.jpg", "--top-k", "0", "--random-init"], "--top-k must be at least 1, not 0"),
        (["vit-b17", "x.jpg"], "unknown model 'vit-b17'"),
        (["testing"], "Missing argument"),
        (["testing", "x.jpg", "--device", "cuda:7", "--random-init"], "cuda"),
        (["vit-b16.orig-in21k", "x.jpg", "--random-init"], "no classification head"),
    ],
)
def test_bad_inputs_are_one_line(args, says, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run("predict", *args)
    assert result.exit_code != 0 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and says in line, line
    assert list(tmp_path.iterdir()) == []
