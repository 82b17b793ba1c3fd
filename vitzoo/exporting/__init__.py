"""``vitzoo.export``: a zoo model out to the formats deployment tools load, each checked before it is kept.

* ``onnx``: one ``.onnx`` file from ``torch.onnx.export`` (the dynamo exporter), input ``pixel_values``
  (batch, 3, S, S) with a dynamic batch axis, output ``logits``. It passes ``onnx.checker`` and ONNX Runtime
  reproduces the PyTorch logits (at a batch size other than the traced one) before it replaces OUT.
* ``transformers``: a directory that ``ViTForImageClassification`` / ``BitForImageClassification`` (``ViTModel`` /
  ``BitModel`` for a model without head) load with ``from_pretrained``: config with the original numerics (tanh
  GELU, LayerNorm eps 1e-6), ``model.safetensors`` and the checkpoint's ``preprocessor_config.json``; transformers
  loads it and reproduces vitzoo's logits before it replaces OUT.
* ``timm``: one safetensors file with timm's key names, the timm model name, the keyword arguments that rebuild
  the architecture with the original numerics and the ``pretrained_cfg`` in its metadata (``timm_info``). Without
  timm installed it is checked by reading it back through vitzoo's timm reader.

Weight-standardised convolutions (hybrid and BiT ResNets) are written pre-standardised: the function is the same,
and the other libraries' own epsilon (1e-8 inside the square root, where the originals use 1e-10 or std + 1e-5)
then changes the result by less than 1e-7 instead of about 1e-4.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from vitzoo.exporting._common import (
    Exported,
    ExportError,
    check_destination,
    relative_difference,
    require,
    standardized_state_dict,
)
from vitzoo.exporting.to_onnx import _export_onnx, check_opset, deployable, onnx_program, ort_session
from vitzoo.exporting.to_timm import _export_timm, timm_model, timm_overlay, timm_pretrained_cfg
from vitzoo.exporting.to_transformers import _export_transformers, preprocessor_config, transformers_config
from vitzoo.zoo.formats import EXPORT_FORMATS, ExportFormat
from vitzoo.zoo.preprocess import resolve_preprocess

__all__ = [
    "TOLERANCE",
    "ExportError",
    "Exported",
    "deployable",
    "export",
    "onnx_program",
    "ort_session",
    "preprocessor_config",
    "relative_difference",
    "standardized_state_dict",
    "timm_model",
    "timm_overlay",
    "timm_pretrained_cfg",
    "transformers_config",
]

TOLERANCE = 1e-4  # max |exported - vitzoo| / max |vitzoo| over the logits, fp32


def export(
    name_or_path: str | os.PathLike,
    out: str | os.PathLike,
    format: ExportFormat,
    *,
    img_size: int | None = None,
    pre_logits: bool = True,
    opset: int | None = None,
    force: bool = False,
    tolerance: float = TOLERANCE,
) -> Exported:
    """Export a registry model (``arch`` / ``arch.tag``) or a weight file to ``format`` at ``out``.

    Args:
        name_or_path: what ``vitzoo.load`` accepts.
        out: the ``.onnx`` file, the transformers directory or the timm ``.safetensors`` file to write.
        format: "onnx", "transformers" or "timm".
        img_size: resolution to export at (position embeddings resized as vit_jax does); default: the checkpoint's.
        pre_logits: False drops the representation layer of the 2020 ImageNet-21k checkpoints.
        opset: ONNX opset (default: the exporter's).
        force: overwrite ``out`` if it exists.
        tolerance: largest relative logit difference accepted by the check (fp32).

    Nothing is left at ``out`` unless the check passed; an existing ``out`` is replaced only then.
    """
    if format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}")
    if opset is not None and format != "onnx":
        raise ExportError(f"an opset applies to ONNX exports only, not to {format}")
    out = Path(out).expanduser()
    check_destination(out, format, force)
    require(format)
    if format == "onnx":
        check_opset(opset)
    from vitzoo.weights.loading import load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a zeroed 21k head is exported as it is; the loader's advice is for users
        model = load(name_or_path, img_size=img_size, pre_logits=pre_logits, dtype="fp32")
    preprocess = resolve_preprocess(model)
    if format == "onnx":
        return _export_onnx(model, out, opset, tolerance)
    if format == "transformers":
        return _export_transformers(model, out, preprocess, tolerance)
    return _export_timm(model, out, preprocess, tolerance)
