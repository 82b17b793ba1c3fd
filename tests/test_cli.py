"""The command line: `vitzoo list` and `vitzoo info` through click's runner and as a real process."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import vitzoo
from vitzoo.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_list_table():
    result = run("list")
    assert result.exit_code == 0, result.output
    for name in vitzoo.list_models():
        assert name in result.stdout
    assert "86.57" in result.stdout  # ViT-B/16 params (M)


def test_list_json_and_pattern():
    rows = json.loads(run("list", "vit-b*", "--json").stdout)
    assert [r["name"] for r in rows] == ["vit-b8", "vit-b16", "vit-b32"]
    b16 = rows[1]
    assert b16["params"] == 86_567_656 and round(b16["gmacs"], 2) == 17.56
    assert b16["default_tag"] == "orig-in21k-ft-in1k" and b16["top1"] == 81.2 and b16["top1_source"]
    assert b16["patch"] == 16 and b16["img_size"] == 224


def test_list_csv():
    rows = list(csv.DictReader(io.StringIO(run("list", "bit-*", "--csv").stdout)))
    assert len(rows) == 6 and rows[0]["name"] == "bit-r50x1" and rows[0]["img_size"] == "448"


def test_hybrid_patch_is_total_stride():
    rows = {r["name"]: r for r in json.loads(run("list", "vit-r*", "--json").stdout)}
    assert rows["vit-r50-b16"]["patch"] == 16 and rows["vit-r-ti16"]["patch"] == 32


def test_info_lists_all_tags():
    result = run("info", "vit-b16")
    assert result.exit_code == 0
    for w in vitzoo.get_spec("vit-b16").weights:
        assert w.tag in result.stdout
    info = json.loads(run("info", "vit-b16", "--json").stdout)
    assert info["tags"][0]["hub_repo"] == "google/vit-base-patch16-224"
    assert info["tags"][0]["url"].startswith("https://storage.googleapis.com/vit_models/")


def test_unknown_model_is_one_line_on_stderr():
    result = run("info", "vit-b61")
    assert result.exit_code == 1
    assert result.stdout == ""
    expected = "error: unknown model 'vit-b61'; did you mean vit-b16, vit-b8, vit-s16?"
    assert result.stderr.strip().splitlines() == [expected]


def test_no_match_fails():
    result = run("list", "zzz*")
    assert result.exit_code == 1 and "no model matches" in result.stderr


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "vitzoo", "--version"], capture_output=True, text=True, check=True)
    assert vitzoo.__version__ in out.stdout


def _piped(*args: str, columns: str = "80") -> list[str]:
    """A command's stdout as a pipe sees it (rich lays out for COLUMNS, else 80)."""
    env = {**os.environ, "COLUMNS": columns, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-m", "vitzoo", *args], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


KEY_COLUMNS = [  # (command, a row it must show, the numbers and marks that row must keep at 80 columns)
    (["tradeoff", "--reported-only"], "vit-r-ti16.augreg-in21k-ft-in1k-384", ["1.33", "75.40", "★ GMACs", "—"]),
    (["list", "--all"], "vit-b16.orig-in21k-ft-in1k ", ["17.56", "81.20"]),
    (["list"], "vit-b16 ", ["86.57", "17.56", "81.20"]),
    (["flops", "vit-b16", "--no-store"], "vit-b16.orig-in21k-ft-in1k", ["17.564", "✓"]),
    (["info", "vit-b16"], "orig-in21k-ft-in1k ", ["17.56", "81.20"]),
]


@pytest.mark.parametrize("args, row, values", KEY_COLUMNS, ids=[" ".join(a) for a, _, _ in KEY_COLUMNS])
def test_piped_tables_keep_their_key_columns_at_80(args, row, values):
    lines = _piped(*args)
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    [line] = [line for line in lines if line.startswith(f"│ {row}")]
    assert all(v in line for v in values), line


def test_wide_shows_every_column_and_a_narrow_console_stacks_rows():
    wide = _piped("tradeoff", "vit-b16", "--reported-only", "--wide")
    assert max(len(line) for line in wide) > 80 and "vit_jax README (2020)" in "\n".join(wide)
    stacked = _piped("tradeoff", "vit-b16", "--reported-only", columns="40")
    assert "   top-1 %: 81.20" in stacked and "    Pareto: ★ GMACs" in stacked
    assert max(len(line) for line in stacked) <= 40


def test_random_or_pretrained_weights_are_asked_for_one_way_everywhere():
    """--pretrained / --random-init mean the same in every command that has either (one parameter, `weights`);
    only the default differs (bench: random weights, which work offline), and giving both is refused."""
    from vitzoo.cli import COMMANDS

    ctx = click.Context(main)
    having = {}
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        opts = {o: p for p in command.params for o in p.opts if o in ("--pretrained", "--random-init")}
        if opts:
            assert set(opts) == {"--pretrained", "--random-init"}, name
            assert {p.name for p in opts.values()} == {"weights"}, name
            having[name] = next(p.flag_value for p in opts.values() if p.default is True)
    assert having == {"bench": "random", "inspect": "pretrained", "predict": "pretrained"}
    both = run("predict", "testing", "x.png", "--pretrained", "--random-init")
    assert both.exit_code == 2 and "--pretrained and --random-init cannot be used together" in both.stderr
