"""The deployment matrix (vitzoo.measure.matrix, .engines): every runtime x fp32/bf16/int8 cell runs or says why, its
fidelity numbers are those of the two logit arrays, and the 99% rule flags a broken quantization and not a good one
(on a converted original vit_jax checkpoint and its four real photos)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from reference import inputs, logits, write_npz

import vitzoo
from vitzoo.cli import main
from vitzoo.machine import cpu_flags
from vitzoo.measure.cpu import int8_note, native_dtype
from vitzoo.measure.engines import Cell, cells, why_not
from vitzoo.measure.fidelity import compare
from vitzoo.measure.fused import attention_kernel
from vitzoo.measure.matrix import MatrixData, MatrixOptions, run_matrix, synthetic_data
from vitzoo.measure.roofline import GemmPeak
from vitzoo.measure.store import ResultStore

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

ALL = {"backends": ("torch", "onnxruntime", "openvino"), "dtypes": ("fp32", "bf16", "int8")}
# batch 1 everywhere: the compiled int8 cells then compile one shape only
FAST = {"batch_size": 1, "rounds": 2, "iters": 1, "latency_iters": 2, "warmup": 1, "threads": 1, "gemm_peak": False}


def _expected_reason(cell: Cell) -> str | None:
    """What this machine and these packages cannot run, read independently of vitzoo.measure.engines."""
    needs = {"onnxruntime": ["onnxruntime"], "openvino": ["openvino"]}.get(cell.backend, [])
    needs += {("torch", "int8"): ["torchao"], ("openvino", "int8"): ["nncf"]}.get((cell.backend, cell.dtype), [])
    if any(importlib.util.find_spec(m) is None for m in needs):
        return "not installed"
    if cell.dtype == "bf16" and cell.backend != "torch":
        flags = cpu_flags() or frozenset()
        if not ({"avx512_bf16", "amx_bf16"} & flags):
            return "no native bf16"
        if cell.backend == "onnxruntime":
            return "no bf16 MatMul kernel"
    return None


@pytest.fixture(scope="module")
def printed_and_matrix():
    """The matrix, and what building and running it wrote to sys.stderr (warnings and log records land there)."""
    torch.manual_seed(0)
    model = vitzoo.create("testing", img_size=32)
    with contextlib.redirect_stderr(io.StringIO()) as err:
        results = run_matrix(model, "testing", MatrixOptions(**ALL, **FAST), synthetic_data(32, calib=4, images=6))
    return err.getvalue(), results


@pytest.fixture(scope="module")
def matrix(printed_and_matrix):
    return printed_and_matrix[1]


def test_the_runtimes_noise_stays_out_of_the_output(printed_and_matrix):
    printed, results = printed_and_matrix
    assert all(r.status != "error" for r in results)
    for noise in ("Failed to load", "UserWarning", "is an Enum subclass", "Traceback"):
        assert noise not in printed


def test_every_cell_runs_or_says_why(matrix):
    assert [(r.backend, r.dtype, r.method) for r in matrix] == [
        (c.backend, c.dtype, c.method) for c in cells(ALL["backends"], ALL["dtypes"])
    ]
    assert {r.method for r in matrix if r.dtype == "int8"} == {"pt2e", "torchao", "static", "dynamic", "nncf"}
    for r in matrix:
        reason = _expected_reason(Cell(r.backend, r.dtype, r.method))
        if reason is None:
            assert r.status == "ok", (r.backend, r.dtype, r.method, r.error)
            assert r.img_per_s > 0 and 0 < r.latency_b1_ms <= r.latency_b1_p90_ms <= r.latency_b1_p99_ms
            assert r.img_per_s == pytest.approx(float(np.median(r.round_img_per_s))) and len(r.round_img_per_s) == 2
            assert r.fid_images == 6 and 0 <= r.top1_agreement <= 1 and r.max_abs_err >= r.mean_abs_err >= 0
            assert r.degraded == (r.top1_agreement < 0.99)  # no labels: agreement decides
        else:
            assert r.status == "skipped" and reason in r.error and r.img_per_s is None, (r.backend, r.dtype, r.error)
        json.dumps(r.as_dict())
    torch_fp32 = next(r for r in matrix if (r.backend, r.dtype) == ("torch", "fp32"))
    assert torch_fp32.top1_agreement == 1.0 and torch_fp32.max_abs_err < 1e-5 and not torch_fp32.degraded
    int8 = [r for r in matrix if r.dtype == "int8" and r.status == "ok"]
    assert all((int8_note() is None) == ("emulated" not in (r.note or "")) for r in int8)
    torch_int8 = [r for r in matrix if r.backend == "torch" and r.dtype == "int8"]
    rest = torch.bfloat16 if native_dtype("bf16") else torch.float32  # int8-mixed-bf16 where bf16 is native
    for r in (r for r in torch_int8 if r.status == "ok"):
        assert ("the rest in bf16 (autocast" in r.note) == (rest == torch.bfloat16)
        assert ("attention as oneDNN GEMMs" in r.note) == (attention_kernel(rest, head_dim=5) == "gemms")  # 10 / 2
    (default,) = [r for r in torch_int8 if r.default]  # exactly one: the fastest non-degraded one measured
    ran = [r for r in torch_int8 if r.status == "ok"]
    if ran:
        candidates = [r for r in ran if not r.degraded] or ran
        assert default.img_per_s == max(r.img_per_s for r in candidates)
    assert [r.calib_images for r in int8] == [4 if r.method in ("pt2e", "static", "nncf") else None for r in int8]


def test_bf16_and_int8_reasons_follow_the_cpu_flags():
    assert why_not(Cell("openvino", "bf16"), frozenset({"avx2", "fma"})).startswith("this CPU has no native bf16")
    assert int8_note(frozenset({"avx2"})).startswith("int8 emulated on this CPU (no AVX512-VNNI")
    assert int8_note(frozenset({"avx2", "avx_vnni"})) is None and int8_note(frozenset({"avx512_vnni"})) is None
    assert native_dtype("int8", frozenset({"asimddp"})) is True


def _by_hand(ref: np.ndarray, got: np.ndarray) -> tuple[float, float, float]:
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    return float(diff.max()), float(diff.sum() / diff.size), float(np.mean(ref.argmax(1) == got.argmax(1)))


@pytest.fixture(scope="module")
def ti16(tmp_path_factory):
    """The converted original ViT-Ti/16 reference checkpoint (10 classes) and its four real photos, labelled by the
    original implementation's own top-1."""
    model = vitzoo.load(write_npz("ti16_opt_10cls_224", tmp_path_factory.mktemp("ref") / "ti16.npz"))
    return model, inputs(), logits("ti16_opt_10cls_224").argmax(1)


def _run_int8(ti16, calib: np.ndarray, seen: list | None = None):
    """The ONNX Runtime int8 cells on the four photos; ``seen`` collects the (ref, got) logits fidelity compared."""
    import vitzoo.measure.matrix as matrix

    model, photos, labels = ti16
    data = MatrixData(calib, "test calibration", photos, "four photos", labels)
    options = MatrixOptions(backends=("onnxruntime",), dtypes=("int8",), **{**FAST, "batch_size": 4})
    with pytest.MonkeyPatch.context() as mp:
        if seen is not None:
            mp.setattr(matrix, "compare", lambda ref, got, y: seen.append((ref, got)) or compare(ref, got, y))
        return {r.method: r for r in run_matrix(model, "ti16", options, data)}


@pytest.fixture(scope="module")
def calibrated(ti16):
    """Static int8 calibrated on the photos themselves (a good calibration), with the logits it was judged on."""
    seen: list = []
    return _run_int8(ti16, ti16[1], seen), seen


def test_fidelity_fields_are_those_of_the_two_logit_arrays(ti16, calibrated):
    model, photos, labels = ti16
    results, seen = calibrated
    with torch.inference_mode():
        ref = model(torch.from_numpy(photos)).numpy()
    for (r, method), (ref_seen, got) in zip(((results[m], m) for m in ("static", "dynamic")), seen, strict=True):
        np.testing.assert_array_equal(ref_seen, ref)  # the reference is the fp32 PyTorch model on the same photos
        assert (r.max_abs_err, r.mean_abs_err, r.top1_agreement) == pytest.approx(_by_hand(ref, got), rel=1e-6)
        assert r.top1_accuracy == float(np.mean(got.argmax(1) == labels)) and r.ref_top1_accuracy == 1.0, method
    r = results["static"]
    assert r.calib_images == 4 and r.calib_source == "test calibration" and r.fid_source == "four photos"
    assert results["dynamic"].calib_images is None


def test_degraded_trips_on_a_broken_calibration_and_not_on_a_good_one(ti16, calibrated):
    good, _ = calibrated
    assert not good["static"].degraded and good["static"].top1_accuracy == 1.0
    broken = _run_int8(ti16, np.zeros_like(ti16[1]))  # constant images: activation ranges that clip every photo
    assert broken["static"].degraded and broken["static"].top1_accuracy < 0.99
    assert broken["static"].degraded_why.startswith("top-1 accuracy")
    assert not broken["dynamic"].degraded  # no calibration: the constant images cannot break it


@pytest.fixture
def stub_peak(monkeypatch):
    """The GEMM rooflines stubbed (measured for real in test_bench.py): 0.5 TFLOP/s for every precision."""
    from vitzoo.measure import roofline

    monkeypatch.setattr(roofline, "measure_gemm_peak", lambda device, dtype, **k: GemmPeak("cpu", "x", 1, 0.5, ()))


def test_cli_runs_the_matrix_prints_one_table_and_stores_every_cell(tmp_path, stub_peak):
    db = tmp_path / "r.sqlite"
    args = ["bench", "testing", "--img-size", "32", "--backend", "onnxruntime,openvino", "--dtype", "fp32,bf16",
            "-b", "2", "--rounds", "1", "--iters", "1", "--warmup", "0", "--threads", "1", "--fidelity-images", "3",
            "--db", str(db)]  # fmt: skip
    out = CliRunner().invoke(main, args, env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    printed = " ".join(out.stdout.split())  # the table title may wrap: rich's console width is set once per process
    assert "fidelity vs fp32 PyTorch on synthetic" in printed and "skipped: " in printed
    stored = ResultStore(db).query(kind="bench")
    assert list(zip(stored["backend"], stored["dtype"], strict=True)) == [
        ("onnxruntime", "fp32"), ("onnxruntime", "bf16"), ("openvino", "fp32"), ("openvino", "bf16")
    ]  # fmt: skip
    assert set(stored["env_mode"]) == {"matrix"} and stored["top1_agreement"].tolist()[0] == 1.0
    assert stored["status"].tolist()[1] == "skipped" and stored["error"].tolist()[1]  # why, in the record too
    ok = stored[stored["status"] == "ok"]
    assert (ok["peak_tflops"] == 0.5).all() and ok["pct_peak"].tolist() == pytest.approx(
        (100 * ok["tflops"] / 0.5).tolist()
    )


def test_cli_data_gives_disjoint_calibration_and_labelled_fidelity_images(tmp_path, stub_peak):
    from PIL import Image

    for i in range(10):  # ten class folders: the `testing` model's ten classes, so top-1 accuracy is measured
        (tmp_path / "data" / f"c{i}").mkdir(parents=True)
        Image.new("RGB", (48, 40), (25 * i, 200 - 20 * i, 60)).save(tmp_path / "data" / f"c{i}" / f"{i}.png")
    db = tmp_path / "r.sqlite"
    out = CliRunner().invoke(main, ["bench", "testing", "--img-size", "32", "--backend", "onnxruntime", "--dtype",
                                    "int8", "-b", "2", "--rounds", "1", "--iters", "1", "--warmup", "0", "--threads",
                                    "1", "--data", str(tmp_path / "data"), "--calib", "3", "--fidelity-images", "4",
                                    "--db", str(db), "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    rows = ResultStore(db).query(kind="bench").to_dict("records")
    assert [r["method"] for r in rows] == ["static", "dynamic"]
    for r in rows:
        assert r["fid_images"] == 4 and r["fid_source"].startswith("4 other images of")
        assert 0 <= r["top1_accuracy"] <= 1 and 0 <= r["ref_top1_accuracy"] <= 1
    assert rows[0]["calib_images"] == 3 and rows[0]["calib_source"].startswith("3 images of")
    out = CliRunner().invoke(main, ["bench", "testing", "--dtype", "int8", "--data", str(tmp_path / "data"),
                                    "--calib", "10", "--no-store"])  # fmt: skip
    assert out.exit_code == 1 and out.stderr.strip().splitlines() == [
        f"error: --data {tmp_path / 'data'} has 10 images; --calib 10 needs at least 11 (the rest measure fidelity)"
    ]
