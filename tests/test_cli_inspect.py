"""`vitzoo inspect`: files, numbers on stdout, and one-line errors. Offline: random-init or a patched load."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import vitzoo
from vitzoo.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(120, 160), (90, 90)]):
        path = folder / f"photo{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_all_analyses_write_pngs_and_numbers(tmp_path, photos):
    out = tmp_path / "out"
    result = run("inspect", "testing", "--random-init", "-i", photos[0], "-i", photos[1], "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["weights"] == "random init" and summary["grid_size"] == 14 and summary["img_size"] == 224
    assert summary["images"] == ["photo0.png", "photo1.png"]
    assert set(summary["files"]) == {"filters", "posemb", "attention-distance", "rollout"}
    for name in ("filters", "posemb", "attention_distance", "rollout"):
        with Image.open(out / f"{name}.png") as png:
            assert png.format == "PNG" and min(png.size) > 200
            assert png.mode in ("RGB", "RGBA")  # true colour: a 256-colour palette bands the smooth maps
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary file left
    assert np.load(out / "filters.npy").shape == (9, 3, 16, 16)
    assert np.load(out / "posemb.npy").shape == (14, 14, 14, 14)
    assert np.load(out / "rollout.npy").shape == (2, 14, 14)
    distance = np.array(summary["attention_distance_px"])
    assert distance.shape == (1, 2) and summary["token_stride_px"] == 16.0
    saved = json.loads((out / "attention_distance.json").read_text())
    np.testing.assert_allclose(saved["distance_px"], distance)
    rows = list(csv.DictReader((out / "attention_distance.csv").open()))
    assert [(r["layer"], r["head"]) for r in rows] == [("1", "1"), ("1", "2")]
    assert "loading testing (random init)" in result.stderr and "rollout: 2 image(s)" in result.stderr


def test_csv_to_stdout_and_default_table(tmp_path, photos):
    args = ("inspect", "testing", "--random-init", "--img-size", "64", "-i", photos[0], "--out", str(tmp_path))
    result = run(*args, "-a", "attention-distance", "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["head"] for r in rows] == ["1", "2"] and float(rows[0]["mean_distance_px"]) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "attention_distance.csv",
        "attention_distance.json",
        "attention_distance.png",
    ]
    table = run(*args, "-a", "posemb,rollout")
    assert table.exit_code == 0 and "rollout.png" in table.stdout and "posemb.npy" in table.stdout


def test_without_images_only_the_weight_analyses_run(tmp_path):
    result = run("inspect", "testing", "--random-init", "--img-size", "64", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["files"]) == {"filters", "posemb"}
    assert "no --image given" in result.stderr


def test_names_resolve_through_vitzoo_load_with_the_checkpoint_preprocessing(tmp_path, photos, monkeypatch):
    calls = []

    def fake_load(name, **kwargs):
        calls.append((name, kwargs))
        return vitzoo.create("testing", img_size=kwargs["img_size"]).eval()

    monkeypatch.setattr(vitzoo, "load", fake_load, raising=False)
    result = run("inspect", "testing", "--img-size", "32", "-i", photos[0], "-a", "rollout", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert calls == [("testing", {"img_size": 32, "num_classes": None, "device": "cpu", "dtype": None})]
    assert np.load(tmp_path / "rollout.npy").shape == (1, 2, 2)


def test_hybrid_skips_filters_unless_asked(tmp_path):
    args = ("inspect", "vit-r-ti16", "--random-init", "--img-size", "64", "--out", str(tmp_path))
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["files"]) == {"posemb"} and "skipping filters" in result.stderr
    asked = run(*args, "-a", "filters")
    assert asked.exit_code == 1 and "filters needs a plain ViT" in asked.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "missing.jpg"], "error: image not found: missing.jpg"),
        (["-a", "saliency"], "error: unknown analysis 'saliency'; choose from filters, posemb, attention-distance"),
        (["-a", "rollout"], "error: rollout needs at least one --image"),
        (["--csv"], "error: --csv writes the mean attention distances"),
    ],
)
def test_user_errors_are_one_line(tmp_path, args, message):
    result = run("inspect", "testing", "--random-init", "--img-size", "32", "--out", str(tmp_path / "o"), *args)
    assert result.exit_code == 1 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message)
    assert "Traceback" not in result.stderr


def test_unreadable_image_and_non_vit_models(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    result = run("inspect", "testing", "--random-init", "--img-size", "32", "-i", str(bad), "--out", str(tmp_path))
    assert result.exit_code == 1 and f"error: cannot read image {bad}" in result.stderr
    result = run("inspect", "bit-r50x1", "--out", str(tmp_path))
    assert result.exit_code == 1 and "error: bit-r50x1 is a BiT ResNet" in result.stderr


def test_help_has_examples():
    result = run("inspect", "--help")
    assert result.exit_code == 0
    for text in ("attention-distance", "rollout", "posemb", "filters", "Examples:", "vitzoo inspect vit-b16"):
        assert text in result.stdout
