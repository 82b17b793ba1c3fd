"""vitzoo.exporting.quantize and `vitzoo export --dtype int8`: ONNX Runtime's int8 graphs, kept with their
calibration recorded; and the int8 GEMM roofline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import vitzoo
from vitzoo.cli import main
from vitzoo.exporting import ExportError, ort_session, quantization_info, synthetic_images
from vitzoo.exporting.quantize import quantize_onnx
from vitzoo.weights.checkpoint import save_vitzoo

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The `testing` architecture at 32 px with non-trivial seeded weights (a non-zero head)."""
    torch.manual_seed(0)
    model = vitzoo.create("testing", img_size=32)
    with torch.no_grad():
        model.head.weight.normal_(0, 0.5)
    return save_vitzoo(tmp_path_factory.mktemp("w") / "testing32.safetensors", model.state_dict(), model.config)


def _folder(root, n: int = 6):
    for i in range(n):
        (root / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 40), (40 * i, 255 - 30 * i, 90)).save(root / f"class{i % 2}" / f"{i}.png")
    return root


def _logits(path, x: np.ndarray) -> np.ndarray:
    return ort_session(path, 1).run(None, {"pixel_values": x})[0]


def test_export_int8_keeps_the_calibration_and_stays_close(weights, tmp_path):
    data = _folder(tmp_path / "calib")
    out = tmp_path / "m-int8.onnx"
    result = CliRunner().invoke(main, ["export", str(weights), str(out), "--format", "onnx", "--dtype", "int8",
                                       "--data", str(data), "--calib", "4", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = quantization_info(out)
    assert meta["method"] == "static QDQ (quantize_static)" and meta["ops"] == ["Conv", "MatMul", "Gemm"]
    assert meta["calibration"]["images"] == 4 and meta["calibration"]["method"] == "MinMax"
    assert "2 class folders" in meta["calibration"]["source"]
    assert json.loads(result.stdout)["info"]["quantization"] == meta
    assert "calibrated (MinMax) on 4 images" in result.stderr
    import onnx

    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    from vitzoo.evaluate.data import image_folder
    from vitzoo.zoo.preprocess import resolve_preprocess

    model = vitzoo.load(weights)
    folder = image_folder(data).with_preprocess(resolve_preprocess(model))
    x = np.stack([folder[i].image.numpy() for i in range(len(folder))])  # images like the calibration set
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    got = _logits(out, x)
    assert np.isfinite(got).all() and np.abs(got - ref).max() < 0.25 * np.abs(ref).max()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib", "m-int8.onnx"]  # nothing staged is left


def test_dynamic_has_no_calibration_and_synthetic_is_the_default(weights, tmp_path):
    from vitzoo.exporting import export

    dynamic = export(weights, tmp_path / "d.onnx", "onnx", dtype="int8", int8_method="dynamic")
    assert "calibration" not in quantization_info(dynamic.path) and dynamic.info["dtype"] == "int8"
    static = export(weights, tmp_path / "s.onnx", "onnx", dtype="int8")
    assert quantization_info(static.path)["calibration"] == {
        "source": "synthetic (seed 0, N(0, 1) normalised pixels)", "images": 64, "method": "MinMax"
    }  # fmt: skip
    images, record = synthetic_images(3, 8)
    assert images.shape == (3, 3, 8, 8) and record.images == 3
    np.testing.assert_array_equal(images, synthetic_images(3, 8)[0])  # fixed: the same set every run
    assert quantization_info(tmp_path / "d.onnx") != quantization_info(tmp_path / "s.onnx")


def test_quantize_onnx_refuses_what_it_cannot_do(weights, tmp_path):
    from vitzoo.exporting import export

    fp32 = export(weights, tmp_path / "f.onnx", "onnx").path
    assert quantization_info(fp32) is None
    with pytest.raises(ExportError, match="unknown ONNX int8 method"):
        quantize_onnx(fp32, tmp_path / "q.onnx", "awq")
    with pytest.raises(ExportError, match="needs calibration images"):
        quantize_onnx(fp32, tmp_path / "q.onnx", "static")
    with pytest.raises(ExportError, match="int8 export is ONNX only"):
        export(weights, tmp_path / "t.safetensors", "timm", dtype="int8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "timm", "--dtype", "int8"], "exports ONNX only"),
        (["--format", "onnx", "--dtype", "int8", "--calib", "0"], "--calib must be at least 1"),
        (["--format", "onnx", "--dtype", "int8", "--data", "nowhere"], "no such directory"),
    ],
)
def test_bad_int8_export_is_one_line_and_writes_nothing(weights, tmp_path, args, message):
    out = tmp_path / ("m.safetensors" if "timm" in args else "m.onnx")
    result = CliRunner().invoke(main, ["export", str(weights), str(out), *args])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_int8_roofline_counts_int_mm():
    from vitzoo.measure.roofline import measure_gemm_peak

    peak = measure_gemm_peak("cpu", torch.int8, shapes=[(32, 64, 48)], seconds=0.01)
    assert peak.dtype == "int8" and peak.tflops > 0 and [r[0] for r in peak.results] == ["int_mm"]
