"""Exports carry the checkpoint's preprocessing and class names: an ONNX Runtime session fed by preprocessing written
here from the file's metadata alone (numpy and Pillow) gives vitzoo's inputs and answers; transformers' pipeline on
a transformers export gives `vitzoo predict`'s top-5; the timm file's pretrained_cfg names the classes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hubcache import make_testing_checkpoint, use_offline_hub
from PIL import Image

import vitzoo
from vitzoo.cli import main
from vitzoo.evaluate.data import preprocess_image
from vitzoo.exporting import export, preprocess_metadata
from vitzoo.zoo.preprocess import Preprocess

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
transformers = pytest.importorskip("transformers")
skdata = pytest.importorskip("skimage.data")

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
NAMES = tuple(f"class {c}" for c in "abcdefghij")


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        Image.fromarray(getattr(skdata, name)()).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """The `testing` architecture in the vit_jax layout (tests/jax_writer.py), converted with 10 class names; as a
    file naming no registry tag it has vit_jax's own preprocessing (the 'tf' resize)."""
    folder = tmp_path_factory.mktemp("labelled")
    (folder / "names.txt").write_text("\n".join(NAMES) + "\n")
    (folder / "ft.npz").write_bytes(make_testing_checkpoint()[0])
    result = _run("convert", folder / "ft.npz", folder / "ft.safetensors", "--labels", folder / "names.txt")
    assert result.exit_code == 0, result.output
    return folder / "ft.safetensors"


def _predict_json(*args) -> list[dict]:
    result = _run("predict", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- ONNX: preprocessing from metadata_props alone -----------------------------------------------------------------


def _tf_resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """tf.image.resize(bilinear, half-pixel centres, no antialiasing) in numpy, float64."""
    out = pixels.astype(np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        src = np.maximum((np.arange(size) + 0.5) * n / size - 0.5, 0)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        w = (src - lo).reshape((-1, 1, 1) if axis == 0 else (1, -1, 1))
        out = np.take(out, lo, axis) * (1 - w) + np.take(out, hi, axis) * w
    return out


def _from_metadata(image: Image.Image, meta: dict[str, str]) -> np.ndarray:
    """The network input for ``image`` using only the metadata's fields: (3, S, S) float32."""
    size, resize, crop = int(meta["img_size"]), meta["resize"], float(meta["crop_pct"])
    resample = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}[meta["interpolation"]]
    image = image.convert("RGB")
    if resize == "tf":
        pixels = _tf_resize(np.asarray(image), size)
    elif resize == "squash":
        pixels = np.asarray(image.resize((size, size), resample), dtype=np.float64)
    else:  # shorter side to floor(size / crop_pct), centre crop, offsets rounded half to even
        short = math.floor(size / crop)
        w, h = image.size
        new = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
        image = image.resize(new, resample)
        left, top = round((new[0] - size) / 2), round((new[1] - size) / 2)
        pixels = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float64)
    mean, std = (np.array(json.loads(meta[k]), dtype=np.float32) for k in ("mean", "std"))
    return ((pixels.astype(np.float32) / np.float32(255) - mean) / std).transpose(2, 0, 1)  # float32, as documented


IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.mark.parametrize(
    "pp",
    [Preprocess(64, "tf"), Preprocess(64, "squash", 1.0, "bicubic"),
     Preprocess(48, "shorter", 0.875, "bicubic", *IMAGENET_MEAN_STD)],
    ids=["tf", "squash", "shorter"],
)  # fmt: skip
def test_metadata_alone_reproduces_vitzoo_preprocessing(pp, photos):
    model = vitzoo.create("testing")
    meta = preprocess_metadata(model, pp)
    for path in sorted(photos.iterdir()):
        image = Image.open(path)
        expected = preprocess_image(image, pp).numpy()
        atol = 1e-6 if pp.resize == "tf" else 0  # tf: interpolated in float64 here, float32 in vitzoo
        np.testing.assert_allclose(_from_metadata(image, meta), expected, rtol=0, atol=atol)


def test_onnx_session_from_metadata_gives_vitzoo_predictions(labelled, photos, tmp_path):
    import onnx

    out = tmp_path / "ft.onnx"
    result = export(labelled, out, "onnx")
    assert "labels" in result.info["metadata_props"]
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["resize"] == "tf" and meta["img_size"] == "224" and meta["label_space"] == "custom"
    assert tuple(json.loads(meta["labels"])) == NAMES and meta["num_classes"] == "10"
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    images = sorted(photos.iterdir())
    x = np.stack([_from_metadata(Image.open(p), meta) for p in images])
    logits = session.run(None, {"pixel_values": x})[0].astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for p, ref in zip(_predict_json(labelled, *images), probs, strict=True):
        top = np.argsort(-ref)[:5]
        assert [g["index"] for g in p["top"]] == top.tolist()
        assert [g["name"] for g in p["top"]] == [json.loads(meta["labels"])[i] for i in top]
        np.testing.assert_allclose([g["probability"] for g in p["top"]], ref[top], rtol=0, atol=1e-5)


# --- transformers: preprocessor_config.json and id2label ------------------------------------------------------------


def _pipeline(directory: Path):
    return transformers.pipeline("image-classification", model=str(directory), device="cpu")


def test_transformers_pipeline_agrees_with_vitzoo_predict(tmp_path, monkeypatch, photos):
    """`testing.random-10cls` is resized to the square with Pillow (bilinear), which ViTImageProcessor does too."""
    use_offline_hub(tmp_path, monkeypatch)
    out = tmp_path / "exported"
    export("testing", out, "transformers")
    cfg = json.loads((out / "preprocessor_config.json").read_text())
    assert cfg["image_processor_type"] == "ViTImageProcessor" and cfg["resample"] == 2
    label2id = json.loads((out / "config.json").read_text())["label2id"]  # transformers' LABEL_i: no names known
    images = sorted(photos.iterdir())
    answers = _pipeline(out)([Image.open(p) for p in images], top_k=5)
    for ours, theirs in zip(_predict_json("testing", *images), answers, strict=True):
        assert [g["index"] for g in ours["top"]] == [label2id[a["label"]] for a in theirs]
        np.testing.assert_allclose([g["probability"] for g in ours["top"]], [a["score"] for a in theirs], atol=1e-4)


def test_transformers_export_names_the_classes(labelled, photos, tmp_path):
    """A 'tf' checkpoint: transformers can only approximate that resize, so the photos are given at 224x224, where
    both resizes leave the pixels as they are; the names and probabilities then agree exactly."""
    out = tmp_path / "hf"
    export(labelled, out, "transformers")
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): n for i, n in enumerate(NAMES)}
    assert config["label2id"] == {n: i for i, n in enumerate(NAMES)}
    crops = []
    for p in sorted(photos.iterdir()):
        crops.append(tmp_path / p.name)
        Image.open(p).convert("RGB").crop((0, 0, 224, 224)).save(crops[-1])
    answers = _pipeline(out)([Image.open(p) for p in crops], top_k=5)
    for ours, theirs in zip(_predict_json(labelled, *crops), answers, strict=True):
        assert [g["name"] for g in ours["top"]] == [a["label"] for a in theirs]
        np.testing.assert_allclose([g["probability"] for g in ours["top"]], [a["score"] for a in theirs], atol=1e-4)


# --- timm: pretrained_cfg -------------------------------------------------------------------------------------------


def test_timm_pretrained_cfg_has_the_preprocessing_and_names(labelled, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "ft.safetensors"
    export(labelled, out, "timm")
    with safe_open(str(out), "pt") as f:
        info = json.loads(f.metadata()["timm_info"])
    cfg = info["pretrained_cfg"]
    assert cfg["label_names"] == list(NAMES) and cfg["num_classes"] == 10 and info["label_space"] == "custom"
    assert cfg["input_size"] == [3, 224, 224] and cfg["mean"] == [0.5] * 3 and cfg["std"] == [0.5] * 3
    assert cfg["crop_mode"] == "squash" and cfg["crop_pct"] == 1.0 and cfg["interpolation"] == "bilinear"


def test_imagenet_1k_exports_name_their_space():
    model = vitzoo.create("testing", num_classes=1000)
    meta = preprocess_metadata(model, model.preprocess)
    assert meta["label_space"] == "imagenet-1k" and json.loads(meta["labels"])[999] == "toilet tissue"
    assert preprocess_metadata(vitzoo.create("testing", num_classes=0), model.preprocess)["label_space"] == "none"
