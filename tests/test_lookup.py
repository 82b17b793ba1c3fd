"""One resolution of every name (``vitzoo.zoo.lookup.resolve``): NAME, NAME.TAG, FILE and PATTERN mean the same, and
fail with the same one line, in every command that takes a model and in ``vitzoo.load``/``create``/``export``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hubcache import use_offline_hub
from PIL import Image

import vitzoo
from vitzoo.cli import COMMANDS, main
from vitzoo.errors import VitzooError
from vitzoo.weights.checkpoint import save_vitzoo
from vitzoo.zoo.catalog import CATALOGUE, DECLARED, REGISTRY
from vitzoo.zoo.checkpoint import Checkpoint
from vitzoo.zoo.lookup import is_path, resolve, resolve_one

# Every command that takes a model, with the rest of a cheap command line ({m}: the model, {d}: a temporary folder).
# eval, fewshot and finetune get a real (tiny) ImageFolder so that the model is what fails.
MODEL_COMMANDS = {
    "info": ["info", "{m}"],
    "flops": ["flops", "{m}", "--no-store"],
    "bench": ["bench", "{m}", "--no-store"],
    "eval": ["eval", "{m}", "--data", "{d}/data", "--no-store"],
    "fewshot": ["fewshot", "{m}", "--data", "{d}/data", "--shots", "1", "--no-store"],
    "predict": ["predict", "{m}", "{d}/img.png"],
    "inspect": ["inspect", "{m}", "--out", "{d}/out"],
    "export": ["export", "{m}", "{d}/o.onnx", "--format", "onnx"],
    "convert": ["convert", "{d}/tiny", "{d}/c.safetensors", "--expect", "{m}"],
    "download": ["download", "{m}"],
    "tradeoff": ["tradeoff", "{m}", "--reported-only"],
    "finetune": ["finetune", "{m}", "--data", "{d}/data", "-o", "{d}/ft.safetensors"],
}
BAD = ["vit-b99", "vit-b16.bogus", "testing.nope", "zzz*", "vit-b16.", "{d}/missing.safetensors", "{d}/adir", "{d}/x.y"]


def test_every_command_that_takes_a_model_is_covered():
    takes_no_model = {"list", "cache", "results", "report"}
    assert set(MODEL_COMMANDS) == set(COMMANDS) - takes_no_model


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A tiny weight file under three spellings, an image, an ImageFolder and an empty directory; cwd = there."""
    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VITZOO_DB", str(tmp_path / "results.db"))
    monkeypatch.chdir(tmp_path)
    model = vitzoo.create("testing", img_size=32)
    with torch.no_grad():
        model.head.weight.normal_()  # a real classifier, so predict has something to say
    for name in ("tiny", "my.model.v1.safetensors"):
        save_vitzoo(tmp_path / name, model.state_dict(), model.config)
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "img.png")
    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(2):  # fewshot's one shot needs two images per class
            Image.new("RGB", (32, 32), (i * 90, 0, 0)).save(tmp_path / "data" / c / f"{i}.png")
    (tmp_path / "adir").mkdir()
    return tmp_path


def _error(name: str) -> str:
    """The one line the resolution says for a bad name."""
    with pytest.raises(VitzooError) as caught:
        resolve(name)
    assert "\n" not in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("command", list(MODEL_COMMANDS))
def test_every_command_fails_on_a_bad_name_with_the_same_line(folder, command, bad):
    name = bad.format(d=folder)
    args = [a.format(m=name, d=folder) for a in MODEL_COMMANDS[command]]
    result = CliRunner().invoke(main, args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and errors == [f"error: {_error(name)}"], result.output
    assert not (folder / "out").exists() and not (folder / "o.onnx").exists()


@pytest.mark.parametrize("bad", BAD)
def test_the_python_api_fails_on_a_bad_name_with_the_same_line(folder, bad):
    name = bad.format(d=folder)
    expected = _error(name)
    for call in (vitzoo.load, vitzoo.create, lambda n: vitzoo.export(n, folder / "o.onnx", "onnx")):
        with pytest.raises(VitzooError) as caught:
            call(name)
        assert str(caught.value) == expected


def test_a_file_is_a_file_by_one_rule_with_or_without_an_extension_and_with_dots(folder):
    for spelling in ("tiny", "./tiny", str(folder / "tiny"), "my.model.v1.safetensors", Path("tiny")):
        assert is_path(spelling)
        [checkpoint] = resolve(spelling)
        assert checkpoint.is_file and checkpoint.config == vitzoo.create("testing", img_size=32).config
        model = vitzoo.load(spelling)
        assert model.checkpoint.path == model.name == str(Path(spelling))
        assert model.checkpoint.weights_sha256 is not None and model.config.img_size == 32
    for command in ("flops", "predict"):
        for spelling in ("tiny", "my.model.v1.safetensors"):
            args = [a.format(m=spelling, d=folder) for a in MODEL_COMMANDS[command]] + ["--json"]
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 0, result.output
            assert spelling in (result.stdout if command == "flops" else result.stderr)  # predict names it on stderr
    refused = CliRunner().invoke(main, ["info", "tiny"])  # catalogue-only commands refuse a file, naming it
    assert refused.stderr.strip() == "error: tiny is a file; `vitzoo info` takes catalogue names (NAME[.TAG]; " \
                                     "see `vitzoo list`)"  # fmt: skip


def test_name_tag_and_pattern_forms(folder):
    [default] = resolve("vit-b16")
    assert default.name == "vit-b16.orig-in21k-ft-in1k" == default.full_name
    assert resolve("vit-b16.orig-in21k-ft-in1k") == [default]
    assert [c.name for c in resolve("vit-b*")] == [resolve_one(a).name for a in ("vit-b8", "vit-b16", "vit-b32")]
    with pytest.raises(VitzooError, match=r"'vit-b\*' is a pattern \(it matches vit-b8\..*\); name one model"):
        resolve_one("vit-b*")
    assert resolve_one("vit-b16", img_size=384).config.img_size == 384
    for command, no_db in (("flops", "--no-store"), ("tradeoff", "--reported-only")):  # many models: the pattern
        result = CliRunner().invoke(main, [command, "vit-b*", no_db, "--json"])
        assert result.exit_code == 0, result.output
        assert {r["model"] for r in json.loads(result.stdout)} >= {"vit-b8", "vit-b16", "vit-b32"} or {
            r["model"] for r in json.loads(result.stdout)
        } >= {resolve_one(a).name for a in ("vit-b8", "vit-b16", "vit-b32")}


def test_the_testing_fixture_is_not_listed_but_resolves_by_name():
    listing = CliRunner().invoke(main, ["list", "--all", "--json"])
    assert listing.exit_code == 0 and "testing" not in listing.stdout
    assert "testing" not in vitzoo.list_models() and not resolve_one("testing").is_file
    assert resolve_one("testing").name == "testing.random-10cls"
    flops = CliRunner().invoke(main, ["flops", "testing", "--no-store", "--json"])
    assert flops.exit_code == 0 and json.loads(flops.stdout)[0]["model"] == "testing.random-10cls"


def test_load_resolves_a_name_once(tmp_path, monkeypatch):
    use_offline_hub(tmp_path, monkeypatch)
    import vitzoo.zoo.lookup as lookup
    import vitzoo.zoo.registry as registry

    calls = {"resolve_one": 0, "Registry.resolve": 0}
    real_one, real_registry = lookup.resolve_one, registry.Registry.resolve

    def counted_one(*args, **kwargs):
        calls["resolve_one"] += 1
        return real_one(*args, **kwargs)

    def counted_registry(self, name):
        calls["Registry.resolve"] += 1
        return real_registry(self, name)

    import vitzoo.weights.loading as loading

    monkeypatch.setattr(loading, "resolve_one", counted_one)
    monkeypatch.setattr(registry.Registry, "resolve", counted_registry)
    model = vitzoo.load("testing")
    assert model.name == "testing.random-10cls"
    assert calls == {"resolve_one": 1, "Registry.resolve": 1}


def test_checkpoint_describes_a_catalogue_entry_and_a_file(folder):
    entry = resolve_one("vit-b16.orig-in21k-ft-in1k-384")
    assert entry.arch == "vit-b16" and entry.tag == "orig-in21k-ft-in1k-384" and not entry.is_file
    assert entry.config == vitzoo.get_spec("vit-b16").config_for(vitzoo.get_spec("vit-b16").get_weights(entry.tag))
    assert [s.label for s in entry.sources][-1].endswith("ViT-B_16.npz") and entry.licence == "Apache-2.0"
    assert (entry.accuracy.top1, entry.accuracy.protocol, entry.preprocess.resize) == (83.97, "authors", "tf")
    assert resolve_one("vit-b16.augreg2-in21k-ft-in1k").licence is None  # timm's own fine-tune: no stated licence
    described = Checkpoint.from_file(folder / "my.model.v1.safetensors")
    assert described.is_file and described.config == vitzoo.create("testing", img_size=32).config
    assert described.accuracies == () and described.sources == ()
    with pytest.raises(AttributeError):
        entry.name = "x"  # frozen


def test_model_provenance_is_one_read_only_checkpoint():
    model = vitzoo.create("vit-s16.augreg-in21k-ft-in1k", img_size=64)
    assert (model.name, model.preprocess, model.preprocess_source, model.weights_sha256) == (
        model.checkpoint.name, model.checkpoint.preprocess, model.checkpoint.preprocess_source, None)  # fmt: skip
    for attr in ("name", "preprocess", "preprocess_source", "weights_sha256"):
        with pytest.raises(AttributeError):
            setattr(model, attr, None)
    from vitzoo.models import build_model

    bare = build_model(model.config)
    assert bare.checkpoint is None and bare.name is None and bare.preprocess is None


def test_the_catalogue_is_keyed_by_full_name_with_every_special_case_as_data():
    assert list(CATALOGUE) == [f"{s.name}.{w.tag}" for s in REGISTRY.listed() for w in s.weights]
    for full, weights in CATALOGUE.items():
        assert resolve_one(full).name == full and resolve_one(full).preprocess == weights.preprocess
    assert set(DECLARED) <= set(CATALOGUE)  # the hand-declared checkpoints are ordinary entries
    # the preprocessing is the row's, never chosen from a citation: a README number here, timm's there
    assert CATALOGUE["vit-s16.augreg-in21k-ft-in1k-384"].preprocess.resize == "tf"
    assert CATALOGUE["vit-s16.augreg-in21k-ft-in1k"].preprocess.resize == "shorter"
