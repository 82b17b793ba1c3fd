"""`vitzoo eval`, `vitzoo fewshot` and `vitzoo tradeoff` end to end, offline: the hand-set colour model is saved
to a vitzoo safetensors file and evaluated on an ImageFolder of real photos and generated images."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import replace

import click
import numpy as np
import pytest
from click.testing import CliRunner
from test_evaluate import K, build_folder, colour_model, reference_scores, solid
from test_protocols import images, random_head_model, subset_tree

from vitzoo.cli import main
from vitzoo.evaluate.data import preprocess_image
from vitzoo.evaluate.imagenet import IMAGENET_SYNSETS
from vitzoo.measure.store import ResultStore
from vitzoo.weights.checkpoint import save_vitzoo
from vitzoo.zoo.lookup import resolve_one
from vitzoo.zoo.preprocess import Preprocess


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    from vitzoo.cli._output import console

    monkeypatch.setattr(console, "_width", 250)  # tables as on a wide terminal, not folded at 80 columns


PP224 = Preprocess(224, resize="tf")  # vit-b16's registry preprocessing


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
    assert row["preprocess"] == "resize to 32x32 as vit_jax (no antialiasing), bilinear, mean 0.5 std 0.5"
    assert row["images_per_s"] > 0 and "(default for a vit file: it names no registry tag)" in result.stderr
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


@pytest.fixture
def world(tmp_path, model_file):
    """What the bad-input cases refer to: data folders, a wrong-head file, a file that is not a database."""
    for k in range(K):  # one solid image per class of the colour model: all right
        (tmp_path / "data" / f"c{k}").mkdir(parents=True)
        solid(k).save(tmp_path / "data" / f"c{k}" / "x.png")
    wrong = colour_model(21843)
    paths = {"tmp": tmp_path, "file": model_file, "data": tmp_path / "data", "fs": tmp_path / "fs"}
    paths["big"] = save_vitzoo(tmp_path / "big.safetensors", wrong.state_dict(), wrong.config)
    for wnid in ("n01440764", "n01443537"):
        (tmp_path / "in1k" / wnid).mkdir(parents=True)
        solid(0).save(tmp_path / "in1k" / wnid / "a.png")
    paths["in1k"] = tmp_path / "in1k"
    for k in range(2):
        (tmp_path / "fs" / f"c{k}").mkdir(parents=True)
        for j in range(3):
            solid(k, size=(30 + j, 24)).save(tmp_path / "fs" / f"c{k}" / f"{j}.png")
    paths["notdb"] = tmp_path / "notes.txt"
    paths["notdb"].write_text("my notes, not a database\n")
    for name in ("2", "10", "cats"):  # integer and other class folders in one tree
        (tmp_path / "mixed" / name).mkdir(parents=True)
        solid(0).save(tmp_path / "mixed" / name / "a.png")
    paths["mixed"] = tmp_path / "mixed"
    paths["1k"] = save_vitzoo(tmp_path / "1k.safetensors", colour_model(1000).state_dict(), colour_model(1000).config)
    return paths


EVAL = ("eval", "{file}", "--data", "{data}")
FEWSHOT = ("fewshot", "{file}", "--data", "{fs}", "-j", "0")
NO_STORE = ("--no-store",)
BAD_INPUTS = [  # (arguments, the one error line's text); {name} is a path of the `world` fixture
    (("eval", "{big}", "--data", "{in1k}", *NO_STORE), "head has 21843 classes but"),
    (("eval", "vit-b16.augreg-in21k", "--data", "{in1k}", *NO_STORE), "(an ImageNet-21k checkpoint: pick a tag"),
    (("eval", "vit-b16.orig-in21k", "--data", "{in1k}", *NO_STORE), "its authors zeroed the classification head"),
    (("eval", "vit-b16", "--data", "{data}", *NO_STORE), "head has 1000 classes but"),  # checked before download
    (("eval", "{file}", "--data", "{tmp}/nope", *NO_STORE), "no such directory"),
    (("eval", "{file}", *NO_STORE), "no data: give --data PATH or --hf-dataset NAME"),
    ((*EVAL, "--limit", "0", *NO_STORE), "--limit must be at least 1, not 0"),
    ((*EVAL, "--crop-pct", "2", *NO_STORE), "--crop-pct must be in (0, 1], not 2.0"),
    ((*EVAL, "--crop-pct", "0", *NO_STORE), "--crop-pct must be in (0, 1], not 0.0"),
    ((*EVAL, "--img-size", "0", *NO_STORE), "--img-size must be at least 1, not 0"),
    ((*EVAL, "--real-labels", "{tmp}/x.json", *NO_STORE), "cannot read ReaL"),
    (("eval", "vit-b16", "--data", "{in1k}", "-b", "0", *NO_STORE), "--batch-size must be at least 1, not 0"),
    ((*EVAL, "-j", "-1", *NO_STORE), "--workers must be at least 0, not -1"),
    ((*EVAL, "--db", "{notdb}"), "is not a vitzoo results database (not an SQLite file)"),
    ((*EVAL, "--db", "{data}"), "is a directory, not a file"),
    ((*EVAL, "--db", "{notdb}/r.sqlite"), "notes.txt is not a directory"),
    ((*EVAL, "--db", "/proc/vitzoo/r.sqlite"), "/proc is not writable"),
    ((*EVAL, "--protocol", "a", *NO_STORE), "protocol a (ImageNet-A) needs ImageNet-1k labels"),
    (("eval", "{1k}", "--data", "{in1k}", "--protocol", "a", *NO_STORE), "is not one of the 200 classes of ImageNet-A"),
    (("eval", "{1k}", "--data", "{in1k}", "--protocol", "real", *NO_STORE), "none of the 2 images has a ReaL label"),
    (("eval", "{1k}", "--data", "{mixed}", *NO_STORE), "mix integer names ('10') and other names ('cats')"),
    (("eval", "{file}", "--suite", "{tmp}/nope", *NO_STORE), "nope: no such directory"),
    (("eval", "{file}", "--suite", "{data}/c0", *NO_STORE), "no set folders (expected SUITE/SET/CLASS/image files"),
    ((*EVAL, "--suite", "{tmp}", *NO_STORE), "give either --suite DIR or --data/--hf-dataset, not both"),
    ((*EVAL, "--data", "{in1k}", "--protocol", "v2", *NO_STORE), "--protocol names one set's protocol"),
    ((*EVAL, "--data", "{in1k}", "--labels", "{notdb}", *NO_STORE), "--labels goes with one --data"),
    ((*FEWSHOT, "--data", "{fs}", *NO_STORE), "fewshot takes one --data"),
    ((*FEWSHOT, "--shots", "a", *NO_STORE), "--shots takes comma-separated"),
    ((*FEWSHOT, "--shots", "0,1", *NO_STORE), "--shots must be positive integers"),
    ((*FEWSHOT, "--shots", "3", *NO_STORE), "a class has 3 images; 3 shots need at least 4 per class"),
    ((*FEWSHOT, "--seed", "-5", *NO_STORE), "--seed must be at least 0, not -5"),
    ((*FEWSHOT, "--l2-reg", "0", *NO_STORE), "--l2-reg must be a positive number, not 0.0"),
    ((*FEWSHOT, "--l2-reg", "nan", *NO_STORE), "--l2-reg must be a positive number, not nan"),
    ((*FEWSHOT, "--device", "tpu", *NO_STORE), "device must be cpu, cuda"),
    ((*FEWSHOT, "--db", "{notdb}"), "is not a vitzoo results database"),
    (("fewshot", "{file}", "--data", "{in1k}", *NO_STORE), "a class has 1 images; 25 shots need at least 26"),
    ((*FEWSHOT, "--shots", "1", "--layer", "1", *NO_STORE), "colour.safetensors has encoder blocks (0 to 0; -1"),
    (
        ("fewshot", "vit-b16", "--data", "{fs}", "--shots", "1", "--layer", "-13", *NO_STORE),
        "layer -13 does not exist: vit-b16 has encoder blocks (0 to 11; -1 is the last)",
    ),  # before any download
    (("tradeoff", "--reported-only", "--plot", ""), "--plot needs a file prefix such as docs/tradeoff, not ''"),
    (("tradeoff", "--reported-only", "--plot", "/proc/tradeoff"), "/proc is not writable"),
    (("tradeoff", "--reported-only", "--plot", "{notdb}/tradeoff"), "notes.txt is not a directory"),
    (("tradeoff", "--reported-only", "--plot", "{data}"), "is a directory; give a file prefix such as"),
    (("tradeoff", "--db", "{notdb}"), "is not a vitzoo results database"),
    (("inspect", "testing", "--random-init", "--out", "/proc/vitzoo"), "/proc is not writable"),
    (("inspect", "testing", "--random-init", "--out", "{notdb}"), "notes.txt exists and is not a directory"),
    (("inspect", "testing", "--random-init", "--img-size", "0", "--out", "{tmp}/o"), "--img-size must be at least 1"),
]


def _snapshot(root):
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")}


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_INPUTS])
def test_bad_input_fails_fast_with_one_line(world, args, message, monkeypatch):
    """Exit 1, one error line on stderr and nothing else (no work started, no traceback), no file created."""
    monkeypatch.setenv("VITZOO_DB", str(world["tmp"] / "default.sqlite"))
    before = _snapshot(world["tmp"])
    result = run(*(a.format(**world) for a in args))
    assert result.exit_code == 1, (args, result.output)
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert _snapshot(world["tmp"]) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders: /proc stands in for them above")
def test_read_only_output_folder_fails_fast(world):
    ro = world["tmp"] / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        for args in [(*EVAL, "--db", "{tmp}/ro/r.sqlite"), ("tradeoff", "--reported-only", "--plot", "{tmp}/ro/p")]:
            result = run(*(a.format(**world) for a in args))
            assert result.exit_code == 1 and "ro is not writable" in result.stderr, result.output
    finally:
        ro.chmod(0o755)


def test_the_result_is_printed_even_when_storing_fails(world, monkeypatch):
    from vitzoo.errors import VitzooError

    def broken(*args, **kwargs):
        raise VitzooError("results database r.sqlite stayed locked for 60 s")

    monkeypatch.setattr(ResultStore, "add", broken)
    result = run(*(a.format(**world) for a in EVAL), "-j", "0", "--db", world["tmp"] / "r.sqlite", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["top1"] == 100.0  # the hours of work are on screen
    assert result.stderr.strip().splitlines()[-1] == (
        "error: the result above was not recorded: results database r.sqlite stayed locked for 60 s"
    )


def test_tradeoff_reads_no_database_into_existence(tmp_path):
    result = run("tradeoff", "vit-b16", "--db", tmp_path / "typo.sqllite", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["top1_kind"] == "reported" and "no results database at" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_option_has_help():
    for command in ("eval", "fewshot", "tradeoff", "inspect", "info"):
        cmd = main.get_command(None, command)
        missing = [p.name for p in cmd.params if isinstance(p, click.Option) and not p.help]
        assert not missing, (command, missing)
    usage = run("inspect", "--help").stdout
    assert "NAME[.TAG]|FILE" in usage.splitlines()[0]


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
    # the colour model has one block and no representation layer: its block 0, normed and pooled, is its pre-logits
    layer = run(*args, "--layer", "0")
    assert layer.exit_code == 0, layer.output
    assert json.loads(layer.stdout) == rows and "block 0's features" in layer.stderr
    assert ResultStore(db).records(kind="fewshot")[-1]["metrics"]["layer"] == 0


def test_tradeoff_cli(tmp_path):
    db = tmp_path / "r.sqlite"
    ResultStore(db).add("bench", "vit-b16", {"img_per_s": 12.5, "status": "ok", "device": "cpu", "dtype": "fp32",
                                             "img_size": 224})  # fmt: skip
    result = run("tradeoff", "--db", db, "--plot", tmp_path / "plot.png")
    assert result.exit_code == 0, result.output
    assert "vit-b16.orig-in21k-ft-in1k" in result.stdout and "★" in result.stdout and "12.5" in result.stdout
    assert (tmp_path / "plot.png").stat().st_size > 10_000 and (tmp_path / "plot.svg").exists()
    rows = json.loads(run("tradeoff", "vit-b16", "bit-*", "--reported-only", "--json").stdout)
    assert len(rows) == 7 and rows[0]["model"] == "bit-r50x1.bitm-in21k-ft-in1k"
    assert {r["top1_kind"] for r in rows} == {"reported"} and all(r["throughput"] is None for r in rows)
    bad = run("tradeoff", "nothing-*", "--reported-only")
    assert bad.exit_code == 1 and "no model matches" in bad.stderr


def test_registry_name_uses_its_preprocessing_and_feeds_tradeoff(tmp_path, monkeypatch):
    """`eval NAME`: the checkpoint's registry preprocessing; a full ImageNet-1k run becomes the measured top-1."""
    import vitzoo
    from vitzoo.evaluate.imagenet import IMAGENET_SYNSETS

    calls = []

    def fake_load(name, **kwargs):  # the Hub is out of reach: the colour model stands in for the checkpoint
        calls.append((name, kwargs))
        model = colour_model(1000, img_size=kwargs["img_size"] or 224)
        model.checkpoint = replace(resolve_one("vit-b16"), weights_sha256="ab" * 32)  # load() sets the file's sha256
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
    assert row["preprocess"] == "resize to 224x224 as vit_jax (no antialiasing), bilinear, mean 0.5 std 0.5"
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
    assert both.exit_code == 2
    assert "--data and --hf-dataset cannot be used together" in both.stderr


def _suite(root, model) -> dict[str, float]:
    """A suite of real photos: ImageNet-A's 200 folders (found by its classes), V2's 0..999, a `sketch` and a `real`
    set (found by their names); returns the A set's top-1 computed with numpy over the 200-column slice."""
    labels, logits, columns = subset_tree(root / "adversarial", "a", model)
    pictures = images()[:6]
    for i in range(1000):
        (root / "matched" / str(i)).mkdir(parents=True)
    for j, picture in enumerate(pictures):
        picture.save(root / "matched" / str(j * 111) / f"{j}.png")
        (root / "sketch" / IMAGENET_SYNSETS[j]).mkdir(parents=True)
        picture.save(root / "sketch" / IMAGENET_SYNSETS[j] / f"{j}.png")
        (root / "real" / IMAGENET_SYNSETS[0]).mkdir(parents=True, exist_ok=True)
        picture.save(root / "real" / IMAGENET_SYNSETS[0] / f"ILSVRC2012_val_{j + 1:08d}.png")
    return {"a": 100 * np.mean(columns[logits[:, columns].argmax(1)] == labels)}


def test_eval_suite_table_and_records(tmp_path):
    model = random_head_model()
    expected = _suite(tmp_path / "suite", model)
    file = save_vitzoo(tmp_path / "random.safetensors", model.state_dict(), model.config)
    db = tmp_path / "r.sqlite"
    result = run("eval", file, "--suite", tmp_path / "suite", "-j", "0", "--db", db, "--json")
    assert result.exit_code == 0, result.output
    rows = {r["set"]: r for r in json.loads(result.stdout)}
    assert [rows[s]["protocol"] for s in ("adversarial", "matched", "real", "sketch")] == ["a", "v2", "real", "sketch"]
    assert rows["adversarial"]["top1"] == pytest.approx(expected["a"], abs=1e-12)
    assert rows["real"]["real_images"] == 5 and rows["real"]["protocol_images"] == 5  # val_00000001 has no label
    assert rows["matched"]["num_images"] == rows["sketch"]["num_images"] == 6
    for line in ("adversarial: protocol a (the 200 class folders of ImageNet-A)",
                 "matched: protocol v2 (class folders 0 ... 999, as ImageNet-V2 ships)",
                 "real: protocol real (the set folder is named real)"):  # fmt: skip
        assert line in result.stderr
    records = ResultStore(db).records(kind="eval")
    assert sorted((r["metrics"]["set"], r["metrics"]["protocol"]) for r in records) == [
        ("adversarial", "a"), ("matched", "v2"), ("real", "real"), ("sketch", "sketch"),
    ]  # fmt: skip
    a = next(r["metrics"] for r in records if r["metrics"]["set"] == "adversarial")
    assert a["ece_bins"] == 15 and a["bootstrap_resamples"] == 1000 and a["ece"] >= 0
    assert a["top1_ci_low"] <= a["top1"] <= a["top1_ci_high"]
    table = run("eval", file, "--data", tmp_path / "suite" / "adversarial", "--data", tmp_path / "suite" / "sketch",
                "-j", "0", "--no-store")  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "95% CI of top-1" in table.stdout and "ECE %" in table.stdout and "adversarial" in table.stdout
    assert f"{expected['a']:.2f}" in table.stdout
    one = run("eval", file, "--data", tmp_path / "suite" / "sketch", "--protocol", "imagenet", "-j", "0", "--no-store")
    assert "protocol imagenet (--protocol)" in one.stderr and "95% CI of the top-1 (bootstrap)" in one.stdout


def test_tradeoff_dataset_cli(tmp_path):
    db = tmp_path / "r.sqlite"
    ResultStore(db).add("eval", "vit-b16.orig-in21k-ft-in1k", {"imagenet": True, "limit": None, "img_size": 224,
                        "dtype": "fp32", "top1": 72.5, "protocol": "v2", "num_images": 10000}, {})  # fmt: skip
    rows = json.loads(run("tradeoff", "vit-b16", "bit-r50x1", "--dataset", "v2", "--db", db, "--json").stdout)
    by = {r["model"]: r for r in rows}
    assert (by["vit-b16.orig-in21k-ft-in1k"]["top1"], by["vit-b16.orig-in21k-ft-in1k"]["top1_kind"]) == (
        72.5,
        "measured",
    )
    bit = by["bit-r50x1.bitm-in21k-ft-in1k"]  # results-imagenetv2-matched-frequency.csv, by hand: 67.890
    assert (bit["top1"], bit["top1_kind"], bit["dataset"]) == (67.89, "reported", "v2")
    table = run("tradeoff", "vit-b16", "--dataset", "v2", "--reported-only")
    assert table.exit_code == 0 and "ImageNet-V2 accuracy vs compute" in table.stdout


def test_progress_off_a_terminal_is_a_line_every_few_seconds(tmp_path, model_file, monkeypatch):
    """Piped (CliRunner's stderr is no terminal), a long eval still says how far it is, on stderr only."""
    import vitzoo.cli._output as output

    build_folder(tmp_path / "data")
    monkeypatch.setattr(output, "PROGRESS_EVERY_S", 0.0)  # every update, instead of every 5 s
    result = run("eval", model_file, "--data", tmp_path / "data", "-j", "0", "-b", "4", "--no-store", "--json")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("evaluating data: ")]  # the set's name
    assert lines and lines[-1].startswith("evaluating data: 16/16"), result.stderr
    assert json.loads(result.stdout)[0]["num_images"] == 14  # stdout stays clean JSON
    monkeypatch.setattr(output, "PROGRESS_EVERY_S", 3600.0)
    quiet = run("eval", model_file, "--data", tmp_path / "data", "-j", "0", "-b", "4", "--no-store", "--json")
    assert "evaluating data: " not in quiet.stderr  # a short run says nothing more
