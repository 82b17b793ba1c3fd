"""Converters: the original implementation's outputs, round trips through every layout, and bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from jax_writer import bit_jax_arrays, save_npz, vit_jax_arrays
from reference import CASES, inputs, logits, write_npz
from safetensors.torch import save_file

import vitzoo
from vitzoo.cli import main
from vitzoo.models import build_model
from vitzoo.weights.checkpoint import save_vitzoo
from vitzoo.weights.convert import convert_file
from vitzoo.weights.convert.torch_formats import canonical_to_timm, canonical_to_transformers, timm_to_canonical
from vitzoo.zoo.configs import BiTConfig, HybridConfig, ViTConfig

# Max relative error (max |diff| / max |ref|) against the original flax code. The two plain ViTs reproduce to
# < 1e-6. The hybrid's residual (2.0e-5) is the reference's own float32 rounding in its ResNet: our float64
# forward differs from it by the same 2.05e-5, our float32 is within 5e-6 of our float64, and changing any
# epsilon (GroupNorm, StdConv, LayerNorm) makes the difference larger, not smaller.
TOLERANCE = {"ti16_opt_10cls_224": 1e-5, "s16_gap_224": 1e-5, "r26_s32_augreg_224": 3e-5}


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("case", CASES)
def test_reproduces_the_original_implementation(case, tmp_path):
    npz = write_npz(case, tmp_path / f"{case}.npz")
    out = tmp_path / f"{case}.safetensors"
    result = _run("convert", npz, out)
    assert result.exit_code == 0, result.output
    assert "vit_jax checkpoint" in result.stderr
    model = vitzoo.load(out)
    with torch.inference_mode():
        got = model(torch.from_numpy(inputs())).numpy()
    ref = logits(case)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() / np.abs(ref).max() <= TOLERANCE[case]
    np.testing.assert_array_equal(got.argmax(1), ref.argmax(1))


def test_optimizer_state_is_ignored_explicitly(tmp_path):
    result = _run("convert", write_npz("ti16_opt_10cls_224", tmp_path / "a.npz"), tmp_path / "a.safetensors", "--json")
    assert '"ignored_keys": 2' in result.stdout
    assert "ignored 2 optimizer-state tensors" in result.stderr


def _random_state(config):
    torch.manual_seed(0)
    model = build_model(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model.state_dict()


VIT_CASES = {
    "token+pre_logits": ViTConfig(8, 32, 2, 4, 48, img_size=32, num_classes=7, representation_size=24),
    "gap": ViTConfig(8, 32, 2, 4, 48, img_size=32, num_classes=5, classifier="gap"),
    "features": ViTConfig(8, 32, 1, 4, 48, img_size=32, num_classes=0),
    "hybrid": ViTConfig(1, 32, 1, 4, 48, img_size=64, num_classes=3, backbone=HybridConfig((1, 2))),
    "hybrid-root-only": ViTConfig(2, 32, 1, 4, 48, img_size=32, num_classes=3, backbone=HybridConfig(())),
}


def _assert_same(converted, config, sd):
    assert converted.config == config
    assert converted.state_dict.keys() == sd.keys()
    for k in sd:
        torch.testing.assert_close(converted.state_dict[k], sd[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("linen", [False, True], ids=["pre-linen", "linen"])
@pytest.mark.parametrize("case", VIT_CASES)
def test_vit_jax_round_trip(case, linen, tmp_path):
    config = VIT_CASES[case]
    sd = _random_state(config)
    path = save_npz(vit_jax_arrays(sd, config.num_heads, linen=linen, gn_4d=True), tmp_path / "m.npz")
    _assert_same(convert_file(path), config, sd)


def test_bit_jax_round_trip(tmp_path):
    config = BiTConfig((1, 2), 1, num_classes=6)
    sd = _random_state(config)
    _assert_same(convert_file(save_npz(bit_jax_arrays(sd), tmp_path / "bit.npz")), config, sd)


TORCH_CASES = {
    "vit": ViTConfig(16, 192, 2, 3, 64, img_size=32, num_classes=4),
    "vit-in21k-pooler": ViTConfig(16, 192, 1, 3, 64, img_size=32, num_classes=0, representation_size=192),
    "hybrid-root-only": ViTConfig(2, 192, 1, 3, 64, img_size=32, num_classes=3, backbone=HybridConfig(())),
    "bit": BiTConfig((1, 1), 1, num_classes=5),
}


# vitzoo's own maps, both ways. timm's real names are checked against timm's source below (TIMM_FIXTURE); the
# one timm case kept here is the representation layer (``pre_logits.fc``) of older timm in21k ViTs, which the
# fixture's timm version no longer has. The registry's hybrids are on the Hub in timm format only.
ROUND_TRIPS = [(case, "transformers") for case in TORCH_CASES if case != "hybrid-root-only"] + [
    ("vit-in21k-pooler", "timm")
]


@pytest.mark.parametrize(("case", "fmt"), ROUND_TRIPS)
def test_torch_format_round_trip(case, fmt, tmp_path):
    config = TORCH_CASES[case]
    sd = _random_state(config)
    bit = isinstance(config, BiTConfig)
    foreign = canonical_to_timm(sd, bit) if fmt == "timm" else canonical_to_transformers(sd, bit)
    assert set(foreign) != set(sd) or fmt == "timm"
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in foreign.items()}, str(path))
    converted = convert_file(path)
    assert converted.source_format == fmt
    _assert_same(converted, config, sd)
    bin_path = tmp_path / "pytorch_model.bin"  # the same weights as a PyTorch .bin, read with weights_only=True
    torch.save(foreign, bin_path)
    _assert_same(convert_file(bin_path), config, sd)


# --- timm: the names timm's own modules have -------------------------------------------------------------------

# Written down from timm's source by tests/data/make_timm_keys_fixture.py (files and commits in its "source" header;
# timm itself cannot be installed here): key -> shape of timm's state dict, per configuration, and the vitzoo
# config of the same network.
TIMM_FIXTURE = json.loads((Path(__file__).parent / "data" / "timm_keys.json").read_text())
TIMM_CASES = sorted(TIMM_FIXTURE["configs"])


def _fixture_config(spec: dict):
    """The vitzoo config a fixture entry names."""
    if spec["family"] == "bit":
        return BiTConfig(tuple(spec["layers"]), spec["width_factor"], num_classes=spec["num_classes"])
    layers = spec.get("backbone_layers")
    return ViTConfig(spec["patch_size"], spec["width"], spec["depth"], spec["num_heads"], spec["mlp_dim"],
                     img_size=spec["img_size"], num_classes=spec["num_classes"],
                     classifier=spec.get("classifier", "token"),
                     backbone=None if layers is None else HybridConfig(tuple(layers)))  # fmt: skip


def _shapes(sd) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in sd.items()}


@pytest.mark.parametrize("case", TIMM_CASES)
def test_timm_key_map_gives_timms_own_names_and_shapes(case):
    entry = TIMM_FIXTURE["configs"][case]
    config = _fixture_config(entry["vitzoo"])
    with torch.device("meta"):
        sd = build_model(config).state_dict()
    timm_sd = canonical_to_timm(sd, isinstance(config, BiTConfig))
    assert _shapes(timm_sd) == entry["keys"]  # exactly timm's keys, each with timm's shape
    assert _shapes(timm_to_canonical(timm_sd)) == _shapes(sd)  # and the reverse map gives vitzoo's back


@pytest.mark.parametrize("case", TIMM_CASES)
def test_a_file_with_timms_names_loads_as_its_vitzoo_model(case, tmp_path):
    """Random tensors under timm's names and shapes (not written by vitzoo): read, placed, and mapped back exactly."""
    entry = TIMM_FIXTURE["configs"][case]
    config = _fixture_config(entry["vitzoo"])
    bit = isinstance(config, BiTConfig)
    g = torch.Generator().manual_seed(0)
    tensors = {k: torch.randn(shape, generator=g) for k, shape in entry["keys"].items()}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    torch.save(tensors, tmp_path / "pytorch_model.bin")  # read back with weights_only=True
    for path in (tmp_path / "model.safetensors", tmp_path / "pytorch_model.bin"):
        converted = convert_file(path, expected=config)  # a timm file cannot tell the number of heads
        assert converted.source_format == "timm" and converted.config == config
        back = canonical_to_timm(converted.state_dict, bit)
        assert back.keys() == tensors.keys()
        for k in tensors:
            torch.testing.assert_close(back[k], tensors[k], rtol=0, atol=0, msg=k)
    with torch.device("meta"):
        model = build_model(config)
    model.load_state_dict(converted.state_dict, strict=True, assign=True)
    if bit:  # timm's head is a 1x1 conv; vitzoo's a Linear holding the same numbers
        torch.testing.assert_close(model.head.weight, tensors["head.fc.weight"][:, :, 0, 0], rtol=0, atol=0)


def test_transformers_vit_agrees_with_ours(tmp_path):
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.ViTConfig(
        hidden_size=192, num_hidden_layers=2, num_attention_heads=3, intermediate_size=256, image_size=32,
        patch_size=8, num_labels=10, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,  # the original numerics
    )  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.ViTForImageClassification(hf_config).eval()
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = vitzoo.load(tmp_path / "hf" / "model.safetensors")
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        expected = hf(pixel_values=x).logits
        got = ours(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_transformers_in_memory_names_of_either_version_convert_both_ways(tmp_path):
    """transformers >= 5 renames the ViT layers in memory (``layers.i.attention.q_proj``; its files keep the old
    names): a ``torch.save(model.state_dict())`` of either version loads, and vitzoo's weights go back into it."""
    transformers = pytest.importorskip("transformers")
    from vitzoo.weights.convert.torch_formats import canonical_to_transformers, hf_layout

    hf_config = transformers.ViTConfig(
        hidden_size=192, num_hidden_layers=2, num_attention_heads=3, intermediate_size=256, image_size=32,
        patch_size=16, num_labels=5, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.ViTForImageClassification(hf_config).eval()
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    ours = vitzoo.load(tmp_path / "pytorch_model.bin")
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), hf(pixel_values=x).logits, rtol=1e-5, atol=1e-5)
    layout = hf_layout(hf.state_dict())
    back = canonical_to_transformers(ours.state_dict(), bit=False, layout=layout)
    assert set(back) == set(hf.state_dict())
    fresh = transformers.ViTForImageClassification(hf_config).eval()
    fresh.load_state_dict(back, strict=True)
    with torch.inference_mode():
        torch.testing.assert_close(fresh(pixel_values=x).logits, hf(pixel_values=x).logits, rtol=0, atol=0)


def test_transformers_bit_agrees_with_ours(tmp_path):
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.BitConfig(depths=[1, 1], hidden_sizes=[256, 512], num_labels=4, layer_type="preactivation")
    torch.manual_seed(0)
    hf = transformers.BitForImageClassification(hf_config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = vitzoo.load(tmp_path / "hf" / "model.safetensors")
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        expected = hf(pixel_values=x).logits
        got = ours(x)
    # transformers standardises with sqrt(var + 1e-8), the original (and vitzoo) with sqrt(var + 1e-10).
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-4)


# --- bad inputs: one clear line each -------------------------------------------------------------------------


@pytest.fixture
def tiny_npz(tmp_path):
    config = VIT_CASES["gap"]
    return vit_jax_arrays(_random_state(config), config.num_heads), tmp_path


def _convert_error(path, tmp_path, *extra) -> str:
    result = _run("convert", path, tmp_path / "out.safetensors", *extra)
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out.safetensors").exists()
    return result.stderr


def test_truncated_file(tiny_npz):
    arrays, tmp = tiny_npz
    data = save_npz(arrays, tmp / "m.npz").read_bytes()
    (tmp / "cut.npz").write_bytes(data[: len(data) // 2])
    assert "corrupt" in _convert_error(tmp / "cut.npz", tmp) or "not a weight file" in _convert_error(
        tmp / "cut.npz", tmp
    )


def test_garbage_and_missing_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"definitely not a checkpoint" * 10)
    assert "not a weight file" in _convert_error(tmp_path / "junk.npz", tmp_path)
    assert "no such file" in _convert_error(tmp_path / "absent.npz", tmp_path)


def test_unknown_layout(tmp_path):
    save_file({"encoder.weird.weight": torch.zeros(3)}, str(tmp_path / "x.safetensors"))
    assert "unrecognised checkpoint layout" in _convert_error(tmp_path / "x.safetensors", tmp_path)


def test_nan_weights(tiny_npz):
    arrays, tmp = tiny_npz
    arrays["Transformer/encoder_norm/scale"][3] = np.nan
    assert "NaN or Inf" in _convert_error(save_npz(arrays, tmp / "m.npz"), tmp)


def test_extra_and_missing_tensors(tiny_npz):
    arrays, tmp = tiny_npz
    assert "no place in the model" in _convert_error(
        save_npz({**arrays, "stray/kernel": np.zeros(2)}, tmp / "a.npz"), tmp
    )
    del arrays["Transformer/encoderblock_1/LayerNorm_2/bias"]
    assert "lacks" in _convert_error(save_npz(arrays, tmp / "b.npz"), tmp)


def test_shape_mismatch(tiny_npz):
    arrays, tmp = tiny_npz
    arrays["Transformer/encoderblock_0/MlpBlock_3/Dense_1/bias"] = np.zeros(31, np.float32)
    assert "shape mismatch" in _convert_error(save_npz(arrays, tmp / "m.npz"), tmp)


def test_model_mismatch_is_reported(tiny_npz):
    arrays, tmp = tiny_npz
    err = _convert_error(save_npz(arrays, tmp / "m.npz"), tmp, "--expect", "vit-b16")
    assert "does not match vit-b16" in err and "width=32 (expected 768)" in err


def test_pickles_are_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"patch_embed.proj.weight": Evil()}, tmp_path / "evil.bin")
    assert "refusing to unpickle" in _convert_error(tmp_path / "evil.bin", tmp_path)


def test_refuses_to_overwrite_and_non_safetensors_output(tiny_npz):
    arrays, tmp = tiny_npz
    src = save_npz(arrays, tmp / "m.npz")
    (tmp / "out.safetensors").write_bytes(b"keep me")
    result = _run("convert", src, tmp / "out.safetensors")
    assert result.exit_code == 1 and "--force" in result.stderr
    assert (tmp / "out.safetensors").read_bytes() == b"keep me"
    assert _run("convert", src, tmp / "out.safetensors", "--force").exit_code == 0
    assert _run("convert", src, tmp / "out.pt").exit_code == 1


def test_sha256_checked(tiny_npz):
    arrays, tmp = tiny_npz
    assert "sha256 mismatch" in _convert_error(save_npz(arrays, tmp / "m.npz"), tmp, "--sha256", "0" * 64)


def test_convert_adapts_resolution_and_head(tiny_npz):
    arrays, tmp = tiny_npz
    out = tmp / "ft.safetensors"
    assert (
        _run("convert", save_npz(arrays, tmp / "m.npz"), out, "--img-size", "48", "--num-classes", "9").exit_code == 0
    )
    with pytest.warns(vitzoo.weights.loading.ZeroHeadWarning, match="all zeros"):  # a fresh zero head, as the paper
        model = vitzoo.load(out)
    assert model.config.img_size == 48 and model.config.num_classes == 9
    assert not model.head.weight.any()


def test_push_to_hub_offline_is_one_line(tiny_npz, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    arrays, tmp = tiny_npz
    result = _run("convert", save_npz(arrays, tmp / "m.npz"), tmp / "o.safetensors", "--push-to-hub", "me/model")
    assert result.exit_code == 1 and result.stderr.strip().splitlines()[-1].startswith("error: pushing")
    assert (tmp / "o.safetensors").exists()  # the converted file is kept


def test_convert_labels_round_trip(tmp_path):
    """A fine-tune's class names go into the converted file and come back from vitzoo.load and its head's order."""
    names = [f"flower {i}" for i in range(10)]
    (tmp_path / "labels.txt").write_text("\n".join(names) + "\n")
    npz = write_npz("ti16_opt_10cls_224", tmp_path / "ti.npz")
    out = tmp_path / "ti.safetensors"
    result = _run("convert", npz, out, "--labels", tmp_path / "labels.txt", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labels"] == str(tmp_path / "labels.txt")
    assert "10 class names from" in result.stderr
    model = vitzoo.load(out)
    assert model.checkpoint.labels == tuple(names) and model.checkpoint.label_space == "custom"
    assert model.checkpoint.name == model.name == str(out) and model.checkpoint.weights_sha256 == model.weights_sha256
    assert (model.checkpoint.preprocess, model.checkpoint.preprocess_source) == (model.preprocess,
                                                                                 model.preprocess_source)  # fmt: skip
    assert vitzoo.load(out, num_classes=3).checkpoint.labels is None  # a new head has no names
    again, new_head = tmp_path / "again.safetensors", tmp_path / "new-head.safetensors"
    assert _run("convert", out, again, "--img-size", "256").exit_code == 0  # the same head keeps its names
    assert vitzoo.load(again).checkpoint.labels == tuple(names)
    assert _run("convert", out, new_head, "--num-classes", "3").exit_code == 0  # a new (zero) head has none
    with pytest.warns(vitzoo.weights.loading.ZeroHeadWarning):
        assert vitzoo.load(new_head).checkpoint.labels is None


# --- the bad-input table: every case exits non-zero with one stderr line and leaves the disk as it was ----------

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0  # root writes into read-only folders
NEEDS_NON_ROOT = pytest.mark.skipif(AS_ROOT, reason="root can write into a read-only folder")
OUT = "out.safetensors"

BAD_INPUTS = [  # (id, arguments, environment, what the one line must say)
    ("convert-into-proc", ["convert", "src.safetensors", "/proc/vitzoo-out.safetensors"], {}, "cannot write in /proc"),
    pytest.param("convert-into-read-only-dir", ["convert", "src.safetensors", "ro/out.safetensors"], {},
                 "cannot write in ro", marks=NEEDS_NON_ROOT, id="convert-into-read-only-dir"),
    ("convert-below-a-file", ["convert", "src.safetensors", "src.safetensors/x.safetensors"], {}, "not a directory"),
    ("convert-onto-a-directory", ["convert", "src.safetensors", "dir.safetensors", "--force"], {}, "is a directory"),
    ("convert-from-a-directory", ["convert", "dir.safetensors", OUT], {}, "dir.safetensors: is a directory"),
    ("convert-missing-source", ["convert", "absent.npz", OUT], {}, "no such file"),
    ("convert-existing-output", ["convert", "src.safetensors", "keep.safetensors"], {}, "--force"),
    ("convert-absurd-img-size", ["convert", "src.safetensors", OUT, "--img-size", "16000000"], {}, "GiB of memory"),
    ("convert-absurd-img-size-of-model", ["convert", "src.safetensors", OUT, "--expect", "vit-b16", "--img-size",
                                          "1600000"], {}, "GiB of memory"),
    ("convert-img-size-0", ["convert", "src.safetensors", OUT, "--img-size", "0"], {}, "positive integer"),
    ("convert-unknown-tag", ["convert", "src.safetensors", OUT, "--expect", "testing.bogus"], {},
     "did you mean testing.random-10cls"),
    ("convert-labels-too-few", ["convert", "src.safetensors", OUT, "--labels", "three.txt"], {},
     "3 class names for a head of 10 classes"),
    ("convert-labels-for-no-head", ["convert", "src.safetensors", OUT, "--labels", "three.txt", "--num-classes", "0"],
     {}, "no classification head"),
    ("convert-labels-missing", ["convert", "src.safetensors", OUT, "--labels", "absent.txt"], {},
     "absent.txt: no such label file"),
    ("convert-url-cache-is-a-file", ["convert", "http://127.0.0.1:9/x.npz", OUT], {"VITZOO_CACHE": "src.safetensors"},
     "src.safetensors is not a directory"),
    ("download-cache-is-a-file", ["download", "testing"], {"VITZOO_CACHE": "src.safetensors"}, "set VITZOO_CACHE"),
    ("download-cache-in-proc", ["download", "testing"], {"VITZOO_CACHE": "/proc/vitzoo-cache"}, "set VITZOO_CACHE"),
    pytest.param("download-cache-read-only", ["download", "testing"], {"VITZOO_CACHE": "ro/cache"},
                 "set VITZOO_CACHE", marks=NEEDS_NON_ROOT, id="download-cache-read-only"),
    ("download-offline-not-cached", ["download", "vit-b16"], {}, "HF_HUB_OFFLINE is set"),
    ("download-unknown-tag", ["download", "vit-b16.bogus"], {}, "did you mean"),
    ("cache-list-cache-is-a-file", ["cache", "list"], {"VITZOO_CACHE": "src.safetensors"}, "is not a directory"),
    ("cache-clean-unknown-tag", ["cache", "clean", "testing.bogus"], {}, "did you mean testing.random-10cls"),
    ("info-unknown-tag", ["info", "vit-b16.bogus"], {}, "did you mean vit-b16.orig-in21k"),
    ("info-empty-tag", ["info", "vit-b16."], {}, "did you mean vit-b16.orig-in21k"),
    ("misspelt-command", ["lsit"], {}, "did you mean `vitzoo list`"),
    ("misspelt-cache-command", ["cache", "lsit"], {}, "did you mean `vitzoo cache list`"),
]  # fmt: skip


def _snapshot(root) -> dict[str, tuple]:
    """Every path under ``root`` with, for files, size, mtime and mode (folders' mtimes move with probes)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.join(dirpath, name)] = ()
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A folder with a source checkpoint, a file not to overwrite, a read-only folder and a populated cache."""
    import huggingface_hub.constants as hf

    model = vitzoo.create("testing")
    save_vitzoo(tmp_path / "src.safetensors", model.state_dict(), model.config)
    (tmp_path / "keep.safetensors").write_bytes(b"keep me")
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    (tmp_path / "dir.safetensors").mkdir()
    (tmp_path / "ro").mkdir(mode=0o555)
    cached = tmp_path / "vz" / "converted" / "models--vitzoo--testing" / "0123" / "blob.safetensors"
    save_vitzoo(cached, model.state_dict(), model.config, {"name": "testing.random-10cls"})
    hf_cache = tmp_path / "hf"
    hf_cache.mkdir()
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    for key, value in {"HF_HUB_CACHE": hf_cache, "HF_HUB_OFFLINE": "1", "VITZOO_CACHE": tmp_path / "vz"}.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    (tmp_path / "ro").chmod(0o755)


@pytest.mark.parametrize(
    ("case", "args", "env", "says"), [c if hasattr(c, "marks") else pytest.param(*c, id=c[0]) for c in BAD_INPUTS]
)
def test_bad_inputs_fail_with_one_line_and_change_nothing(workspace, monkeypatch, case, args, env, says):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = _snapshot(workspace)
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), (case, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], (case, result.stderr)
    assert "Traceback" not in result.output and result.stdout == ""
    assert "run `vitzoo download" not in lines[0]  # inside `vitzoo download` too
    assert _snapshot(workspace) == before, case  # nothing created, changed or lost (the cached file is still there)
