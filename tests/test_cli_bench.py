"""`vitzoo bench`, `flops` and `results` from the command line: bad input, exit codes, Ctrl-C, tables at 80 columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import vitzoo
import vitzoo.cli._output as output
import vitzoo.measure.bench as bench
from vitzoo.cli import main
from vitzoo.measure.roofline import GemmPeak
from vitzoo.measure.store import ResultStore
from vitzoo.weights.checkpoint import save_vitzoo

FAST = ["--warmup", "0", "--iters", "1", "--rounds", "1", "--img-size", "32"]


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, bytes]:
    """The bytes of a good store, a corrupt store (garbage in its middle pages) and a weight file, made once."""
    root = tmp_path_factory.mktemp("templates")
    ResultStore(root / "good.sqlite").add("flops", "testing", {"gmacs": 0.1}, {"host": "h"})
    corrupt = ResultStore(root / "corrupt.sqlite")
    for i in range(100):
        corrupt.add("flops", f"m{i}", {"pad": "x" * 300}, {"host": "h"})
    data = bytearray((root / "corrupt.sqlite").read_bytes())
    data[len(data) // 2 : len(data) // 2 + 6000] = b"\x5a" * 6000
    model = vitzoo.create("testing")
    save_vitzoo(root / "ti.safetensors", model.state_dict(), model.config)
    return {"good.sqlite": (root / "good.sqlite").read_bytes(), "corrupt.sqlite": bytes(data),
            "ti.safetensors": (root / "ti.safetensors").read_bytes()}  # fmt: skip


@pytest.fixture
def files(tmp_path, monkeypatch, templates):
    """A folder with a good store, a corrupt store, a text file, a folder named like a weight file, a weight file;
    VITZOO_DB points inside it, so any database a command creates by default shows up in the snapshot. The GEMM
    roofline is stubbed: it is measured for real in test_bench.py."""
    monkeypatch.setenv("VITZOO_DB", str(tmp_path / "default" / "results.sqlite"))
    monkeypatch.setattr(bench, "gemm_peak", lambda device, dtype: GemmPeak("cpu", "fp32", 2, 0.5, ()))
    for name, data in templates.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "notes.sqlite").write_text("my notes\n")
    (tmp_path / "dir.safetensors").mkdir()
    return tmp_path


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


BAD_INPUT = [  # (arguments with {d} for the folder, what the one error line says)
    ("results --db {d}/typo.sqllite", "no results database at"),
    ("results --db {d}/not/yet/r.sqlite", "no results database at"),
    ("results", "no results database at"),  # the default database does not exist yet: not created
    ("results --db {d}/good.sqlite --last 0", "'--last': 0 is not in the range x>=1"),
    ("results --db {d}/good.sqlite --last -1", "'--last': -1 is not in the range x>=1"),
    ("results --db {d}/good.sqlite --kind nope", "'--kind'"),
    ("results --db {d}/corrupt.sqlite", "corrupt"),
    ("results --db {d}/notes.sqlite", "not a vitzoo results database"),
    ("results --db {d}", "is a directory"),
    ("flops testing --db {d}/corrupt.sqlite", "corrupt"),
    ("flops testing --db {d}/notes.sqlite", "not a vitzoo results database"),
    ("flops testing --db {d}/dir.safetensors", "is a directory"),
    ("flops {d}/dir.safetensors --no-store", "is a directory, not a weight file"),
    ("flops {d}/missing.safetensors", "no such weight file"),
    ("flops ti16.safetensors", "no such weight file: ti16.safetensors"),
    ("flops 'zzz*'", "no model matches"),
    ("flops vit-b17", "unknown model"),
    ("flops testing --img-size 0", "img_size must be a positive integer"),
    ("bench testing --db {d}/corrupt.sqlite", "corrupt"),
    ("bench testing --db {d}/notes.sqlite", "not a vitzoo results database"),
    ("bench {d}/dir.safetensors", "is a directory, not a weight file"),
    ("bench ti16.safetensors", "no such weight file"),
    ("bench vit-b17", "unknown model"),
    ("bench 'zzz*'", "no model matches"),
    ("bench testing --device cuda:7", "not available"),
    ("bench testing --device gpu", "cpu, cuda, cuda:N or mps"),
    ("bench testing -b 1,x", "batch size must be"),
    ("bench testing -b 0", "batch sizes must be >= 1"),
    ("bench testing --dtype int9", "dtype must be one of"),
    ("bench testing --backend tensorrt", "unknown backend"),
    ("bench testing --dtype fp32,int9", "unknown dtype 'int9'"),
    ("bench testing --backend torch,tensorrt", "unknown backend 'tensorrt'"),
    ("bench testing --dtype fp16,int8", "drop fp16"),
    ("bench testing --dtype fp32,int8 --compile", "drop --compile"),
    ("bench testing --dtype int8 --device cuda", "drop --device cuda"),
    ("bench testing --dtype int8 -b auto", "one throughput batch size"),
    ("bench testing --dtype int8 --calib 0", "--calib must be at least 1"),
    ("bench testing --dtype int8 --fidelity-images 0", "--fidelity-images must be at least 1"),
    ("bench testing --dtype int8 --data {d}/nowhere", "no such directory"),
    ("bench testing --dtype int8 --data {d}/dir.safetensors", "no class folders"),
    ("bench vit-b17 --dtype int8", "unknown model"),
    ("bench testing --iters 0", "iters must be a positive integer"),
    ("bench testing --seconds -1", "seconds must be > 0"),
    ("bench testing --threads 0", "threads must be a positive integer"),
    ("bench testing --img-size -5", "img_size must be a positive integer"),
    ("bench", "name at least one model"),
    ("bench testing --peak", "without model names"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[a for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_changes_nothing(files, args, message):
    before = _snapshot(files)
    argv = [a.strip("'").format(d=files) for a in args.split()]
    out = CliRunner().invoke(main, argv)
    lines = out.stderr.strip().splitlines()
    assert out.exit_code not in (0, None), out.output
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], out.stderr
    assert "Traceback" not in out.output and out.stdout == ""
    assert _snapshot(files) == before


class Broken(nn.Module):
    def forward(self, x):
        raise ValueError("shapes do not match")


def _fake_build(broken: set[str], interrupt: set[str] = frozenset()):
    real = bench._build

    def build(name, options):
        if name in interrupt:
            raise KeyboardInterrupt
        if name in broken:
            return Broken(), 32, 1
        return real(name, options)

    return build


def test_bench_exits_1_when_a_measurement_failed_and_keeps_the_others(files, monkeypatch):
    monkeypatch.setattr(bench, "_build", _fake_build({"vit-ti16"}))
    db = files / "r.sqlite"
    out = CliRunner().invoke(main, ["bench", "vit-ti16", "testing", *FAST, "--db", str(db), "--json"])
    assert out.exit_code == 1, out.output
    assert [(r["model"], r["status"]) for r in json.loads(out.stdout)] == [("vit-ti16", "error"), ("testing", "ok")]
    assert out.stderr.strip().splitlines()[-1] == "error: 1 of 2 measurement(s) failed (error)"
    assert ResultStore(db).query()["status"].tolist() == ["error", "ok"]  # stored all the same


def test_bench_exits_1_when_every_measurement_failed(files, monkeypatch):
    monkeypatch.setattr(bench, "_build", _fake_build({"testing"}))
    out = CliRunner().invoke(main, ["bench", "testing", *FAST, "--no-store"])
    assert out.exit_code == 1 and "1 of 1 measurement(s) failed" in out.stderr
    assert "shapes do not match" in out.stderr and "Traceback" not in out.output


def test_ctrl_c_keeps_the_models_already_measured(files, monkeypatch):
    monkeypatch.setattr(bench, "_build", _fake_build(set(), interrupt={"vit-ti16"}))
    db = files / "r.sqlite"
    out = CliRunner().invoke(main, ["bench", "testing", "vit-ti16", *FAST, "-b", "1,2", "--db", str(db), "--json"])
    assert out.exit_code == 130, out.output
    assert [(r["model"], r["batch_size"]) for r in json.loads(out.stdout)] == [("testing", 1), ("testing", 2)]
    assert ResultStore(db).query()["batch_size"].tolist() == [1, 2]
    assert "interrupted: 2 result(s)" in out.stderr and "Traceback" not in out.output


def test_bench_and_flops_take_weight_files(files):
    path = str(files / "ti.safetensors")
    out = CliRunner().invoke(main, ["bench", path, *FAST, "--no-store", "--json"])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.stdout)
    assert row["model"] == path and row["status"] == "ok"
    assert row["kernels"] in ("fused", "aten") and "contended" in row and "load_start" in row
    out = CliRunner().invoke(main, ["flops", path, "--img-size", "32", "--no-store", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)[0]["agree"] is True


def test_bench_header_says_which_kernels_ran(files, monkeypatch):
    monkeypatch.setattr(output.console, "width", 200)
    out = CliRunner().invoke(main, ["bench", "testing", *FAST, "--dtype", "bf16", "--no-store"])
    assert out.exit_code == 0, out.output
    from vitzoo.measure.fused import onednn_linear_supports

    if onednn_linear_supports(torch.bfloat16):
        assert "fused kernels" in out.stdout
    else:
        assert "aten kernels (no oneDNN bf16 linear on this" in out.stdout
        assert "kernels: aten" in out.stderr
    from vitzoo.measure.cpu import low_precision_warning

    warning = low_precision_warning("bf16")
    assert (warning is None) or out.stderr.count(warning) == 1


def test_contended_results_are_flagged(files, monkeypatch):
    import vitzoo.measure.cpu as cpu

    monkeypatch.setattr(cpu, "is_contended", lambda *a, **k: True)
    monkeypatch.setattr(output.console, "width", 200)
    db = files / "r.sqlite"
    out = CliRunner().invoke(main, ["bench", "testing", *FAST, "--db", str(db)])
    assert out.exit_code == 0, out.output
    assert "busy CPU" in out.stdout and "measured while other processes used the CPU" in out.stderr
    out = CliRunner().invoke(main, ["results", "--db", str(db)])
    assert "(contended)" in out.stdout and "marked contended" in out.stderr


def test_bench_table_fits_80_columns_without_splitting_names(files, monkeypatch):
    monkeypatch.setattr(output.console, "width", 80)
    name = "vit-ti16.augreg-in21k-ft-in1k"
    monkeypatch.setattr(bench, "_build", lambda n, o: (vitzoo.create("testing", img_size=32), 32, 1))
    out = CliRunner().invoke(main, ["bench", name, *FAST, "-b", "1,2", "--no-store"])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert sum(name in line for line in lines) == 2  # each row holds the whole name
    footnote = " ".join(out.stdout.split("not shown at 80 columns: ")[1].split())
    assert "img/s" in out.stdout and "p90, p99" in footnote
    assert "(--wide shows them; --json and --csv have every column)" in footnote


def test_render_table_keeps_names_whole_and_wraps_prose(monkeypatch, capsys):
    monkeypatch.setattr(output.console, "width", 60)
    rows = [{"name": "augreg-in21k-ft-in1k-384-long", "a": 1.5, "b": 2.5, "text": "one two three four five six seven"}]
    columns = [("name", "name", None), ("text", "reported by", None), ("a", "alpha value", None), ("b", "beta", None)]
    output.render_table(rows, columns)
    out = capsys.readouterr().out
    assert "augreg-in21k-ft-in1k-384-long" in out and all(len(line) <= 60 for line in out.splitlines())
    assert "not shown at 60 columns" in out  # something had to go, and the footnote says what
    path = "/cache/vitzoo/hub/models--google--vit-base-patch16-224/snapshots/0123abcd/model.safetensors"
    output.render_table([{"name": "vit-b16", "path": path}], [("name", "name", None), ("path", "path", None)])
    out = capsys.readouterr().out
    assert "path" in out and "not shown" not in out  # a path longer than the table folds instead of vanishing
    assert "".join(line.split("│")[2].strip() for line in out.splitlines() if line.count("│") == 3) == path


def test_every_option_has_help_and_one_db_wording():
    for command in ("bench", "flops", "results"):
        cmd = main.get_command(None, command)
        for param in cmd.params:
            if param.param_type_name == "option":
                assert param.help, f"{command} {param.opts} has no help"
            if "--db" in getattr(param, "opts", ()):
                assert param.help == output.DB_HELP
            if "--no-store" in getattr(param, "opts", ()):
                assert param.help == output.NO_STORE_HELP


def test_bench_mode_train_is_stored_and_shown_by_results(files, monkeypatch):
    monkeypatch.setattr(output.console, "_width", 250)  # the table as on a wide terminal
    db = files / "train.sqlite"
    args = ["bench", "testing", "--mode", "train", "--grad-checkpointing", "-b", "2", "--threads", "1", *FAST]
    out = CliRunner().invoke(main, [*args, "--db", str(db), "--json"])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.stdout)
    assert (row["mode"], row["grad_checkpointing"], row["status"]) == ("train", True, "ok")
    stored = ResultStore(db).query(kind="bench")
    assert stored["mode"].tolist() == ["train"] and bool(stored["grad_checkpointing"][0])
    table = CliRunner().invoke(main, ["results", "--db", str(db)])
    assert table.exit_code == 0 and "batch 2 fp32 train (grad checkpointing)" in table.stdout
    shown = CliRunner().invoke(main, [*args, "--no-store"])
    assert shown.exit_code == 0 and "training steps (forward + backward + SGD)" in shown.stdout
    bad = CliRunner().invoke(main, ["bench", "testing", "--grad-checkpointing", "--no-store"])
    assert bad.exit_code != 0 and bad.stderr.strip() == "error: gradient checkpointing only applies to --mode train"
