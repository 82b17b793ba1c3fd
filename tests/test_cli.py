"""The command line: `vitzoo list` and `vitzoo info` through click's runner and as a real process."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

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
