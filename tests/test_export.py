"""vitzoo export: ONNX run by onnxruntime and transformers directories loaded by transformers reproduce vitzoo's
logits (fp32, 1e-4 relative) for the `testing` model and small ViT, hybrid and BiT configs; bad inputs are one line
and leave no file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hubcache import use_offline_hub
from PIL import Image

import vitzoo
from vitzoo.cli import main
from vitzoo.exporting import ExportError, export, preprocessor_config, timm_model, timm_pretrained_cfg
from vitzoo.models import build_model
from vitzoo.weights.checkpoint import read_tensors, save_vitzoo
from vitzoo.zoo.catalog import REGISTRY as _REGISTRY
from vitzoo.zoo.configs import BiTConfig, HybridConfig, ViTConfig

ALL_NAMES = [s.name for s in _REGISTRY]  # the listed models and the hidden `testing` fixture

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
transformers = pytest.importorskip("transformers")

RTOL = 1e-4  # max |exported - vitzoo| / max |vitzoo|
SMALL = {
    "vit": ViTConfig(patch_size=8, width=48, depth=2, num_heads=4, mlp_dim=96, img_size=32, num_classes=5),
    "hybrid": ViTConfig(1, 32, 1, 2, 32, img_size=64, num_classes=3, backbone=HybridConfig((1, 1))),
    "bit": BiTConfig((1, 1), 1, img_size=64, num_classes=5),
}


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 with a Hub cache holding the `testing` checkpoint (as tests/test_hub.py)."""
    use_offline_hub(tmp_path, monkeypatch)


def _weights_file(config, path: Path) -> Path:
    """A vitzoo file with non-trivial random weights (a non-zero head, so logits mean something)."""
    torch.manual_seed(0)
    model = build_model(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return save_vitzoo(path, model.state_dict(), config)


def _inputs(size: int, batch: int = 5) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(7))


def _rel(got, ref: torch.Tensor) -> float:
    got = torch.as_tensor(np.asarray(got) if not isinstance(got, torch.Tensor) else got).double().reshape(ref.shape)
    return ((got - ref.double()).abs().max() / ref.double().abs().max()).item()


def _vitzoo_logits(src, x: torch.Tensor) -> torch.Tensor:
    model = vitzoo.load(src)
    with torch.inference_mode():
        return model(x)


def _no_leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# --- ONNX -------------------------------------------------------------------------------------------------------


def test_testing_model_by_name_to_onnx_runs_in_onnxruntime(offline_hub, tmp_path):
    out = tmp_path / "testing.onnx"
    result = vitzoo.export("testing", out, "onnx")
    assert result.model == "testing.random-10cls" and result.max_rel_diff <= RTOL
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    [inp], [outp] = session.get_inputs(), session.get_outputs()
    assert inp.name == "pixel_values" and isinstance(inp.shape[0], str) and inp.shape[1:] == [3, 224, 224]
    assert outp.name == "logits" and outp.shape[1] == 10
    for batch in (1, 4):  # the batch axis is dynamic
        x = _inputs(224, batch)
        got = session.run(None, {"pixel_values": x.numpy()})[0]
        assert _rel(got, _vitzoo_logits("testing", x)) <= RTOL
    assert _no_leftovers(tmp_path) == []


@pytest.mark.parametrize("family", ["hybrid", "bit"])
def test_small_hybrid_and_bit_to_onnx(family, tmp_path):
    src = _weights_file(SMALL[family], tmp_path / f"{family}.safetensors")
    out = tmp_path / "out" / f"{family}.onnx"
    result = export(src, out, "onnx")
    assert result.files == (out.name,) and out.stat().st_mode & 0o644 == 0o644
    x = _inputs(64, 3)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixel_values": x.numpy()})[0]
    assert _rel(got, _vitzoo_logits(src, x)) <= RTOL
    # StdConv kernels are baked in: the graph computes no weight statistics, the conv weights feed convs only
    import onnx

    graph = onnx.load(str(out)).graph
    kernels = {n.input[1] for n in graph.node if n.op_type == "Conv"}
    assert len(kernels) >= 5 and kernels <= {i.name for i in graph.initializer}
    assert not [n.op_type for n in graph.node if n.op_type != "Conv" and kernels & set(n.input)]


def _onnx_at_sizes(out: Path, src: Path, sizes) -> list[float]:
    """ONNX Runtime against vitzoo (loaded with dynamic_img_size) at each H x W: the relative logit differences."""
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    model = vitzoo.load(src, dynamic_img_size=True)
    diffs = []
    for h, w in sizes:
        x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h * w))
        with torch.inference_mode():
            diffs.append(_rel(session.run(None, {"pixel_values": x.numpy()})[0], model(x)))
    return diffs


def test_dynamic_size_vit_onnx_from_the_cli(tmp_path):
    src = _weights_file(SMALL["vit"], tmp_path / "vit.safetensors")
    out = tmp_path / "any-size.onnx"
    result = _cli(src, out, "--format", "onnx", "--dynamic-size", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["info"]["dynamic_size"] and info["info"]["size_multiple"] == 8
    assert "dynamic batch, height and width (multiples of 8)" in info["target"] and info["max_rel_diff"] <= RTOL
    [inp] = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_inputs()
    assert all(isinstance(d, str) for d in (inp.shape[0], inp.shape[2], inp.shape[3]))  # symbolic axes
    assert max(_onnx_at_sizes(out, src, [(32, 32), (48, 80), (64, 40)])) <= RTOL  # the traced size, and two others


@pytest.mark.slow  # a minute or more each: the exporter's symbolic shapes through the convolutions are slow to trace
@pytest.mark.parametrize("family", ["hybrid", "bit"])
def test_dynamic_size_hybrid_and_bit_onnx(family, tmp_path):
    src = _weights_file(SMALL[family], tmp_path / f"{family}.safetensors")
    out = tmp_path / f"{family}.onnx"
    result = export(src, out, "onnx", dynamic_size=True)
    assert result.info["size_multiple"] == 8 and result.max_rel_diff <= RTOL  # R with 2 stages: 4 x 2
    assert max(_onnx_at_sizes(out, src, [(96, 96), (64, 128)])) <= RTOL


def test_dynamic_size_is_for_onnx_only(tmp_path):
    src = _weights_file(SMALL["vit"], tmp_path / "vit.safetensors")
    _one_line_error(_cli(src, tmp_path / "m.safetensors", "--format", "timm", "--dynamic-size"), "for ONNX exports")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vit.safetensors"]


# --- transformers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["vit", "bit"])
def test_small_vit_and_bit_to_transformers(family, tmp_path):
    config = SMALL[family]
    src = _weights_file(config, tmp_path / f"{family}.safetensors")
    out = tmp_path / f"hf-{family}"
    result = export(src, out, "transformers")
    assert sorted(result.files) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    cls = transformers.ViTForImageClassification if family == "vit" else transformers.BitForImageClassification
    hf = cls.from_pretrained(out).eval()
    if family == "vit":  # the original numerics
        assert hf.config.hidden_act == "gelu_pytorch_tanh" and hf.config.layer_norm_eps == 1e-6
    x = _inputs(config.img_size)
    with torch.inference_mode():
        got = hf(pixel_values=x).logits
    assert _rel(got, _vitzoo_logits(src, x)) <= RTOL
    assert _no_leftovers(tmp_path) == []


def test_testing_model_by_name_to_transformers_with_its_preprocessing(offline_hub, tmp_path):
    out = tmp_path / "hf-testing"
    result = CliRunner().invoke(main, ["export", "testing", str(out), "--format", "transformers", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["info"]["class"] == "ViTForImageClassification"
    assert "checked with transformers" in result.stderr
    hf = transformers.ViTForImageClassification.from_pretrained(out).eval()
    x = _inputs(224, 2)
    with torch.inference_mode():
        assert _rel(hf(pixel_values=x).logits, _vitzoo_logits("testing", x)) <= RTOL
    processor = transformers.AutoImageProcessor.from_pretrained(out)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 224, 224)
    from vitzoo.evaluate.data import preprocess_image

    expected = preprocess_image(image, vitzoo.get_spec("testing").get_weights().preprocess)
    assert (pixels[0] - expected).abs().mean() < 0.05  # same resize, scale and normalisation (resamplers differ)


def test_feature_extractor_with_representation_layer_is_a_vit_model(tmp_path):
    config = ViTConfig(8, 32, 1, 4, 48, img_size=32, num_classes=0, representation_size=32)
    src = _weights_file(config, tmp_path / "in21k.safetensors")
    result = export(src, tmp_path / "hf", "transformers")
    assert result.info["class"] == "ViTModel"
    hf = transformers.ViTModel.from_pretrained(tmp_path / "hf").eval()
    x = _inputs(32)
    with torch.inference_mode():
        assert _rel(hf(pixel_values=x).pooler_output, _vitzoo_logits(src, x)) <= RTOL


def test_preprocessor_config_of_a_center_crop_checkpoint():
    pp = vitzoo.get_spec("bit-r50x1").get_weights().preprocess  # shorter side 448/1.0, centre crop, bilinear
    cfg = preprocessor_config(pp)
    assert cfg["image_processor_type"] == "BitImageProcessor" and cfg["resample"] == 2
    assert cfg["size"] == {"shortest_edge": 448} and cfg["crop_size"] == {"height": 448, "width": 448}


# --- timm -------------------------------------------------------------------------------------------------------


def test_timm_file_has_timm_keys_and_its_config(tmp_path):
    config = vitzoo.get_spec("vit-r-ti16").config.replace(img_size=64, num_classes=7, depth=1)  # stem-only hybrid
    src = _weights_file(config, tmp_path / "rti.safetensors")
    out = tmp_path / "rti-timm.safetensors"
    result = export(src, out, "timm")
    assert result.max_rel_diff <= RTOL
    tensors, metadata = read_tensors(out)
    assert "patch_embed.backbone.conv.weight" in tensors  # timm's name for the stem-only backbone
    assert "patch_embed.backbone.stem.conv.weight" not in tensors
    info = json.loads(metadata["timm_info"])
    assert info["model_name"] == "vit_tiny_r_s16_p8_224"
    assert info["kwargs"]["img_size"] == 64 and info["kwargs"]["act_layer"] == "gelu_tanh"
    assert info["pretrained_cfg"]["first_conv"] == "patch_embed.backbone.conv"
    x = _inputs(64)  # the file itself loads back into vitzoo with the same logits
    assert _rel(_vitzoo_logits(out, x), _vitzoo_logits(src, x)) <= RTOL


def test_bit_timm_head_is_a_1x1_conv(tmp_path):
    config = vitzoo.get_spec("bit-r50x1").config.replace(img_size=64, num_classes=4)
    src = _weights_file(config, tmp_path / "bit.safetensors")
    out = tmp_path / "bit-timm.safetensors"
    export(src, out, "timm")
    tensors, metadata = read_tensors(out)
    assert tensors["head.fc.weight"].shape == (4, 2048, 1, 1)
    info = json.loads(metadata["timm_info"])
    assert info["model_name"] == "resnetv2_50x1_bit" and info["kwargs"] == {"num_classes": 4}  # fully convolutional
    assert info["pretrained_cfg"]["input_size"] == [3, 64, 64] and info["pretrained_cfg"]["classifier"] == "head.fc"


@pytest.mark.parametrize(
    ("name", "timm_name"),
    [("vit-b16", "vit_base_patch16_224"), ("vit-ti16", "vit_tiny_patch16_224"), ("vit-h14", "vit_huge_patch14_224"),
     ("vit-r50-b16", "vit_base_r50_s16_224"), ("vit-r50-l32", "vit_large_r50_s32_224"),
     ("vit-r26-s32", "vit_small_r26_s32_224"), ("bit-r152x4", "resnetv2_152x4_bit")],
)  # fmt: skip
def test_timm_model_names(name, timm_name):
    config = vitzoo.get_spec(name).default_config.replace(representation_size=None) if name.startswith("vit") else (
        vitzoo.get_spec(name).default_config
    )  # fmt: skip
    got, kwargs = timm_model(config)
    assert got == timm_name and kwargs["num_classes"] == config.num_classes
    assert timm_pretrained_cfg(config, vitzoo.get_spec(name).get_weights().preprocess, got)["architecture"] == got


def test_a_custom_hybrid_keeps_its_own_encoder_sizes_in_the_timm_kwargs():
    """The timm name fixes the ResNet and the width only: depth, heads and MLP size go as kwargs."""
    config = vitzoo.get_spec("vit-r26-s32").default_config.replace(depth=3, num_heads=2, mlp_dim=768)
    name, kwargs = timm_model(config)
    assert name == "vit_small_r26_s32_224"
    assert (kwargs["depth"], kwargs["num_heads"], kwargs["mlp_ratio"]) == (3, 2, 2.0)


def test_every_registered_architecture_has_a_timm_name():
    for name in ALL_NAMES:
        if name == "testing":
            continue
        config = vitzoo.get_spec(name).config
        timm_model(config.replace(representation_size=None) if isinstance(config, ViTConfig) else config)


# --- bad inputs: one line, no file --------------------------------------------------------------------------------


def _cli(*args) -> object:
    return CliRunner().invoke(main, ["export", *map(str, args)])


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert all(f in lines[0] for f in fragments), lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def small_vit(tmp_path) -> Path:
    return _weights_file(SMALL["vit"], tmp_path / "vit.safetensors")


def test_unknown_format(small_vit, tmp_path):
    _one_line_error(_cli(small_vit, tmp_path / "x.engine", "--format", "tensorrt"), "unknown export format")
    with pytest.raises(ExportError, match="unknown export format"):
        export(small_vit, tmp_path / "x", "tflite")  # type: ignore[arg-type]
    assert not (tmp_path / "x.engine").exists() and not (tmp_path / "x").exists()


def test_unwritable_or_wrong_destinations(small_vit, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    _one_line_error(_cli(small_vit, blocker / "m.onnx", "--format", "onnx"), "cannot write")
    _one_line_error(_cli(small_vit, tmp_path / "m.bin", "--format", "onnx"), ".onnx file")
    _one_line_error(_cli(small_vit, tmp_path / "m.onnx", "--format", "timm"), ".safetensors file")
    (tmp_path / "adir.onnx").mkdir()
    _one_line_error(_cli(small_vit, tmp_path / "adir.onnx", "--format", "onnx", "--force"), "is a directory")
    existing = tmp_path / "keep.safetensors"
    existing.write_text("old")
    _one_line_error(_cli(small_vit, existing, "--format", "timm"), "exists", "--force")
    assert existing.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "adir.onnx", "keep.safetensors", "vit.safetensors"]


@pytest.mark.parametrize(
    ("family", "fmt", "why"),
    [("hybrid", "transformers", "ViTHybrid"), ("bit", "timm", "timm has no BiT"), ("gap", "transformers", "gap")],
)
def test_models_that_cannot_be_exported(family, fmt, why, tmp_path):
    config = SMALL.get(family) or SMALL["vit"].replace(classifier="gap")
    src = _weights_file(config, tmp_path / "m.safetensors")
    out = tmp_path / ("m-out.safetensors" if fmt == "timm" else "m-out")
    _one_line_error(_cli(src, out, "--format", fmt), why)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_failed_check_keeps_nothing_and_force_replaces(tmp_path):
    src = _weights_file(SMALL["bit"], tmp_path / "bit.safetensors")
    out = tmp_path / "hf"
    out.mkdir()
    (out / "old.txt").write_text("previous export")
    with pytest.raises(ExportError, match="disagrees with vitzoo"):  # an impossible tolerance: the check fails
        export(src, out, "transformers", force=True, tolerance=0.0)
    assert [p.name for p in out.iterdir()] == ["old.txt"] and _no_leftovers(tmp_path) == []
    export(src, out, "transformers", force=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    assert _no_leftovers(tmp_path) == []


def test_a_model_in_memory_is_exported_as_it_is(tmp_path):
    """A model just fine-tuned (here: changed in memory, left in train mode) exports with its own weights and its
    own preprocessing; the caller's model is not changed."""
    from dataclasses import replace

    model = vitzoo.create("testing")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    pp = replace(model.preprocess, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    model.checkpoint = replace(model.checkpoint, preprocess=pp)
    model.train()
    result = export(model, tmp_path / "hf", "transformers")
    assert model.training and result.max_rel_diff <= RTOL
    config = json.loads((tmp_path / "hf" / "preprocessor_config.json").read_text())
    assert config["image_mean"] == [0.1, 0.2, 0.3] and config["image_std"] == [0.4, 0.5, 0.6]
    hf = transformers.ViTForImageClassification.from_pretrained(tmp_path / "hf").eval()
    x = _inputs(model.config.img_size, 2)
    with torch.inference_mode():
        assert _rel(hf(pixel_values=x).logits, model.eval()(x)) <= RTOL


def test_what_is_not_a_vitzoo_model_is_refused(tmp_path):
    with pytest.raises(ExportError, match=r"Linear is not a vitzoo model"):
        export(torch.nn.Linear(2, 2), tmp_path / "m.onnx", "onnx")
    with pytest.raises(ExportError, match=r"exported at its resolution"):
        export(vitzoo.create("testing"), tmp_path / "m.onnx", "onnx", img_size=32)
    assert list(tmp_path.iterdir()) == []
