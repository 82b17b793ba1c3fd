"""`vitzoo finetune` from the command line: a run, its output in eval/bench/export, Ctrl-C and --resume, --nproc,
and bad input (one line, nothing written)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from test_train import colour_folder, write_testing

import vitzoo
import vitzoo.cli.train as cli_train
import vitzoo.measure.bench as bench
from vitzoo.cli import main
from vitzoo.measure.roofline import GemmPeak

FAST = ["--img-size", "32", "-b", "12", "--accum", "2", "--lr", "0.03", "--warmup-steps", "2", "-j", "0",
        "--dtype", "fp32"]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    colour_folder(root / "train", 16, 0)
    colour_folder(root / "val", 8, 1)
    colour_folder(root / "other", 4, 2)
    (root / "other" / "purple").mkdir()
    (root / "other" / "purple" / "x.png").write_bytes((root / "other" / "red" / "0.png").read_bytes())
    write_testing(root / "testing.safetensors")
    return root


def run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def _weights(path) -> dict[str, torch.Tensor]:
    return vitzoo.load(path).state_dict()


def test_finetune_then_eval_bench_and_export_take_the_output(setup, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "gemm_peak", lambda device, dtype: GemmPeak("cpu", "fp32", 2, 0.5, ()))  # test_bench
    out = tmp_path / "ft.safetensors"
    res = run("finetune", setup / "testing.safetensors", "--data", setup / "train", "--val", setup / "val",
              "--steps", 16, *FAST, "-o", out, "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert row["steps"] == 16 and row["classes"] == 3 and row["val_top1"] >= 90 and row["out"] == str(out)
    assert [h["epoch"] for h in row["history"]] == [1, 2, 3, 4] and row["dtype"] == "fp32"
    assert "step 1/16 (epoch 1): loss 1.0986" in res.stderr  # ln 3: a zero head scores every class the same
    assert "epoch 4 (step 16): validation top-1" in res.stderr and "step 16/16" in res.stderr
    ev = run("eval", out, "--data", setup / "val", "-j", "0", "--no-store", "--json")
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.stdout)[0]["top1"] == pytest.approx(row["val_top1"], abs=0.01)
    assert "stored in the file" in ev.stderr
    b = run("bench", out, "-b", "2", "--warmup", "0", "--iters", "1", "--rounds", "1", "--no-store", "--json")
    assert b.exit_code == 0 and json.loads(b.stdout)[0]["img_size"] == 32, b.output
    ex = run("export", out, tmp_path / "timm.safetensors", "--format", "timm")
    assert ex.exit_code == 0 and (tmp_path / "timm.safetensors").exists(), ex.output


def test_ctrl_c_then_resume_equals_an_uninterrupted_run(setup, tmp_path, monkeypatch):
    common = [setup / "testing.safetensors", "--data", setup / "train", "--val", setup / "val", "--steps", 8, *FAST]
    whole = run("finetune", *common, "-o", tmp_path / "whole.safetensors")
    assert whole.exit_code == 0, whole.output
    shown = cli_train.Display.__call__

    def interrupt_at_5(self, report):
        shown(self, report)
        if getattr(report, "step", 0) == 5 and type(report).__name__ == "StepReport":
            raise KeyboardInterrupt

    out = tmp_path / "cut.safetensors"
    monkeypatch.setattr(cli_train.Display, "__call__", interrupt_at_5)
    cut = run("finetune", *common, "-o", out)
    assert cut.exit_code == 130 and not out.exists(), cut.output
    assert f"interrupted after step 5/8; resume checkpoint {out}.resume" in cut.stderr
    monkeypatch.setattr(cli_train.Display, "__call__", shown)
    again = run("finetune", "--resume", out)
    assert again.exit_code == 0, again.output
    assert "resuming" in again.stderr and "at step 5/8" in again.stderr and not Path(f"{out}.resume").exists()
    a, b = _weights(tmp_path / "whole.safetensors"), _weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nproc_2_is_data_parallel_and_matches_one_process(setup, tmp_path):
    common = [str(a) for a in (setup / "testing.safetensors", "--data", setup / "train", "--steps", 4, *FAST)]
    one = run("finetune", *common, "-o", tmp_path / "one.safetensors")
    assert one.exit_code == 0, one.output
    env = {**os.environ, "PYTHONPATH": str(Path(vitzoo.__file__).parent.parent), "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "vitzoo", "finetune", *common, "-o", str(tmp_path / "two.safetensors"),
                          "--nproc", "2", "--json"], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert two.returncode == 0, two.stderr
    assert json.loads(two.stdout)[0]["world_size"] == 2
    a, b = _weights(tmp_path / "one.safetensors"), _weights(tmp_path / "two.safetensors")
    for k in a:  # the same batches, gradients averaged over the ranks: equal up to summation order
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6, msg=k)


BAD_INPUT = [  # (arguments, {d}: the setup folder, {t}: an empty output folder; what the one error line says)
    ("finetune --data {d}/train -o {t}/x.safetensors", "name the checkpoint to fine-tune"),
    ("finetune {d}/testing.safetensors -o {t}/x.safetensors", "--data is required"),
    ("finetune {d}/testing.safetensors --data {d}/train", "--output is required"),
    ("finetune {d}/testing.safetensors --data {d}/train -o {t}/x.safetensors --steps 2 --epochs 1",
     "not both"),
    ("finetune vit-b17 --data {d}/train -o {t}/x.safetensors", "unknown model"),
    ("finetune {d}/missing.safetensors --data {d}/train -o {t}/x.safetensors", "no such weight file"),
    ("finetune {d}/testing.safetensors --data {d}/nope -o {t}/x.safetensors", "no such directory"),
    ("finetune {d}/testing.safetensors --data {d}/train --val {d}/other -o {t}/x.safetensors", "other classes"),
    ("finetune {d}/testing.safetensors --data {d}/train -b 12 --accum 5 -o {t}/x.safetensors",
     "does not split into 5"),
    ("finetune {d}/testing.safetensors --data {d}/train -b 64 --accum 1 -o {t}/x.safetensors",
     "fewer than one batch of 64"),
    ("finetune {d}/testing.safetensors --data {d}/train -o {t}", "is a directory"),
    ("finetune {d}/testing.safetensors --data {d}/train -o {t}/x.safetensors --lr 0", "--lr must be a positive number"),
    ("finetune {d}/testing.safetensors --data {d}/train -o {t}/x.safetensors --steps 0", "--steps"),
    ("finetune {d}/testing.safetensors --data {d}/train -o {t}/x.safetensors --dtype int8", "'--dtype'"),
    ("finetune {d}/testing.safetensors --data {d}/train -o {t}/x.safetensors --device cuda:7", "not available"),
    ("finetune {d}/testing.safetensors --data {d}/train -o {t}/x.safetensors --warmup-steps 600",
     "warmup-steps must be in [0, steps)"),
    ("finetune --resume {t}/x.safetensors", "no resume checkpoint"),
    ("finetune {d}/testing.safetensors --resume {t}/x.safetensors", "leave out NAME"),
    ("finetune --resume {t}/x.safetensors --lr 0.01", "leave out --lr"),
    ("finetune --resume {d}/testing.safetensors", "no resume checkpoint"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[a for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_writes_nothing(setup, tmp_path, args, message):
    before = sorted(p.name for p in setup.rglob("*"))
    res = CliRunner().invoke(main, [a.format(d=setup, t=tmp_path) for a in args.split()])
    lines = res.stderr.strip().splitlines()
    assert res.exit_code not in (0, None), res.output
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.stderr
    assert "Traceback" not in res.output and res.stdout == ""
    assert list(tmp_path.iterdir()) == [] and sorted(p.name for p in setup.rglob("*")) == before


def test_help_teaches_with_examples():
    res = run("finetune", "--help")
    assert res.exit_code == 0 and "Examples:" in res.stdout and "--resume OUT" in res.stdout
