"""The CLI's shared handling of mistakes, class by class, over the commands each class applies to: every option is
honoured or refused in one `error:` line (never silently replaced), vitzoo's environment variables are checked,
option errors and Ctrl-C look the same on every command, and a degenerate terminal width still prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import vitzoo
from vitzoo import settings
from vitzoo.cli import COMMANDS, main
from vitzoo.errors import ConfigError
from vitzoo.weights.checkpoint import save_vitzoo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def weights(tmp_path, monkeypatch) -> Path:
    """A `testing` weight file with random (non-zero) weights, in a folder of its own; the cache is in tmp_path."""
    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VITZOO_DB", str(tmp_path / "results.sqlite"))
    torch.manual_seed(0)
    model = vitzoo.create("testing")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    folder = tmp_path / "in"
    folder.mkdir()
    return save_vitzoo(folder / "t.safetensors", model.state_dict(), model.config)


def one_line(result, code: int, *fragments: str) -> str:
    """Assert exactly one `error:` line on stderr containing ``fragments``, exit ``code``, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert all(f in lines[0] for f in fragments), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def untouched(tmp_path: Path, before: set[str]) -> None:
    """Nothing was written: the files under tmp_path are those there before (no cache, database, output)."""
    assert {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")} == before


def snapshot(tmp_path: Path) -> set[str]:
    return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


# --- options given together that exclude each other: one mechanism, refused, not one silently winning ----------

EXCLUSIVE = [
    (["list", "--json", "--csv"], "--json and --csv"),
    (["info", "testing", "--table", "--json"], "--table and --json"),
    (["tradeoff", "--reported-only", "--csv", "--json"], "--json and --csv"),
    (["cache", "list", "--json", "--csv"], "--json and --csv"),
    (["bench", "testing", "--json", "--csv", "--no-store"], "--json and --csv"),
    (["flops", "testing", "--csv", "--table"], "--table and --csv"),
    (["results", "--json", "--csv"], "--json and --csv"),
    (["eval", "{w}", "--data", "{d}", "--hf-dataset", "x"], "--data and --hf-dataset"),
    (["eval", "{w}", "--labels", "l.txt", "--hf-dataset=x"], "--labels and --hf-dataset"),
    (["fewshot", "{w}", "--data", "{d}", "--hf-dataset", "x"], "--data and --hf-dataset"),
]


@pytest.mark.parametrize("args, words", EXCLUSIVE, ids=[" ".join(a[:2]) + f" {w}" for a, w in EXCLUSIVE])
def test_exclusive_options_are_refused(weights, tmp_path, args, words):
    before = snapshot(tmp_path)
    result = run(*(a.format(w=weights, d=tmp_path) for a in args))
    one_line(result, 2, words, "cannot be used together", f"`vitzoo {args[0]}")
    assert result.stdout == ""
    untouched(tmp_path, before)


# --- options that would have no effect: refused ------------------------------------------------------------------

UNUSED = [
    (["bench", "testing", "--sweep", "--no-store"], "--sweep", "add --nproc"),
    (["bench", "testing", "--sweep", "--nproc", "1", "--no-store"], "--sweep", "add --nproc"),
    (["bench", "--peak", "-b", "4", "--no-store"], "--batch-size", "no effect with --peak"),
    (["bench", "--peak", "--pretrained", "--no-store"], "--pretrained", "no effect with --peak"),
    (["eval", "{w}", "--data", "{d}", "--split", "train"], "--split", "without --hf-dataset"),
    (["export", "{w}", "{d}/out.safetensors", "--format", "timm", "--opset", "18"], "opset", "ONNX exports only"),
    (["export", "{w}", "{d}/out", "--format", "transformers", "--opset", "18"], "opset", "ONNX exports only"),
    (["export", "{w}", "{d}/out.onnx", "--format", "onnx", "--opset", "99"], "opset 99 does not exist", "1 to"),
    (["export", "{w}", "{d}/out.onnx", "--format", "onnx", "--opset", "0"], "opset 0 does not exist", "1 to"),
]


@pytest.mark.parametrize("args, option, why", UNUSED, ids=[f"{a[0]} {o} {w}" for a, o, w in UNUSED])
def test_options_without_effect_are_refused(weights, tmp_path, args, option, why):
    before = snapshot(tmp_path)
    one_line(run(*(a.format(w=weights, d=tmp_path) for a in args)), 1, option, why)
    untouched(tmp_path, before)


def test_an_opset_the_exporter_cannot_convert_to_is_refused_not_replaced(weights, tmp_path):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    before = snapshot(tmp_path)
    one_line(run("export", weights, tmp_path / "o7.onnx", "--format", "onnx", "--opset", "7"), 1, "opset 7", "18")
    untouched(tmp_path, before)
    result = run("export", weights, tmp_path / "o17.onnx", "--format", "onnx", "--opset", "17")  # honoured
    assert result.exit_code == 0 and "opset 17" in result.stderr, result.output
    import onnx

    assert [o.version for o in onnx.load(str(tmp_path / "o17.onnx")).opset_import if o.domain in ("", "ai.onnx")] == [
        17
    ]


def test_an_existing_output_names_the_cli_option_and_the_api_its_keyword(weights, tmp_path):
    (tmp_path / "out.safetensors").write_bytes(b"keep")
    line = one_line(run("export", weights, tmp_path / "out.safetensors", "--format", "timm"), 1, "pass --force")
    assert "force=True" not in line
    with pytest.raises(vitzoo.errors.VitzooError, match=r"pass force=True") as e:
        from vitzoo.exporting import export

        export(weights, tmp_path / "out.safetensors", "timm")
    assert "--force" not in str(e.value)
    assert (tmp_path / "out.safetensors").read_bytes() == b"keep"


# --- vitzoo's own environment variables: a value it cannot use is one line naming it, on every command ------------

BAD_ENV = [
    ("VITZOO_HEAP", "sytem"),
    ("VITZOO_GELU_EPILOGUE", "fused"),
    ("VITZOO_DIST_TIMEOUT", "soon"),
    ("VITZOO_DIST_TIMEOUT", "-5"),
    ("VITZOO_DIST_TIMEOUT", "inf"),
    ("VITZOO_DIST_TIMEOUT", "nan"),
    ("VITZOO_CACHE", " /tmp/x"),
    ("VITZOO_DB", "results.sqlite "),
]


@pytest.mark.parametrize("command", [["list"], ["info", "testing"], ["results"], ["bench", "testing", "--no-store"]])
@pytest.mark.parametrize("name, value", BAD_ENV, ids=[f"{n}={v}" for n, v in BAD_ENV])
def test_bad_environment_variables_are_one_line(weights, tmp_path, monkeypatch, command, name, value):
    monkeypatch.setenv(name, value)
    before = snapshot(tmp_path)
    result = run(*command)
    one_line(result, 1, name, repr(value))
    assert result.stdout == ""
    untouched(tmp_path, before)


def test_environment_variables_in_the_library(monkeypatch):
    monkeypatch.setenv("VITZOO_HEAP", "SYSTEM")
    assert settings.choice("VITZOO_HEAP", "reuse") == "system"
    monkeypatch.setenv("VITZOO_HEAP", "")  # empty: unset
    assert settings.choice("VITZOO_HEAP", "reuse") == "reuse"
    monkeypatch.setenv("VITZOO_DIST_TIMEOUT", "2.5")
    assert settings.seconds("VITZOO_DIST_TIMEOUT", 1800.0) == 2.5
    monkeypatch.setenv("VITZOO_GELU_EPILOGUE", "maybe")
    with pytest.raises(ConfigError, match="VITZOO_GELU_EPILOGUE='maybe' is not one of separate, postop"):
        settings.choice("VITZOO_GELU_EPILOGUE")


def test_an_unknown_vitzoo_variable_is_a_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path))
    monkeypatch.setenv("VITZOO_CAHCE", "/tmp/x")
    result = run("info", "testing", "--json")
    assert result.exit_code == 0
    assert "warning: VITZOO_CAHCE is not a vitzoo variable" in result.stderr and "VITZOO_CACHE" in result.stderr


# --- every command: option mistakes are one line (exit 2), Ctrl-C is exit 130 --------------------------------------


@pytest.mark.parametrize("command", ["", *[c for c in COMMANDS if c != "cache"], "cache", "cache list", "cache clean"])
def test_an_unknown_option_is_one_line_on_every_command(command, monkeypatch, tmp_path):
    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path))
    result = run(*command.split(), "--no-such-option")
    one_line(result, 2, "--no-such-option", f"(see `{' '.join(['vitzoo', *command.split()])} -h`)")


@pytest.mark.parametrize(
    "command", [["list"], ["info", "testing"], ["flops", "testing"], ["tradeoff", "--reported-only"]]
)
def test_ctrl_c_is_exit_130_on_every_command(command, monkeypatch, tmp_path):
    from vitzoo.cli._output import console

    monkeypatch.setenv("VITZOO_DB", str(tmp_path / "results.sqlite"))
    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path / "cache"))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(console, "print", interrupted)  # Ctrl-C while the command prints its result
    result = run(*command)
    assert result.exit_code == 130 and result.stderr.strip().splitlines()[-1] == "error: interrupted", result.output
    assert "Traceback" not in result.output and "Aborted" not in result.output


# --- a degenerate terminal width still prints the table ----------------------------------------------------------


@pytest.mark.parametrize("columns", ["0", "1", "-3", "abc", "39"])
def test_a_degenerate_terminal_width_still_prints(columns):
    env = {**os.environ, "COLUMNS": columns, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "vitzoo", "list", "vit-b*"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any("vit-b16" in line and "86.57" in line for line in lines), out.stdout
    assert max(len(line) for line in lines) <= 80


# --- one memory check on every path that builds or runs a model -----------------------------------------------

TOO_BIG = [  # with 1 GiB "available": a 4096 px `testing` model (65,537 tokens) or a 10^8-class head cannot fit
    ["flops", "testing", "--img-size", "4096", "--count-on", "cpu", "--no-store"],
    ["inspect", "testing", "--random-init", "--img-size", "4096", "-o", "{d}/insp"],
    ["export", "{w}", "{d}/o.safetensors", "--format", "timm", "--img-size", "4096"],
    ["export", "{w}", "{d}/o.onnx", "--format", "onnx", "--img-size", "4096"],
    ["convert", "{w}", "{d}/c.safetensors", "--num-classes", "100000000"],
    ["convert", "{w}", "{d}/c.safetensors", "--img-size", "200000"],
    ["eval", "{w}", "--data", "{d}", "--img-size", "4096", "--no-store"],
]


@pytest.mark.parametrize("args", TOO_BIG, ids=[" ".join(a[:1] + a[-2:]) for a in TOO_BIG])
def test_a_model_that_cannot_fit_is_one_line_on_every_path(weights, tmp_path, monkeypatch, args):
    from vitzoo import machine

    monkeypatch.setattr(machine, "available_ram", lambda: 2**30)
    (tmp_path / "cls" / "n01440764").mkdir(parents=True)  # eval: a (empty-ish) class folder
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "cls" / "n01440764" / "a.png")
    args = [a.format(w=weights, d=tmp_path / "cls" if a == "{d}" else tmp_path) for a in args]
    before = snapshot(tmp_path)
    result = run(*args)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "of memory needed, 1.0 GiB available" in errors[0], result.stderr
    assert "Traceback" not in result.output
    untouched(tmp_path, before)


def test_the_python_api_checks_memory_before_building(weights, monkeypatch):
    from vitzoo import machine

    monkeypatch.setattr(machine, "available_ram", lambda: 2**30)
    with pytest.raises(ConfigError, match=r"100,000,000 classes .* choose fewer classes"):
        vitzoo.load(weights, num_classes=10**8)
    with pytest.raises(ConfigError, match=r"choose fewer classes"):
        vitzoo.create("testing", num_classes=10**8)
    from vitzoo.models import build_model

    with pytest.raises(ConfigError, match=r"the vit model at img_size=224"):
        build_model(vitzoo.get_spec("testing").config.replace(num_classes=10**8))
    with torch.device("meta"):  # nothing allocated: nothing to check
        assert build_model(vitzoo.get_spec("testing").config.replace(num_classes=10**8)) is not None


# --- a full disk: one line, no partial file ----------------------------------------------------------------------


def _disk_full(*args, **kwargs):
    path = next((a for a in args if isinstance(a, (str, os.PathLike))), None)
    if path is not None:
        Path(path).write_bytes(b"")  # what a full disk leaves: an empty file
    raise OSError(28, "No space left on device")


def test_a_full_disk_in_inspect_leaves_no_partial_png(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: _disk_full(*a, **k))
    result = run("inspect", "testing", "--random-init", "-a", "filters", "-o", tmp_path / "out")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 1 and len(errors) == 1, result.output
    assert "filters.png: writing failed (No space left on device)" in errors[0]
    assert "Traceback" not in result.output
    assert list((tmp_path / "out").iterdir()) == []  # no 0-byte filters.png, no temporary file


@pytest.mark.parametrize("fmt, out", [("transformers", "hf"), ("timm", "t.safetensors")])
def test_a_full_disk_in_export_leaves_nothing(weights, tmp_path, monkeypatch, fmt, out):
    pytest.importorskip("transformers")
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", _disk_full)
    before = snapshot(tmp_path)
    result = run("export", weights, tmp_path / out, "--format", fmt)
    one_line(result, 1, "No space left on device", "nothing was written")
    untouched(tmp_path, before)


def test_a_cache_path_that_is_a_file_is_one_line_in_bench(tmp_path, monkeypatch):
    (tmp_path / "cachefile").write_text("not a folder")
    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path / "cachefile"))
    monkeypatch.delenv("VITZOO_DB", raising=False)
    before = snapshot(tmp_path)
    one_line(run("bench", "testing", "-b", "1"), 1, "cannot create results database", "is not a directory")
    one_line(run("bench", "testing", "--pretrained", "--no-store"), 1, "VITZOO_CACHE", "not a directory")
    untouched(tmp_path, before)
    assert (tmp_path / "cachefile").read_text() == "not a folder"


# --- files that are not weights, and URLs: what it is and what is accepted, before any work ------------------------


@pytest.fixture
def bad_files(weights, tmp_path) -> dict[str, Path]:
    from PIL import Image

    folder = tmp_path / "bad"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "chelsea.png")
    (folder / "notes.safetensors").write_text("hello")
    data = weights.read_bytes()
    (folder / "cut.safetensors").write_bytes(data[: len(data) // 2])
    model = vitzoo.create("testing")
    sd = model.state_dict()
    sd["head.weight"][0, 0] = float("nan")
    save_vitzoo(folder / "nan.safetensors", sd, model.config)
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **{k: v.numpy() for k, v in sd.items()})
    (folder / "cut.npz").write_bytes(buffer.getvalue()[:2000])
    return {p.name: p for p in folder.iterdir()}


BAD_FILES = [
    ("chelsea.png", "a PNG image, not a weight file; vitzoo reads"),
    ("notes.safetensors", "a text file, not a weight file"),
    ("cut.safetensors", "truncated or corrupt safetensors file"),
    ("cut.npz", "a truncated or corrupt zip archive"),
    ("nan.safetensors", "contains NaN or Inf"),
]


@pytest.mark.parametrize("command", ["bench", "flops", "export", "convert"])
@pytest.mark.parametrize("name, message", BAD_FILES, ids=[n for n, _ in BAD_FILES])
def test_a_bad_weight_file_is_one_line_up_front(bad_files, tmp_path, command, name, message):
    src = bad_files[name]
    args = {
        "bench": ["bench", src, "-b", "1", "--no-store"],
        "flops": ["flops", src, "--no-store"],
        "export": ["export", src, tmp_path / "o.safetensors", "--format", "timm"],
        "convert": ["convert", src, tmp_path / "c.safetensors"],
    }[command]
    before = snapshot(tmp_path)
    result = run(*args)
    one_line(result, 1, name, message)
    assert result.stdout == ""  # no table with an error row
    untouched(tmp_path, before)


def test_an_existing_file_that_is_not_weights_is_not_called_an_unknown_model(bad_files, tmp_path, monkeypatch):
    monkeypatch.chdir(bad_files["chelsea.png"].parent)  # a bare name, as a user types it
    from vitzoo.weights.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match=r"chelsea.png: a PNG image, not a weight file"):
        vitzoo.load("chelsea.png")
    one_line(run("export", "chelsea.png", tmp_path / "x.onnx", "--format", "onnx"), 1, "a PNG image")
    one_line(run("tradeoff", "chelsea.png", "--reported-only"), 1, "chelsea.png is a file", "vitzoo bench chelsea.png")


URLS = [
    (["convert", "ftp://example.com/ViT-B_16.npz", "{d}/o.safetensors"], "unsupported URL scheme ftp://"),
    (["bench", "s3://bucket/ViT-B_16.npz", "--no-store"], "unsupported URL scheme s3://"),
    (["flops", "gs://vit_models/ViT-B_16.npz", "--no-store"], "unsupported URL scheme gs://"),
    (["export", "https://example.com/ViT-B_16.npz", "{d}/o.onnx", "--format", "onnx"], "download and convert it"),
]


@pytest.mark.parametrize("args, message", URLS, ids=[a[0] for a, _ in URLS])
def test_an_unsupported_url_scheme_says_so(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path / "cache"))
    before = snapshot(tmp_path)
    one_line(run(*(a.format(d=tmp_path) for a in args)), 1, message)
    untouched(tmp_path, before)
    from vitzoo.weights.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="unsupported URL scheme gs://"):
        vitzoo.load("gs://vit_models/ViT-B_16.npz")


def test_labels_naming_missing_files_blame_the_labels(weights, tmp_path):
    from PIL import Image

    folder = tmp_path / "val"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8)).save(folder / f"img{i}.png")
    (tmp_path / "labels.txt").write_text("ILSVRC2012_val_00000001 n01440764\nILSVRC2012_val_00000002 n01443537\n")
    result = run("eval", weights, "--data", folder, "--labels", tmp_path / "labels.txt", "--no-store")
    one_line(result, 1, "labels.txt: none of the 2 files it labels is in", "(first: ILSVRC2012_val_00000001)")


def test_labels_naming_some_missing_files_are_one_line_and_nothing_is_recorded(weights, tmp_path):
    """Part of the labelled files absent: refused before the model is loaded, not scored as unreadable images."""
    from PIL import Image

    from vitzoo.measure.store import ResultStore

    folder = tmp_path / "val"
    folder.mkdir()
    for i in range(1, 3):
        Image.new("RGB", (8, 8)).save(folder / f"ILSVRC2012_val_{i:08d}.png")
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"ILSVRC2012_val_{i:08d} n01440764\n" for i in range(1, 6)))
    torch.manual_seed(0)
    model = vitzoo.create("testing", num_classes=1000)  # an ImageNet-1k head: the eval would run and be recorded
    with torch.no_grad():
        model.head.weight.normal_(0, 0.2)
    src = save_vitzoo(tmp_path / "in1k.safetensors", model.state_dict(), model.config)
    db = Path(os.environ["VITZOO_DB"])
    ResultStore(db)  # a real, empty results database
    result = run("eval", src, "--data", folder, "--labels", labels)
    one_line(result, 1, f"labels.txt: 3 of 5 files it labels are not in {folder} (first: ILSVRC2012_val_00000003, "
             "ILSVRC2012_val_00000004, ILSVRC2012_val_00000005); restore them, or remove their lines")  # fmt: skip
    assert ResultStore(db, readonly=True).load() == []


def test_hf_dataset_offline_is_one_line_without_retries(weights, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    result = run("eval", weights, "--hf-dataset", "vitzoo-no-such/dataset", "--no-store")
    one_line(result, 1, "'vitzoo-no-such/dataset' is not in the datasets cache", "HF_HUB_OFFLINE is set", "Offline")


# --- offline: what cannot be fetched says why and where to look -------------------------------------------------


def test_testing_is_never_suggested_for_download(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    for args in (["download", "testing"], ["bench", "testing", "--pretrained", "--no-store"]):
        result = run(*args)
        line = result.stderr.strip().splitlines()[-1]
        assert result.exit_code == 1 and "testing.random-10cls cannot be downloaded" in line, result.output
        assert "--random-init" in line and "vitzoo download testing" not in result.stderr
    line = one_line(run("download", "vit-b16"), 1, "HF_HUB_OFFLINE")
    assert "README, Offline and air-gapped use" in line
