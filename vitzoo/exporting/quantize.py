"""int8 ONNX graphs with ONNX Runtime's own quantizer, and the calibration they were made with, kept in the file.

* static (``quantize_static``, QDQ format): weights int8 per output channel (symmetric), activations uint8 per tensor
  (the u8s8 pair x86 VNNI kernels take), their ranges calibrated (MinMax) on a ``Calibration`` set fed through a
  ``CalibrationDataReader``. Only the GEMM-bearing operators (Conv, MatMul, Gemm) are quantized; LayerNorm, Softmax,
  GELU and the residual adds stay fp32, as in ONNX Runtime's transformer examples.
* dynamic (``quantize_dynamic``): int8 weights per output channel, activation ranges computed per batch at run time
  (no calibration).

The fp32 graph first goes through ONNX Runtime's ``quant_pre_process`` (shape inference and graph clean-up), as its
documentation advises. What was done is written into the quantized file's metadata (``vitzoo_quantization``: the
method, the operators, and for static the calibration set, its size and its method), so a kept model says how it was
made (``quantization_info`` reads it back).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitzoo.errors import first_line
from vitzoo.exporting._common import ExportError

QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
METADATA_KEY = "vitzoo_quantization"
SYNTHETIC_SEED = 0


@dataclass(frozen=True)
class Calibration:
    """The images static quantization calibrates on: where they came from, how many, and the range method."""

    source: str  # "synthetic (seed 0, N(0, 1) pixels after normalisation)" or the dataset's description
    images: int
    method: str = "MinMax"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def synthetic_images(n: int, img_size: int, seed: int = SYNTHETIC_SEED) -> tuple[np.ndarray, Calibration]:
    """A fixed synthetic calibration set: ``n`` images of seeded N(0, 1) pixels (already normalised)."""
    if n < 1:
        raise ExportError(f"calibration needs at least one image, not {n}")
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n, 3, img_size, img_size), dtype=np.float32)
    return images, Calibration(f"synthetic (seed {seed}, N(0, 1) normalised pixels)", n)


def _reader(images: np.ndarray, input_name: str):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        """One image per call, as ONNX Runtime's calibrator asks for them."""

        def __init__(self) -> None:
            self.items = iter(images[i : i + 1] for i in range(len(images)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self.items, None)
            return None if item is None else {input_name: np.ascontiguousarray(item, dtype=np.float32)}

    return Reader()


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """ONNX Runtime's quantizer logs through the root logger (e.g. one line per 1-D weight): keep it out of stdout."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _preprocessed(src: Path, tmp: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = tmp / f"{src.stem}.pre.onnx"
    try:
        quant_pre_process(str(src), str(out), skip_symbolic_shape=False)
    except Exception:  # a graph the symbolic shape inference cannot follow: quantize it as it is
        return src
    return out


def quantize_onnx(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    method: str,
    calibration: tuple[np.ndarray, Calibration] | None = None,
    input_name: str = "pixel_values",
) -> dict[str, Any]:
    """Write the int8 graph of the fp32 ONNX file ``src`` to ``dst``; returns the metadata written into it.

    ``method``: "static" (needs ``calibration``: the images, NCHW float32 as the model takes them, and their record)
    or "dynamic".
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    src, dst = Path(src), Path(dst)
    info: dict[str, Any] = {"tool": "onnxruntime.quantization", "ops": list(QUANTIZED_OPS)}
    with _quiet_quantizer():
        pre = _preprocessed(src, dst.parent)
        try:
            if method == "static":
                if calibration is None:
                    raise ExportError("static int8 quantization needs calibration images")
                images, record = calibration
                quantize_static(
                    str(pre), str(dst), _reader(images, input_name), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                )  # fmt: skip
                info.update(method="static QDQ (quantize_static)", weights="int8 symmetric, per output channel",
                            activations="uint8 per tensor, calibrated", calibration=record.as_dict())  # fmt: skip
            elif method == "dynamic":
                quantize_dynamic(str(pre), str(dst), op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
                                 weight_type=QuantType.QInt8)  # fmt: skip
                info.update(method="dynamic (quantize_dynamic)", weights="int8 symmetric, per output channel",
                            activations="uint8 per tensor, ranges computed per batch at run time")  # fmt: skip
            else:
                raise ExportError(f"unknown ONNX int8 method {method!r}; use static or dynamic")
        except ExportError:
            raise
        except Exception as e:
            raise ExportError(f"{src.name}: ONNX Runtime int8 quantization failed: {first_line(e)}") from None
        finally:
            if pre != src:
                pre.unlink(missing_ok=True)
    model = onnx.load(str(dst))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                        METADATA_KEY: json.dumps(info)})  # fmt: skip
    onnx.save(model, str(dst))
    return info


def quantization_info(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``vitzoo_quantization`` metadata of an ONNX file (None for a graph vitzoo did not quantize)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    value = next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
    return None if value is None else json.loads(value)
