"""vitzoo bench --backend onnxruntime|openvino: the same harness, columns and store as torch."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vitzoo.cli import main
from vitzoo.errors import ConfigError
from vitzoo.measure import roofline
from vitzoo.measure.backends import OrtRunner, backend_version
from vitzoo.measure.bench import BenchOptions, bench_models
from vitzoo.measure.roofline import GemmPeak
from vitzoo.measure.store import ResultStore

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TINY = {"warmup": 1, "iters": 2, "rounds": 2, "gemm_peak": False, "batch_sizes": (1, 3)}


def test_onnxruntime_runs_the_same_harness_and_follows_threads():
    before = torch.get_num_threads()
    results = bench_models(["testing"], BenchOptions(backend="onnxruntime", threads=1, **TINY))
    expected = [(1, "ok", "onnxruntime", 1), (3, "ok", "onnxruntime", 1)]
    assert [(r.batch_size, r.status, r.backend, r.threads) for r in results] == expected
    for r in results:
        assert r.img_per_s == pytest.approx(float(np.median(r.round_img_per_s))) and len(r.round_img_per_s) == 2
        assert 0 < r.latency_ms <= r.latency_p90_ms <= r.latency_p99_ms and r.gflops > 0
        assert r.memory_kind == "cpu_rss_delta"
        json.dumps(r.as_dict())
    assert torch.get_num_threads() == before


def test_ort_runner_checks_logits_and_uses_the_threads():
    import vitzoo

    model = vitzoo.create("testing", img_size=32)
    torch.nn.init.normal_(model.head.weight, std=0.5)
    runner = OrtRunner(model, BenchOptions(backend="onnxruntime", threads=2), 32, torch.device("cpu"), 2)
    assert runner.max_rel_diff <= 1e-4
    assert runner.session.get_session_options().intra_op_num_threads == 2
    x = runner.inputs(4)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x))
    np.testing.assert_allclose(runner.forward(x), ref.numpy(), rtol=1e-4, atol=1e-5)


def test_settings_a_backend_cannot_run_fail_up_front():
    for bad in ({"dtype": "bf16"}, {"compile": True}, {"device": "cuda"}, {"channels_last": True}):
        with pytest.raises(ConfigError, match="--backend onnxruntime"):
            BenchOptions(backend="onnxruntime", **bad)
    with pytest.raises(ConfigError, match="unknown backend"):
        BenchOptions(backend="tensorrt")


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")
def test_openvino_backend():
    (r,) = bench_models(["testing"], BenchOptions(backend="openvino", threads=1, **{**TINY, "batch_sizes": (2,)}))
    assert r.status == "ok" and r.backend == "openvino" and r.img_per_s > 0


def test_cli_header_store_and_results_name_the_backend(tmp_path, monkeypatch):
    db = str(tmp_path / "r.sqlite")
    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path / "cache"))  # the stubbed roofline must not reach a real cache
    monkeypatch.setattr(roofline, "measure_gemm_peak", lambda *a, **k: GemmPeak("cpu", "fp32", 2, 0.25, ()))
    roofline._cached_peak.cache_clear()
    runner = CliRunner()
    common = ["testing", "-b", "2", "--warmup", "1", "--iters", "1", "--rounds", "1", "--img-size", "32", "--db", db]
    out = runner.invoke(main, ["bench", *common, "--backend", "onnxruntime", "--threads", "1"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert out.stdout.lstrip().startswith(backend_version("onnxruntime"))  # the table's title names the runtime
    out = runner.invoke(main, ["bench", *common])
    assert out.exit_code == 0, out.output
    df = ResultStore(db).query(kind="bench")
    assert df["backend"].tolist() == ["onnxruntime", "torch"]
    assert df["env_backend"].tolist()[0] == backend_version("onnxruntime")
    out = runner.invoke(main, ["results", "--db", db, "--kind", "bench", "--json"])
    rows = json.loads(out.stdout)
    assert [r["backend"] for r in rows] == ["onnxruntime", "torch"]
    from vitzoo.cli.results import _summary  # the `vitzoo results` table's headline

    assert "[onnxruntime]" in _summary(rows[0]) and "[" not in _summary(rows[1])  # "(contended)" may follow
    roofline._cached_peak.cache_clear()


def test_tradeoff_takes_the_throughput_of_one_backend(tmp_path):
    from vitzoo.evaluate.tradeoff import build_tradeoff

    store = ResultStore(tmp_path / "r.sqlite")
    row = {"status": "ok", "device": "cpu", "dtype": "fp32", "img_size": 224}
    store.add("bench", "vit-b16", {**row, "img_per_s": 50.0}, {})  # a row from before backends: torch
    store.add("bench", "vit-b16", {**row, "img_per_s": 55.0, "backend": "torch"}, {})
    store.add("bench", "vit-b16", {**row, "img_per_s": 70.0, "backend": "onnxruntime"}, {})
    assert build_tradeoff(["vit-b16"], store=store)[0].throughput == 55.0
    assert build_tradeoff(["vit-b16"], store=store, backend="onnxruntime")[0].throughput == 70.0
    out = CliRunner().invoke(main, ["tradeoff", "vit-b16", "--db", str(tmp_path / "r.sqlite"), "--backend",
                                    "onnxruntime", "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)[0]["throughput"] == 70.0
