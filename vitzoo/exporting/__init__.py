"""``vitzoo.export``: a zoo model out to the formats deployment tools load, each checked before it is kept.

* ``onnx``: one ``.onnx`` file from ``torch.onnx.export`` (the dynamo exporter), input ``pixel_values``
  (batch, 3, S, S) with a dynamic batch axis, output ``logits``, and the checkpoint's preprocessing and class
  names in its ``metadata_props`` (``preprocess_metadata``). It passes ``onnx.checker`` and ONNX Runtime
  reproduces the PyTorch logits (at a batch size other than the traced one) before it replaces OUT. With
  ``dtype="int8"`` the graph is then quantized by ONNX Runtime (``vitzoo.exporting.quantize``: static QDQ calibrated
  on the images given, or dynamic), its calibration recorded in the file's metadata; the check is that ONNX Runtime
  runs it to finite logits (how close they are is measured by ``vitzoo bench --dtype int8``, on real images).
* ``transformers``: a directory that ``ViTForImageClassification`` / ``BitForImageClassification`` (``ViTModel`` /
  ``BitModel`` for a model without head) load with ``from_pretrained``: config with the original numerics (tanh
  GELU, LayerNorm eps 1e-6, ``id2label``/``label2id`` from the checkpoint's class names), ``model.safetensors``
  and the checkpoint's ``preprocessor_config.json``; transformers loads it and reproduces vitzoo's logits before it
  replaces OUT.
* ``timm``: one safetensors file with timm's key names, the timm model name, the keyword arguments that rebuild
  the architecture with the original numerics and the ``pretrained_cfg`` (preprocessing, ``label_names``) in its
  metadata (``timm_info``, which also names the ``label_space``). Without
  timm installed it is checked by reading it back through vitzoo's timm reader.

A model whose head is all zeros (every logit its bias, which no comparison of logits can fault) is checked on a
seeded probe head, then written with its zeros and proven equal to the checked export but for the head
(``vitzoo.exporting.check``).

Weight-standardised convolutions (hybrid and BiT ResNets) are written pre-standardised: the function is the same,
and the other libraries' own epsilon (1e-8 inside the square root, where the originals use 1e-10 or std + 1e-5)
then changes the result by less than 1e-7 instead of about 1e-4.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitzoo.exporting._common import (
    Exported,
    ExportError,
    check_destination,
    display_name,
    preprocess_metadata,
    require,
    standardized_state_dict,
)
from vitzoo.exporting.check import CHECK_BATCH, export_with_probe_head, has_zero_head, relative_difference
from vitzoo.exporting.quantize import Calibration, quantization_info, synthetic_images
from vitzoo.exporting.to_onnx import _export_onnx, _export_onnx_int8, check_opset, deployable, onnx_program, ort_session
from vitzoo.exporting.to_timm import _export_timm, timm_model, timm_overlay, timm_pretrained_cfg
from vitzoo.exporting.to_transformers import _export_transformers, preprocessor_config, transformers_config
from vitzoo.zoo.checkpoint import checkpoint_of
from vitzoo.zoo.configs import ModelConfig
from vitzoo.zoo.formats import EXPORT_FORMATS, ExportFormat
from vitzoo.zoo.lookup import check_memory
from vitzoo.zoo.preprocess import resolve_preprocess

__all__ = [
    "TOLERANCE",
    "Calibration",
    "ExportError",
    "Exported",
    "deployable",
    "export",
    "onnx_program",
    "ort_session",
    "preprocess_metadata",
    "preprocessor_config",
    "quantization_info",
    "relative_difference",
    "standardized_state_dict",
    "synthetic_images",
    "timm_model",
    "timm_overlay",
    "timm_pretrained_cfg",
    "transformers_config",
]

TOLERANCE = 1e-4  # max |exported - vitzoo| / max |vitzoo| over the logits, fp32


def export(
    name_or_path: str | os.PathLike | nn.Module,
    out: str | os.PathLike,
    format: ExportFormat,
    *,
    img_size: int | None = None,
    pre_logits: bool = True,
    opset: int | None = None,
    force: bool = False,
    tolerance: float = TOLERANCE,
    dynamic_size: bool = False,
    dtype: str = "fp32",
    int8_method: str = "static",
    calibration: tuple[Any, Calibration] | Callable[[Any], tuple[Any, Calibration]] | None = None,
) -> Exported:
    """Export a registry model (``arch`` / ``arch.tag``), a weight file or a vitzoo model in memory (one just
    fine-tuned, say) to ``format`` at ``out``.

    Args:
        name_or_path: what ``vitzoo.load`` accepts, or a model of ``vitzoo.load``/``vitzoo.create`` (exported as it
            is, in float32 on the CPU, with its ``preprocess``; it is copied, not changed).
        out: the ``.onnx`` file, the transformers directory or the timm ``.safetensors`` file to write.
        format: "onnx", "transformers" or "timm".
        img_size: resolution to export at (position embeddings resized as vit_jax does); default: the checkpoint's.
        pre_logits: False drops the representation layer of the 2020 ImageNet-21k checkpoints.
        opset: ONNX opset (default: the exporter's).
        force: overwrite ``out`` if it exists.
        tolerance: largest relative logit difference accepted by the check (fp32).
        dynamic_size: (ONNX) dynamic height and width too: any multiples of ``config.stride``, the position
            embedding resampled in the graph as ``dynamic_img_size`` does; checked in ONNX Runtime at two sizes.
        dtype: "fp32", or "int8" (ONNX only): the graph quantized by ONNX Runtime with ``int8_method``.
        int8_method: "static" (QDQ, calibrated on ``calibration``) or "dynamic".
        calibration: (images NCHW float32 as the model takes them, their ``Calibration`` record) for static int8,
            or a function of the loaded model that returns them; None: ``synthetic_images(64, img_size)``.

    Nothing is left at ``out`` unless the check passed; an existing ``out`` is replaced only then. With an all-zero
    head (a ``vitzoo.create`` model, a 2020 ImageNet-21k file) every logit is its bias, so comparing logits would
    prove nothing about the rest of the network: the export is then checked with a seeded probe head, written with
    the zeros, and proven to differ from the checked one in the head only (``vitzoo.exporting.check``; a second
    export, for zero heads only). The int8 path is not probed: its check is that ONNX Runtime runs the quantized
    graph to finite logits, which a zero head does not weaken, and the quantizer's head scales differ with the
    head's values, so no two int8 graphs could be proven equal but for the head; with a zero head its
    ``max_rel_diff`` measures the bias alone, and ``checked_with`` says so.
    """
    if format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}")
    if dynamic_size and format != "onnx":
        raise ExportError(f"dynamic_size (--dynamic-size) is for ONNX exports, not {format}")
    if dynamic_size and dtype != "fp32":
        raise ExportError("dynamic_size (--dynamic-size) exports fp32 graphs; int8 is quantized at one fixed size")
    if opset is not None and format != "onnx":
        raise ExportError(f"an opset applies to ONNX exports only, not to {format}")
    out = Path(out).expanduser()
    check_destination(out, format, force)
    if dtype not in ("fp32", "int8"):
        raise ExportError(f"export dtype must be fp32 or int8, not {dtype!r}")
    if dtype == "int8" and format != "onnx":
        raise ExportError(f"int8 export is ONNX only (ONNX Runtime's quantizer), not {format}")
    if int8_method not in ("static", "dynamic"):
        raise ExportError(f"int8 method must be static or dynamic, not {int8_method!r}")
    require(format)
    if format == "onnx":
        check_opset(opset)
    model = _model(name_or_path, img_size, pre_logits, dynamic_size)
    zero_head = has_zero_head(model)
    copies = 2 if zero_head and format == "onnx" and dtype == "fp32" else 1  # the proof loads both graphs at once
    check_memory(model.config, model.name, copies=copies, batch=CHECK_BATCH)  # a traced copy, the check's forward
    preprocess = resolve_preprocess(model)
    if format == "onnx" and dtype == "int8":
        if int8_method == "static" and calibration is None:
            calibration = synthetic_images(64, model.config.img_size)
        elif int8_method == "static" and callable(calibration):
            calibration = calibration(model)
        method_calibration = calibration if int8_method == "static" else None
        result = _export_onnx_int8(model, out, opset, preprocess, int8_method, method_calibration)
        if zero_head:
            return replace(result, checked_with=f"{result.checked_with} (the head is all zeros: the logits compared "
                           "are its bias)")  # fmt: skip
        return result

    def write(model: nn.Module, out: Path) -> Exported:  # one staged, checked export (exporter looked up per call)
        if format == "onnx":
            return _export_onnx(model, out, opset, tolerance, preprocess, dynamic_size)
        if format == "transformers":
            return _export_transformers(model, out, preprocess, tolerance)
        return _export_timm(model, out, preprocess, tolerance)

    return export_with_probe_head(write, model, out) if zero_head else write(model, out)


def _model(src: str | os.PathLike | nn.Module, img_size: int | None, pre_logits: bool, dynamic_size: bool) -> nn.Module:
    """The model to export: loaded from a name or file, or a copy of a vitzoo model given in memory."""
    if isinstance(src, nn.Module):
        if not isinstance(getattr(src, "config", None), ModelConfig):
            raise ExportError(f"{type(src).__name__} is not a vitzoo model (no .config); export a model of "
                              "vitzoo.load or vitzoo.create, a registry name or a weight file")  # fmt: skip
        if img_size is not None and img_size != src.config.img_size:
            raise ExportError(f"a model in memory is exported at its resolution ({src.config.img_size}); resize it "
                              "with vitzoo.load(FILE, img_size=...) from a saved file")  # fmt: skip
        if not pre_logits:
            raise ExportError("pre_logits=False applies to a name or file; a model in memory is exported as it is")
        check_memory(src.config, display_name(src), copies=1)
        model = copy.deepcopy(src).to(device="cpu", dtype=torch.float32).eval()
        model.checkpoint = checkpoint_of(src)  # the same frozen value (deepcopy would copy it)
        if dynamic_size:
            model.dynamic_img_size = True
        return model
    from vitzoo.weights.loading import load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a zeroed 21k head is exported as it is; the loader's advice is for users
        return load(src, img_size=img_size, pre_logits=pre_logits, dtype="fp32", dynamic_img_size=dynamic_size)
