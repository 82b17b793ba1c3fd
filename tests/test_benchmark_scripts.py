"""The scripts under benchmarks/, in parts, on the tiny `testing` model: peer_vit.py's engines each give vitzoo's
logits and its run history keeps every run, heap_reuse.py's per-pass probe runs (the scripts themselves time
ViT-B/16 for minutes, so only their parts run here; they break when the APIs they use change)."""

from __future__ import annotations

import csv
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vitzoo
from vitzoo.errors import VitzooError
from vitzoo.measure.history import append_history, check_history, result_stem

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def peer():
    return _script("peer_vit")


@pytest.fixture(scope="module")
def model_and_batch():
    torch.manual_seed(0)
    model = vitzoo.create("testing").eval()
    torch.nn.init.normal_(model.head.weight, std=0.02)
    return model, torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


def test_the_transformers_peer_holds_the_same_weights(peer, model_and_batch):
    pytest.importorskip("transformers")
    model, x = model_and_batch
    with torch.inference_mode():
        torch.testing.assert_close(peer.hf_vit_b16(model)(pixel_values=x).logits, model(x), rtol=1e-5, atol=1e-6)


def test_the_onnx_engines_run_the_exported_graph(peer, model_and_batch):
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    model, x = model_and_batch
    engines = peer.onnx_engines(model, threads=1)
    assert peer.ORT in engines
    with torch.inference_mode():
        expected = model(x)
    for name, forward in engines.items():
        torch.testing.assert_close(torch.from_numpy(forward(x.numpy())), expected, rtol=1e-4, atol=1e-5, msg=name)


def test_the_heap_probe_counts_faults_and_rss_per_pass():
    rows = _script("heap_reuse").passes("testing", 2, "reuse", 3)
    assert len(rows) == 3 and all(faults >= 0 and rss > 0 for faults, rss in rows)


def _report(date: str, rate: float) -> dict:
    metrics = {"img_per_s": rate, "best_round_img_per_s": rate + 0.5, "speedup_vs_transformers": 1.0,
               "speedup_vs_fused": 1.0, "tflops": 0.1, "pct_gemm_peak": 80.0, "pct_gemm_peak_per_round": 81.0,
               "max_abs_logit_diff_vs_transformers": 0.0, "latency_b1_ms": 40.0, "latency_b1_p90_ms": 41.0,
               "latency_vs_fused": 1.0}  # fmt: skip
    return {"date": date, "batch_size": 16, "rounds": 3, "load_average_start": [0.5, 0.5, 0.5],
            "dtypes": {"fp32": {"gemm_peak_tflops": 0.15, "models": {"a": metrics, "b": metrics}}}}  # fmt: skip


def test_the_peer_history_keeps_every_run_and_refuses_a_foreign_file(peer, tmp_path):
    history = tmp_path / "peer.csv"
    check_history(history, peer.HISTORY_COLUMNS)  # a new file is fine
    append_history(history, peer.HISTORY_COLUMNS, peer.history_rows(_report("2026-12-01 10:00 UTC", 3.0)))
    check_history(history, peer.HISTORY_COLUMNS)
    append_history(history, peer.HISTORY_COLUMNS, peer.history_rows(_report("2026-12-01 11:00 UTC", 4.0)))
    with open(history, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["date"][11:16], r["model"], r["img_per_s"]) for r in rows] == [
        ("10:00", "a", "3.000"), ("10:00", "b", "3.000"), ("11:00", "a", "4.000"), ("11:00", "b", "4.000")
    ]  # fmt: skip
    assert rows[0]["pct_gemm_peak_per_round"] == "81.0" and rows[0]["load_average_start"] == "0.50"
    foreign = tmp_path / "old.csv"
    foreign.write_text("dtype,model,img_per_s\nfp32,a,3.0\n")
    with pytest.raises(VitzooError, match="other columns"):
        check_history(foreign, peer.HISTORY_COLUMNS)
    assert foreign.read_text() == "dtype,model,img_per_s\nfp32,a,3.0\n"  # untouched


def test_a_history_is_named_for_the_machine_kind(tmp_path):
    isa, cores = torch.backends.cpu.get_cpu_capability().lower(), os.cpu_count()
    version = ".".join(torch.__version__.split(".")[:2])
    assert result_stem("peer-vit-b16") == f"peer-vit-b16-cpu-{isa}-{cores}core-pt{version}"


def test_an_older_peer_history_gains_the_latency_columns_and_keeps_its_rows(peer, tmp_path):
    history = tmp_path / "peer.csv"
    older = peer.HISTORY_COLUMNS[: -len(peer.LATENCY_FORMATS)]  # what the script wrote before batch-1 latency
    append_history(history, older, [{c: "x" for c in older}])
    rows = peer.history_rows(_report("2026-12-06 22:00 UTC", 5.0))
    rows = [{**r, "latency_b1_ms": "40.0", "latency_b1_p90_ms": "41.0", "latency_vs_fused": "1.000"} for r in rows]
    append_history(history, peer.HISTORY_COLUMNS, rows)
    with open(history, newline="") as f:
        read = list(csv.DictReader(f))
    assert list(read[0]) == list(peer.HISTORY_COLUMNS)
    assert read[0]["date"] == "x" and read[0]["latency_b1_ms"] == ""  # the old row kept, its new columns empty
    assert [r["latency_b1_ms"] for r in read[1:]] == ["40.0", "40.0"]


def test_finetune_demo_writes_a_four_class_folder(tmp_path):
    demo = _script("finetune_demo")
    root = demo.make_folder(tmp_path / "train", 2, 0)
    from vitzoo.evaluate.data import image_folder

    data = image_folder(root)
    assert data.classes.names == ("blue", "green", "red", "stripes") and len(data) == 8
    stripes = np.asarray(Image.open(root / "stripes" / "000.png"), dtype=float)
    red = np.asarray(Image.open(root / "red" / "000.png"), dtype=float)
    assert stripes.shape == red.shape == (48, 48, 3)
    assert red[..., 0].mean() > 150 > red[..., 2].mean()
    assert abs(stripes[::8].mean() - stripes[4::8].mean()) > 100  # 4 rows on, 4 off


def _cells() -> list:
    from vitzoo.measure.matrix import MatrixResult

    common = {"model": "vit-b16", "batch_size": 16, "img_size": 224, "threads": 2, "gflops": 35.1, "rounds": 2,
              "iters": 2, "fid_source": "8 photos"}  # fmt: skip
    ok = MatrixResult(backend="openvino", dtype="int8", method="nncf", status="ok", img_per_s=17.5,
                      round_img_per_s=(17.0, 18.0), latency_b1_ms=70.0, latency_b1_p90_ms=71.0, latency_b1_p99_ms=72.0,
                      memory_mib=300.0, tflops=0.61, peak_tflops=0.55, pct_peak=111.0, max_abs_err=0.05,
                      mean_abs_err=0.01, top1_agreement=0.875, degraded=True, prepare_s=9.0, warmup_s=3.0,
                      degraded_why="top-1 agreement with fp32 87.5% < 99%", other_cpu=0.2, **common)  # fmt: skip
    skipped = MatrixResult(backend="onnxruntime", dtype="bf16", method=None, status="skipped",
                           error="no bf16 MatMul kernel", **common)  # fmt: skip
    return [ok, skipped]


def test_the_matrix_history_keeps_every_run_and_the_table_says_why(tmp_path):
    matrix = _script("matrix_vit")
    history = tmp_path / "matrix.csv"
    check_history(history, matrix.HISTORY_COLUMNS)
    for date in ("2026-12-06 20:00 UTC", "2026-12-06 21:00 UTC"):
        append_history(history, matrix.HISTORY_COLUMNS, matrix.history_rows(_cells(), date, 1.5))
    check_history(history, matrix.HISTORY_COLUMNS)
    with open(history, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["date"][11:16], r["backend"], r["precision"], r["status"]) for r in rows] == [
        ("20:00", "openvino", "int8 nncf", "ok"), ("20:00", "onnxruntime", "bf16", "skipped"),
        ("21:00", "openvino", "int8 nncf", "ok"), ("21:00", "onnxruntime", "bf16", "skipped"),
    ]  # fmt: skip
    assert rows[0]["img_per_s"] == "17.500" and rows[0]["degraded"] == "True" and rows[1]["why"]
    meta = {"date": "d", "cpu_capability": "AVX512", "calib_source": "c", "load_start": "1", "load_end": "2",
            "args": "--rounds 2"}  # fmt: skip
    text = matrix.markdown(_cells(), meta, {"device_name": "cpu"})
    assert "| onnxruntime | bf16 | — |" in text and "skipped: no bf16 MatMul kernel" in text
    assert "**degraded**: top-1 agreement" in text and "111% of 0.550" in text
    foreign = tmp_path / "old.csv"
    foreign.write_text("dtype,model\n")
    with pytest.raises(VitzooError, match="other columns"):
        check_history(foreign, matrix.HISTORY_COLUMNS)
