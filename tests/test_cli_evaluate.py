"""`vitzoo eval`, `vitzoo fewshot` and `vitzoo tradeoff` end to end, offline: the hand-set colour model is saved
to a vitzoo safetensors file and evaluated on an ImageFolder of real photos and generated images."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from test_evaluate import K, build_folder, colour_model, reference_scores, solid

from vitzoo.checkpoint import save_vitzoo
from vitzoo.cli import main
from vitzoo.data import preprocess_image
from vitzoo.registry import Preprocess
from vitzoo.store import ResultStore


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    from vitzoo.cli._output import console

    monkeypatch.setattr(console, "_width", 250)  # tables as on a wide terminal, not folded at 80 columns


PP224 = Preprocess(224)  # vit-b16's registry preprocessing


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def model_file(tmp_path):
    model = colour_model()
    return save_vitzoo(tmp_path / "colour.safetensors", model.state_dict(), model.config)


def test_eval_json_and_store(tmp_path, model_file):
    expected = build_folder(tmp_path / "data")
    db = tmp_path / "results.sqlite"
    result = run("eval", model_file, "--data", tmp_path / "data", "-j", "0", "--db", db, "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["model"] == str(model_file) and row["num_images"] == 14 and row["skipped"] == 2
    assert row["top1"] == pytest.approx(expected["top1"]) and row["top5"] == pytest.approx(expected["top5"])
    assert row["preprocess"] == "resize to 32x32, bilinear, mean 0.5 std 0.5" and row["images_per_s"] > 0
    assert "2 file(s) could not be read" in result.stderr and "readme" in result.stderr
    stored = ResultStore(db).query(kind="eval")
    assert len(stored) == 1 and stored["top1"][0] == pytest.approx(expected["top1"])
    assert not stored["imagenet"][0] and stored["num_classes"][0] == K
    assert stored["weights_sha256"][0] == hashlib.sha256(model_file.read_bytes()).hexdigest()  # the file evaluated


def test_eval_table_limit_and_overrides(tmp_path, model_file):
    build_folder(tmp_path / "data")
    result = run("eval", model_file, "--data", tmp_path / "data", "-j", "0", "--no-store", "--limit", "4",
                 "--crop-pct", "0.875")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "top-1 %" in result.stdout and "shorter side 36, centre crop 32, bilinear" in result.stdout
    assert "ReaL" not in result.stdout
    csv_out = run("eval", model_file, "--data", tmp_path / "data", "-j", "0", "--no-store", "--csv", "--limit", "8")
    (row,) = list(csv.DictReader(io.StringIO(csv_out.stdout)))
    assert int(row["num_images"]) + int(row["skipped"]) == 8


def test_eval_user_errors_are_one_line(tmp_path, model_file):
    build_folder(tmp_path / "data")
    wrong = colour_model(21843)
    big = save_vitzoo(tmp_path / "big.safetensors", wrong.state_dict(), wrong.config)
    for wnid in ("n01440764", "n01443537"):
        (tmp_path / "in1k" / wnid).mkdir(parents=True)
        solid(0).save(tmp_path / "in1k" / wnid / "a.png")
    cases = [
        (("eval", big, "--data", tmp_path / "in1k"), "head has 21843 classes but"),
        (("eval", "vit-b16.augreg-in21k", "--data", tmp_path / "in1k"), "(an ImageNet-21k checkpoint: pick a tag"),
        (("eval", "vit-b16.orig-in21k", "--data", tmp_path / "in1k"), "its authors zeroed the classification head"),
        (("eval", "vit-b16", "--data", tmp_path / "data"), "head has 1000 classes but"),  # checked before download
        (("eval", model_file, "--data", tmp_path / "nope"), "no such directory"),
        (("eval", model_file), "no data: give --data PATH or --hf-dataset NAME"),
        (("eval", model_file, "--data", tmp_path / "data", "--limit", "0"), "limit must be positive"),
        (("eval", model_file, "--data", tmp_path / "data", "--crop-pct", "2"), "crop_pct must be in (0, 1]"),
        (("eval", model_file, "--data", tmp_path / "data", "--real-labels", tmp_path / "x.json"), "cannot read ReaL"),
        (("fewshot", model_file, "--data", tmp_path / "data", "--shots", "a"), "--shots takes comma-separated"),
        (("fewshot", model_file, "--data", tmp_path / "data", "--device", "tpu"), "device must be cpu, cuda"),
    ]
    for args, message in cases:
        result = run(*args, "--no-store")
        assert result.exit_code == 1, (args, result.output)
        assert message in result.stderr and "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_fewshot_cli(tmp_path, model_file):
    for k in range(3):
        (tmp_path / "fs" / f"c{k}").mkdir(parents=True)
        for j in range(6):
            solid(k, size=(30 + j, 24)).save(tmp_path / "fs" / f"c{k}" / f"{j}.png")
    db = tmp_path / "r.sqlite"
    args = ("fewshot", model_file, "--data", tmp_path / "fs", "--shots", "1,2", "-j", "0", "--db", db, "--json")
    first, second = run(*args), run(*args)
    assert first.exit_code == 0, first.output
    rows = json.loads(first.stdout)
    assert [(r["shots"], r["accuracy"], r["train_images"], r["test_images"]) for r in rows] == [
        (1, 100.0, 3, 12),
        (2, 100.0, 6, 12),
    ]
    assert json.loads(second.stdout) == rows
    stored = ResultStore(db).records(kind="fewshot")
    assert len(stored) == 2 and stored[0]["metrics"]["shots"] == {"1": 100.0, "2": 100.0}
    assert stored[0]["metrics"]["weights_sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    too_many = run("fewshot", model_file, "--data", tmp_path / "fs", "--shots", "6", "-j", "0", "--no-store")
    assert too_many.exit_code == 1 and "6 shots need at least 7" in too_many.stderr


def test_tradeoff_cli(tmp_path):
    db = tmp_path / "r.sqlite"
    ResultStore(db).add("bench", "vit-b16", {"img_per_s": 12.5, "status": "ok", "device": "cpu", "dtype": "fp32",
                                             "img_size": 224})  # fmt: skip
    result = run("tradeoff", "--db", db, "--plot", tmp_path / "plot.png")
    assert result.exit_code == 0, result.output
    assert "vit-b16.orig-in21k-ft-in1k" in result.stdout and "★" in result.stdout and "12.5" in result.stdout
    assert (tmp_path / "plot.png").stat().st_size > 10_000 and (tmp_path / "plot.svg").exists()
    rows = json.loads(run("tradeoff", "vit-b16", "bit-*", "--no-store", "--json").stdout)
    assert len(rows) == 7 and rows[0]["model"] == "bit-r50x1.bitm-in21k-ft-in1k"
    assert {r["top1_kind"] for r in rows} == {"reported"} and all(r["throughput"] is None for r in rows)
    bad = run("tradeoff", "nothing-*", "--no-store")
    assert bad.exit_code == 1 and "no model matches" in bad.stderr


def test_registry_name_uses_its_preprocessing_and_feeds_tradeoff(tmp_path, monkeypatch):
    """`eval NAME`: the checkpoint's registry preprocessing; a full ImageNet-1k run becomes the measured top-1."""
    import vitzoo
    from vitzoo.imagenet import IMAGENET_SYNSETS

    calls = []

    def fake_load(name, **kwargs):  # the Hub is out of reach: the colour model stands in for the checkpoint
        calls.append((name, kwargs))
        model = colour_model(1000, img_size=kwargs["img_size"] or 224)
        model.name, model.preprocess = "vit-b16.orig-in21k-ft-in1k", vitzoo.get_spec("vit-b16").get_weights().preprocess
        model.weights_sha256 = "ab" * 32  # what load() sets: the downloaded file's sha256
        return model

    monkeypatch.setattr(vitzoo, "load", fake_load)
    for k in range(4):  # classes 0..3 by WordNet id; class 3's image is predicted as 2: 3 of 4 right
        (tmp_path / "in1k" / IMAGENET_SYNSETS[k]).mkdir(parents=True)
        solid(min(k, 2)).save(tmp_path / "in1k" / IMAGENET_SYNSETS[k] / "x.png")
    db = tmp_path / "r.sqlite"
    result = run("eval", "vit-b16", "--data", tmp_path / "in1k", "-j", "0", "--db", db, "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    scores = np.concatenate([reference_scores(preprocess_image(solid(2), PP224).numpy()), np.zeros(992)])
    assert 3 not in np.argsort(-scores)[:5]  # class 3 scores below 0, where heads 8..999 are: not even top-5
    assert row["model"] == "vit-b16.orig-in21k-ft-in1k" and row["top1"] == 75.0 and row["top5"] == 75.0
    assert row["preprocess"] == "resize to 224x224, bilinear, mean 0.5 std 0.5"
    assert calls == [("vit-b16", {"img_size": None, "num_classes": None, "device": "cpu", "dtype": "fp32"})]
    assert ResultStore(db).records(kind="eval")[0]["metrics"]["weights_sha256"] == "ab" * 32
    quick = run("eval", "vit-b16", "--data", tmp_path / "in1k", "-j", "0", "--db", db, "--limit", "2", "--json",
                "--img-size", "256", "--crop-pct", "0.875")  # fmt: skip
    assert json.loads(quick.stdout)[0]["preprocess"] == "shorter side 292, centre crop 256, bilinear, mean 0.5 std 0.5"
    assert calls[-1][1]["img_size"] == 256
    rows = json.loads(run("tradeoff", "vit-b16", "bit-r50x1", "--db", db, "--json").stdout)
    b16 = next(r for r in rows if r["model"] == "vit-b16.orig-in21k-ft-in1k")
    assert (b16["top1"], b16["top1_kind"]) == (75.0, "measured") and "4 images" in b16["top1_source"]
    assert next(r for r in rows if r["model"].startswith("bit-"))["top1_kind"] == "reported"


def test_eval_hf_dataset_directory(tmp_path, model_file):
    datasets = pytest.importorskip("datasets")
    names = [f"c{k}" for k in range(K)]
    features = datasets.Features({"img": datasets.Image(), "y": datasets.ClassLabel(names=names)})
    labels = [0, 1, 2, 3, 4, 5, 6, 7, 7, 0]  # the last two are solid(6) and solid(1): 8 of 10 right
    images = [solid(k) for k in range(K)] + [solid(6), solid(1)]
    ds = datasets.Dataset.from_dict({"img": images, "y": labels}, features=features)
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "hf"))
    result = run("eval", model_file, "--hf-dataset", tmp_path / "hf", "--split", "test", "-j", "2", "--no-store",
                 "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert (row["num_images"], row["top1"], row["dataset"]) == (10, 80.0, f"{tmp_path / 'hf'} [test]")
    both = run("eval", model_file, "--hf-dataset", tmp_path / "hf", "--data", tmp_path, "--no-store")
    assert both.exit_code == 1 and "either --data or --hf-dataset" in both.stderr
