"""The files the README's transcripts run on, made offline and the same every time (fixed seeds).

Each maker writes one file or folder at the path it is given. Random-weight models stand in for pretrained ones
(the Hub cannot be reached where the README is made); photos are scikit-image's, which ship with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import vitzoo
from vitzoo.weights.checkpoint import save_vitzoo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the reference checkpoints of tests/data/reference

from reference import build_arrays  # noqa: E402

SUITE_PHOTOS = ("astronaut", "brick", "camera", "cell", "chelsea", "checkerboard", "clock", "coffee", "coins",
                "colorwheel", "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo",
                "microaneurysms", "moon", "page", "rocket")  # fmt: skip


def photo(name: str) -> Image.Image:
    """scikit-image's photo ``name`` (``skimage.data.NAME()``) as an RGB image."""
    from skimage import data

    pixels = np.asarray(getattr(data, name)())
    return Image.fromarray(pixels.astype(np.uint8) * 255 if pixels.dtype == bool else pixels).convert("RGB")


def vit_ti16_random(path: Path) -> None:
    """ViT-Ti/16 at 224 px with its original random initialisation (seed 0), the zero head `vitzoo.create` gives
    re-drawn (std 0.02): `vitzoo eval` refuses constant logits."""
    torch.manual_seed(0)
    model = vitzoo.create("vit-ti16", img_size=224)
    torch.nn.init.normal_(model.head.weight, std=0.02)
    save_vitzoo(path, model.state_dict(), model.config)


def testing_random(path: Path) -> None:
    """The `testing` architecture (21k parameters), random weights (seed 0), a 1000-way head drawn from N(0, 1)."""
    torch.manual_seed(0)
    model = vitzoo.create("testing", num_classes=1000)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor(rng.normal(size=tuple(model.head.weight.shape)), dtype=torch.float32))
        model.head.bias.copy_(torch.tensor(rng.normal(size=1000), dtype=torch.float32))
    save_vitzoo(path, model.state_dict(), model.config)


def s16_gap_npz(path: Path) -> None:
    """The `s16_gap_224` reference case (ViT-S/16, gap, 1000 classes) in the released vit_jax `.npz` layout."""
    with open(path, "wb") as f:
        np.savez(f, **build_arrays("s16_gap_224"))


def predict_photos(path: Path) -> None:
    """photos/: scikit-image's astronaut, chelsea and coffee as JPEG files."""
    path.mkdir()
    for name in ("astronaut", "chelsea", "coffee"):
        photo(name).save(path / f"{name}.jpg")


def _noisy(path: Path, colour: tuple[int, int, int], rng: np.random.Generator) -> None:
    pixels = np.clip(np.array(colour) + rng.normal(0, 40, (96, 128, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def colour_val(path: Path) -> None:
    """val/: two ImageNet synset folders of two noisy colour images each, and a text file that is not an image."""
    rng = np.random.default_rng(0)
    for synset, colour in (("n01440764", (200, 60, 60)), ("n07920052", (60, 60, 200))):
        (path / synset).mkdir(parents=True)
        for i in range(2):
            _noisy(path / synset / f"{synset}_{i}.png", colour, rng)
    (path / "n07920052" / "notes.txt").write_text("not an image\n")


def colour_fs(path: Path) -> None:
    """fs/: red, green and blue, eight noisy images each."""
    rng = np.random.default_rng(1)
    for name, colour in (("red", (220, 40, 40)), ("green", (40, 220, 40)), ("blue", (40, 40, 220))):
        (path / name).mkdir(parents=True)
        for i in range(8):
            _noisy(path / name / f"{i}.png", colour, rng)


def photo_crops(path: Path) -> None:
    """fs/: eight random crops (40-80% of the shorter side, seed 0) of each of coffee, chelsea and rocket."""
    rng = np.random.default_rng(0)
    for name in ("coffee", "chelsea", "rocket"):
        (path / name).mkdir(parents=True)
        image = photo(name)
        for i in range(8):
            side = int(min(image.size) * rng.uniform(0.4, 0.8))
            left, top = (int(rng.integers(0, image.size[k] - side + 1)) for k in (0, 1))
            image.crop((left, top, left + side, top + side)).save(path / name / f"{i}.png")


def suite(path: Path, model_file: Path) -> None:
    """A robustness suite of the 20 photos in each of five sets, each photo filed under the model's own top-1 (under
    the set's protocol) with probability 1/2, under another of the set's classes otherwise; in `real`, named after
    a validation image whose ReaL labels hold the model's top-1 exactly when the folder does."""
    from vitzoo.evaluate.data import preprocess_image
    from vitzoo.evaluate.imagenet import IMAGENET_SYNSETS
    from vitzoo.evaluate.protocols import real_labels, subset_classes

    model = vitzoo.load(str(model_file))
    pictures = [photo(name) for name in SUITE_PHOTOS]
    with torch.inference_mode():
        logits = model(torch.stack([preprocess_image(p, model.preprocess) for p in pictures])).numpy()
    rng = np.random.default_rng(0)
    real = real_labels()
    val_names = sorted(real)
    used: set[str] = set()
    for set_name, protocol in (("imagenet-a", "a"), ("imagenet-r", "r"), ("imagenetv2", "v2"), ("real", "real"),
                               ("sketch", "sketch")):  # fmt: skip
        columns = np.array(subset_classes(protocol) if protocol in ("a", "r") else range(1000))
        order = columns[np.argsort(-logits[:, columns], axis=1, kind="stable")]
        folder = (lambda k: str(k)) if protocol == "v2" else (lambda k: IMAGENET_SYNSETS[k])
        if protocol in ("a", "r", "v2"):
            for k in columns:
                (path / set_name / folder(k)).mkdir(parents=True)
        for j, (name, picture) in enumerate(zip(SUITE_PHOTOS, pictures, strict=True)):
            hit = bool(rng.random() < 0.5)
            label = order[j, 0] if hit else order[j, rng.integers(1, len(columns))]
            (path / set_name / folder(label)).mkdir(parents=True, exist_ok=True)
            if protocol == "real":
                start = int(rng.integers(len(val_names)))
                turn = val_names[start:] + val_names[:start]
                name = next(s for s in turn if s not in used and real[s] and (order[j, 0] in real[s]) == hit)
                used.add(name)
            picture.save(path / set_name / folder(label) / f"{name}.png")
