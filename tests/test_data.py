"""vitzoo.evaluate.data: preprocessing against transformers, TensorFlow and by hand; folders, HF datasets, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vitzoo.errors import VitzooError
from vitzoo.evaluate.data import (
    collate,
    flat_folder,
    image_folder,
    preprocess_image,
    resize_shape,
    tf_resize,
)
from vitzoo.evaluate.hf_datasets import hf_dataset, open_dataset
from vitzoo.evaluate.imagenet import IMAGENET_SYNSETS, synset_to_index
from vitzoo.zoo.preprocess import (
    Preprocess,
    default_preprocess,
    describe_preprocess,
    override_preprocess,
    validate_preprocess,
)

skdata = pytest.importorskip("skimage.data")


def test_synsets_are_the_standard_imagenet_order():
    assert len(IMAGENET_SYNSETS) == 1000 == len(set(IMAGENET_SYNSETS))
    assert list(IMAGENET_SYNSETS) == sorted(IMAGENET_SYNSETS)
    assert IMAGENET_SYNSETS[0] == "n01440764" and IMAGENET_SYNSETS[-1] == "n15075141"
    assert synset_to_index()["n01443537"] == 1  # goldfish
    assert synset_to_index()["n02123045"] == 281  # tabby cat


@pytest.mark.parametrize(
    ("size", "pp", "expected"),
    [
        ((451, 300), Preprocess(224), (224, 224)),
        ((451, 300), Preprocess(224, "shorter", 0.9), (372, 248)),  # floor(224 / 0.9) = 248, int(248 * 451 / 300)
        ((300, 451), Preprocess(224, "shorter", 0.9), (248, 372)),
        ((600, 400), Preprocess(384, "shorter", 1.0), (576, 384)),
    ],
)
def test_resize_shape_follows_timm(size, pp, expected):
    assert resize_shape(*size, pp) == expected


def _hf_processor(name: str, **kwargs):
    """A transformers image processor, its Pillow backend (transformers >= 5 names it ``...Pil``; before, the
    plain class was the Pillow one)."""
    transformers = pytest.importorskip("transformers")
    from transformers.image_utils import PILImageResampling

    cls = getattr(transformers, f"{name}Pil", None) or getattr(transformers, name)
    resample = {"bilinear": PILImageResampling.BILINEAR, "bicubic": PILImageResampling.BICUBIC}
    return cls(resample=resample[kwargs.pop("interpolation")], **kwargs)


IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

# Each vitzoo preprocessing next to the transformers processor that implements the same recipe, its sizes written
# out by hand: "squash" is ViTImageProcessor (resize to the square with Pillow, rescale, normalise); "shorter" is
# BitImageProcessor (short side to floor(img_size / crop_pct), long side int(short * long / short), centre crop).
HF_REFERENCES = [
    (Preprocess(64), "ViTImageProcessor", {"size": {"height": 64, "width": 64}, "interpolation": "bilinear"}),
    (Preprocess(64, "squash", 1.0, "bicubic"), "ViTImageProcessor",
     {"size": {"height": 64, "width": 64}, "interpolation": "bicubic"}),
    (Preprocess(64, "shorter", 0.875, "bicubic"), "BitImageProcessor",  # floor(64 / 0.875) = 73
     {"size": {"shortest_edge": 73}, "crop_size": {"height": 64, "width": 64}, "interpolation": "bicubic"}),
    (Preprocess(48, "shorter", 1.0, "bilinear", *IMAGENET_MEAN_STD), "BitImageProcessor",
     {"size": {"shortest_edge": 48}, "crop_size": {"height": 48, "width": 48}, "interpolation": "bilinear"}),
]  # fmt: skip

# Both sides take the same uint8 pixels from Pillow's resize; what is left is the float32 rounding of
# (x / 255 - mean) / std, under 3e-7 for these values (measured: 0.0 with transformers 5.24, Pillow 13).
HF_TOLERANCE = 1e-6


@pytest.mark.parametrize(("pp", "processor", "kwargs"), HF_REFERENCES)
@pytest.mark.parametrize("photo", ["chelsea", "camera", "logo", "coffee"])  # RGB 451x300, grey, RGBA, RGB 600x400
def test_preprocess_equals_transformers_image_processors(photo, pp, processor, kwargs):
    """The centre-crop offsets of these sizes are the same under both rounding rules (see the next test)."""
    image = Image.fromarray(getattr(skdata, photo)())
    x = preprocess_image(image, pp)
    assert x.shape == (3, pp.img_size, pp.img_size) and x.dtype == torch.float32
    ref = _hf_processor(processor, image_mean=list(pp.mean), image_std=list(pp.std), **kwargs)
    if processor == "BitImageProcessor":
        expected = ref(images=image, do_convert_rgb=True, return_tensors="np")["pixel_values"][0]
    else:  # ViTImageProcessor has no RGB conversion in every supported version: Pillow's, as transformers' own
        expected = ref(images=image.convert("RGB"), return_tensors="np")["pixel_values"][0]
    np.testing.assert_allclose(x.numpy(), expected, rtol=0, atol=HF_TOLERANCE)


def test_centre_crop_rounds_as_timm_not_as_transformers():
    """An odd margin: timm/torchvision take round((size - crop) / 2) (half to even), transformers floors it.

    coffee (600x400) at img_size 54, crop_pct 1: 81x54 after the resize, a margin of 27: timm's left offset is
    round(13.5) = 14, transformers' 27 // 2 = 13.
    """
    image = Image.fromarray(skdata.coffee())
    pp = Preprocess(54, "shorter", 1.0, "bicubic")
    x = preprocess_image(image, pp).numpy()
    kwargs = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "interpolation": "bicubic"}
    resized = _hf_processor("BitImageProcessor", size={"shortest_edge": 54}, do_center_crop=False, **kwargs)(
        images=image, return_tensors="np"
    )["pixel_values"][0]
    assert resized.shape == (3, 54, 81)
    np.testing.assert_allclose(x, resized[:, :, 14 : 14 + 54], rtol=0, atol=HF_TOLERANCE)
    hf = _hf_processor("BitImageProcessor", size={"shortest_edge": 54}, crop_size={"height": 54, "width": 54},
                       **kwargs)(images=image, return_tensors="np")["pixel_values"][0]  # fmt: skip
    np.testing.assert_allclose(hf, resized[:, :, 13 : 13 + 54], rtol=0, atol=HF_TOLERANCE)
    assert np.abs(x - hf).max() > 0.1


@pytest.mark.parametrize(("width", "left"), [(50, 0), (51, 0), (52, 1), (53, 2), (54, 2), (55, 2), (57, 4)])
def test_centre_crop_offsets_by_hand(width, left):
    """No resampling (the short side is already img_size, crop_pct 1), column j of the image holds the value 4 j: the
    first column of the crop tells the offset. round((width - 50) / 2), halves to even (torchvision's rule)."""
    a = np.broadcast_to((4 * np.arange(width, dtype=np.uint8))[None, :, None], (50, width, 3)).copy()
    x = preprocess_image(Image.fromarray(a), Preprocess(50, "shorter", 1.0, mean=(0.0,) * 3, std=(1.0,) * 3))
    assert torch.equal(x[0, 0], torch.arange(4 * left, 4 * (left + 50), 4, dtype=torch.float32) / 255)


def test_preprocess_values_of_a_solid_image():
    image = Image.new("RGB", (50, 30), (255, 0, 51))
    x = preprocess_image(image, Preprocess(16))  # mean = std = 0.5: [0, 1] -> [-1, 1]
    assert torch.equal(x[:, 3, 7], torch.tensor([1.0, -1.0, 51 / 255 * 2 - 1]))
    assert torch.equal(x, x[:, :1, :1].expand(3, 16, 16))


def test_centre_crop_keeps_the_centre():
    a = np.zeros((50, 150, 3), np.uint8)
    a[:, 50:100] = 255  # white centre square, black sides; the short side is already 50: no resampling
    x = preprocess_image(Image.fromarray(a), Preprocess(50, "shorter", 1.0))
    assert torch.all(x == 1.0)
    y = preprocess_image(Image.fromarray(a), Preprocess(50))  # squash keeps the sides
    assert y[0, 25, 0] == -1.0 and y[0, 25, 25] == 1.0


TF_FIXTURE = Path(__file__).parent / "data" / "tf_resize.npz"  # made by tests/data/make_tf_resize_fixture.py
TF_TOLERANCE = 1e-4  # on 0..255 pixel values: float32 rounding of the sampling positions and the lerp


def _tf_cases():
    with np.load(TF_FIXTURE, allow_pickle=False) as z:
        return [(name, int(size)) for name in z.files if "@" in name and not name.startswith("stride")
                for size in [name.split("@")[1]]]  # fmt: skip


@pytest.mark.parametrize(("key", "size"), _tf_cases())
def test_tf_resize_equals_tensorflow(key, size):
    """vit_jax's tf.image.resize(bilinear, antialias=False), as TensorFlow computed it, on real photos."""
    with np.load(TF_FIXTURE, allow_pickle=False) as z:
        image, expected, stride = z[key.split("@")[0]], z[key], int(z[f"stride@{size}"])
    ours = tf_resize(image, size)[::stride, ::stride]
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=0, atol=TF_TOLERANCE)
    # and through the preprocessing mode, from a PIL image (greyscale ones become RGB first)
    pil = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)
    x = preprocess_image(pil, Preprocess(size, resize="tf", mean=(0.0,) * 3, std=(1 / 255,) * 3))
    np.testing.assert_allclose(x.numpy().transpose(1, 2, 0)[::stride, ::stride], np.broadcast_to(expected, (
        *expected.shape[:2], 3)), rtol=0, atol=TF_TOLERANCE * 2)  # fmt: skip


def test_tf_resize_is_not_pillows_resize():
    """Pillow's bilinear antialiases when it shrinks: 'squash' is transformers' resize, not vit_jax's."""
    with np.load(TF_FIXTURE, allow_pickle=False) as z:
        image, expected, stride = z["camera"][..., 0], z["camera@224"][..., 0], int(z["stride@224"])
    pillow = np.asarray(Image.fromarray(image).resize((224, 224), Image.Resampling.BILINEAR), np.float32)
    assert np.abs(pillow[::stride, ::stride] - expected).mean() > 1.0  # grey levels, on average


def test_tf_mode_is_validated_and_described():
    assert validate_preprocess(Preprocess(384, resize="tf")).resize == "tf"
    with pytest.raises(VitzooError, match="resize 'tf' is bilinear only"):
        validate_preprocess(Preprocess(384, resize="tf", interpolation="bicubic"))
    with pytest.raises(VitzooError, match="resize must be one of 'tf', 'squash', 'shorter'"):
        validate_preprocess(Preprocess(384, resize="crop"))  # type: ignore[arg-type]
    assert describe_preprocess(Preprocess(384, resize="tf")) == (
        "resize to 384x384 as vit_jax (no antialiasing), bilinear, mean 0.5 std 0.5"
    )
    assert default_preprocess("vit", 384) == default_preprocess("bit", 384) == Preprocess(384, resize="tf")
    assert override_preprocess(Preprocess(384, resize="tf"), crop_pct=0.9).resize == "shorter"
    with pytest.raises(VitzooError, match="unknown model family"):
        default_preprocess("cnn", 224)


def test_override_and_describe():
    pp = Preprocess(384)
    assert override_preprocess(pp, img_size=224) == Preprocess(224)
    assert override_preprocess(pp, crop_pct=0.9) == Preprocess(384, "shorter", 0.9)
    assert describe_preprocess(Preprocess(384, "shorter", 0.9, "bicubic")) == (
        "shorter side 426, centre crop 384, bicubic, mean 0.5 std 0.5"
    )
    assert describe_preprocess(Preprocess(224)) == "resize to 224x224, bilinear, mean 0.5 std 0.5"
    with pytest.raises(VitzooError, match="crop_pct"):
        override_preprocess(pp, crop_pct=1.5)
    with pytest.raises(VitzooError, match="img_size"):
        override_preprocess(pp, img_size=0)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_classes_and_unreadable_files(tmp_path):
    _save(tmp_path / "cats" / "chelsea.jpg", skdata.chelsea())
    _save(tmp_path / "cats" / "sub" / "chelsea2.png", skdata.chelsea()[::2, ::2])
    _save(tmp_path / "cups" / "coffee.png", skdata.coffee())
    (tmp_path / "cups" / "notes.txt").write_text("not an image")
    (tmp_path / "cups" / "broken.jpg").write_bytes((tmp_path / "cats" / "chelsea.jpg").read_bytes()[:300])
    (tmp_path / "cups" / ".DS_Store").write_bytes(b"\0")  # hidden: ignored
    ds = image_folder(tmp_path).with_preprocess(Preprocess(32))
    assert ds.classes.names == ("cats", "cups") and not ds.classes.imagenet
    assert ds.keys == ["chelsea", "chelsea2", "broken", "coffee", "notes"]
    assert ds.labels == [0, 0, 1, 1, 1]
    items = [ds[i] for i in range(len(ds))]
    assert [it.error is None for it in items] == [True, True, False, True, False]
    batch = collate(items)
    assert batch.images.shape == (3, 3, 32, 32)
    assert batch.labels.tolist() == [0, 0, 1] and batch.indices.tolist() == [0, 1, 3]
    assert [i for i, _ in batch.failures] == [2, 4]
    assert "UnidentifiedImageError" in batch.failures[1][1]


def test_imagenet_synset_folders_map_to_standard_indices(tmp_path):
    for wnid in ("n01443537", "n02123045"):
        _save(tmp_path / wnid / "a.png", skdata.coffee()[:40, :40])
    ds = image_folder(tmp_path)
    assert ds.classes.imagenet and ds.num_classes == 1000
    assert ds.labels == [1, 281]


def test_subset_is_evenly_spaced(tmp_path):
    for c in "abcd":
        for i in range(5):
            _save(tmp_path / c / f"{i}.png", np.full((4, 4, 3), i, np.uint8))
    ds = image_folder(tmp_path)
    sub = ds.subset(4)
    assert sub.labels == [0, 1, 2, 3] and [s.rsplit("/", 2)[-2] for s in sub.sources] == ["a", "b", "c", "d"]
    assert ds.subset(100) is ds
    with pytest.raises(VitzooError, match="limit"):
        ds.subset(0)


def test_flat_folder_label_files(tmp_path):
    val = tmp_path / "val"
    for i in range(1, 4):
        _save(val / f"ILSVRC2012_val_{i:08d}.JPEG", skdata.coffee()[:20, :20])
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("ILSVRC2012_val_00000002.JPEG 5\nILSVRC2012_val_00000001 n01443537\n")
    ds = flat_folder(val, pairs)  # the third file is not labelled: not evaluated
    assert ds.labels == [5, 1] and ds.keys == ["ILSVRC2012_val_00000002", "ILSVRC2012_val_00000001"]
    assert ds[0].error is None and ds[1].error is None
    kaggle = tmp_path / "LOC_val_solution.csv"
    kaggle.write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000003,n15075141 1 2 3 4 n15075141 5 6 7 8\n"
        "ILSVRC2012_val_00000001,n01440764 1 2 3 4\n"
    )
    assert flat_folder(val, kaggle).labels == [999, 0]
    column = val / "labels.txt"  # inside the folder: not taken for an image
    column.write_text("3\n4\nn01443537\n")
    ds = open_dataset(str(val), labels_file=str(column))
    assert ds.labels == [3, 4, 1] and ds.keys[0] == "ILSVRC2012_val_00000001"
    column.write_text("3\n4\n")
    with pytest.raises(VitzooError, match="2 labels for 3 files"):
        flat_folder(val, column)
    column.write_text("3\n4\n1000\n")
    with pytest.raises(VitzooError, match=r"outside 0\.\.999"):
        flat_folder(val, column)
    column.write_text("3\n4\ncat\n")
    with pytest.raises(VitzooError, match="neither an ImageNet-1k WordNet id"):
        flat_folder(val, column)


def test_a_label_file_naming_files_not_in_the_folder_is_refused_up_front(tmp_path):
    """Not scored later as unreadable images: that would silently change the denominator."""
    val = tmp_path / "val"
    for i in range(1, 4):
        _save(val / f"ILSVRC2012_val_{i:08d}.JPEG", skdata.coffee()[:20, :20])
    (val / "sub").mkdir()
    _save(val / "sub" / "extra.JPEG", skdata.coffee()[:20, :20])
    lines = [f"ILSVRC2012_val_{i:08d}.JPEG {i}" for i in range(1, 4)] + ["sub/extra.JPEG 4"]  # a path under ROOT
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    assert flat_folder(val, pairs).labels == [1, 2, 3, 4]
    pairs.write_text("\n".join(lines + [f"gone{i}.JPEG 7" for i in range(5)]) + "\n")
    with pytest.raises(VitzooError) as e:
        flat_folder(val, pairs)
    assert str(e.value) == (
        f"{pairs}: 5 of 9 files it labels are not in {val} (first: gone0.JPEG, gone1.JPEG, gone2.JPEG); restore "
        "them, or remove their lines from the label file to evaluate the rest"
    )


def test_bad_paths_are_clear_errors(tmp_path):
    with pytest.raises(VitzooError, match="no such directory"):
        image_folder(tmp_path / "nope")
    with pytest.raises(VitzooError, match="no class folders"):
        image_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VitzooError, match="hold no files"):
        image_folder(tmp_path)
    with pytest.raises(VitzooError, match="no such label file"):
        flat_folder(tmp_path, tmp_path / "labels.txt")
    with pytest.raises(VitzooError, match="no data"):
        open_dataset()


def test_hf_dataset_from_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    photos = [skdata.chelsea(), skdata.coffee(), skdata.camera()]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    ds = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(p) for p in photos], "label": [1, 0, 1]}, features=features
    )
    datasets.DatasetDict({"validation": ds}).save_to_disk(str(tmp_path / "hf"))
    data = hf_dataset(str(tmp_path / "hf"), "validation").with_preprocess(Preprocess(24))
    assert data.labels == [1, 0, 1] and data.classes.names == ("a", "b") and len(data) == 3
    item = data[2]
    expected = preprocess_image(Image.fromarray(photos[2]), Preprocess(24))  # checked against transformers above
    torch.testing.assert_close(item.image, expected, rtol=0, atol=0)  # stored losslessly: the same pixels
    with pytest.raises(VitzooError, match="no split 'train'"):
        hf_dataset(str(tmp_path / "hf"), "train")


# --- one preprocessing for every entry point ------------------------------------------------------------------------


def _tiny_vit_file(path, img_size=32, num_classes=2, **metadata):
    """A vitzoo file of the registry's `testing` architecture (optionally naming where it came from)."""
    from vitzoo.models import build_model
    from vitzoo.weights.checkpoint import save_vitzoo
    from vitzoo.zoo.configs import ViTConfig

    config = ViTConfig(16, 10, 1, 2, 10, img_size=img_size, num_classes=num_classes)
    model = build_model(config)
    torch.nn.init.normal_(model.head.weight)  # not the zero head that would warn "constant logits"
    return save_vitzoo(path, model.state_dict(), config, metadata)


@pytest.mark.parametrize("pp", [None, Preprocess(32, "shorter", 0.875, "bicubic"), Preprocess(32)])
def test_every_entry_point_feeds_the_model_the_same_tensor(tmp_path, pp):
    """eval, fewshot, inspect (library and CLI) and model.preprocess: one photo, one tensor, bit for bit."""
    import vitzoo
    from vitzoo.cli.inspect import _load as inspect_load
    from vitzoo.evaluate.accuracy import evaluate
    from vitzoo.evaluate.fewshot import extract_features
    from vitzoo.inspection import load_images

    for name, cls in (("chelsea", "cats"), ("coffee", "cups")):
        _save(tmp_path / "data" / cls / f"{name}.png", getattr(skdata, name)())
    photo = tmp_path / "data" / "cats" / "chelsea.png"
    model = vitzoo.load(_tiny_vit_file(tmp_path / "m.safetensors"))
    pp = pp or model.preprocess  # None: the file's own preprocessing, vit_jax's resize
    assert (
        model.preprocess == Preprocess(32, resize="tf")
        and inspect_load(str(tmp_path / "m.safetensors"), None, False)[1] == model.preprocess
    )
    with Image.open(photo) as im:
        expected = preprocess_image(im, pp)
    seen = []
    model.patch_embed.register_forward_pre_hook(lambda _, args: seen.append(args[0][0].clone()))
    data = image_folder(tmp_path / "data")
    evaluate(model, pp, data)  # the classes' order: cats (chelsea) first
    extract_features(model, pp, data)
    inputs = {
        "dataset item": data.with_preprocess(pp)[0].image,
        "eval's model input": seen[0],
        "fewshot's model input": seen[1],
        "inspect": load_images([photo], pp).tensor[0],
    }
    for where, x in inputs.items():
        assert torch.equal(x, expected), where


def test_files_get_a_preprocessing_and_say_which(tmp_path):
    import vitzoo
    from vitzoo.models import build_model
    from vitzoo.zoo.catalog import REGISTRY
    from vitzoo.zoo.configs import ViTConfig

    plain = vitzoo.load(_tiny_vit_file(tmp_path / "plain.safetensors"))
    assert plain.preprocess == Preprocess(32, resize="tf")
    assert plain.preprocess_source == "default for a vit file: it names no registry tag"
    named = vitzoo.load(_tiny_vit_file(tmp_path / "named.safetensors", name="testing.random-10cls"))
    assert named.preprocess == Preprocess(32)  # the tag's (Pillow squash), at the file's resolution
    assert named.preprocess_source == "registry tag testing.random-10cls, named in the file"
    other_arch = vitzoo.load(_tiny_vit_file(tmp_path / "liar.safetensors", name="vit-b16.orig-in21k-ft-in1k"))
    assert other_arch.preprocess_source.startswith("default for a vit file")  # a name its weights contradict
    unknown = vitzoo.load(_tiny_vit_file(tmp_path / "unknown.safetensors", name="vit-b16.nope"))
    assert unknown.preprocess == Preprocess(32, resize="tf")
    # `vitzoo convert URL` keeps the original URL: a registry tag's url names the tag
    _, w = REGISTRY.resolve("vit-ti16.augreg-in21k-ft-in1k")
    config = ViTConfig(16, 192, 12, 3, 768, img_size=32, num_classes=0)
    from vitzoo.weights.checkpoint import save_vitzoo

    path = save_vitzoo(tmp_path / "ti.safetensors", build_model(config).state_dict(), config, {"source": w.url})
    ti = vitzoo.load(path)
    assert ti.preprocess == Preprocess(32, "shorter", 0.9, "bicubic")  # timm's, as that tag says
    assert ti.preprocess_source == "registry tag vit-ti16.augreg-in21k-ft-in1k, named in the file"


def test_integer_class_folders_are_labelled_by_their_integer(tmp_path):
    """ImageNet-V2's folders 0..999: folder "10" is class 10, not the 2nd name in string order (10 < 100 < 2)."""
    for name in ("2", "10", "100"):
        _save(tmp_path / name / f"img{name}.png", skdata.coffee()[:20, :20])
    ds = image_folder(tmp_path)
    assert ds.labels == [2, 10, 100] and ds.keys == ["img2", "img10", "img100"]
    assert ds.classes.by_index and not ds.classes.imagenet and ds.num_classes == 101
    assert "3 class folders named by class index" in ds.description
    _save(tmp_path / "cats" / "c.png", skdata.coffee()[:20, :20])
    with pytest.raises(VitzooError, match=r"mix integer names \('10'\) and other names \('cats'\)"):
        image_folder(tmp_path)
    (tmp_path / "cats" / "c.png").unlink()
    (tmp_path / "cats").rmdir()
    _save(tmp_path / "010" / "x.png", skdata.coffee()[:20, :20])
    with pytest.raises(VitzooError, match="class folders 010, 10 name the same class index"):
        image_folder(tmp_path)
