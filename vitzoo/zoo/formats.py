"""The weight formats: those vitzoo reads (and the registry's sources are in), and those it exports to.

The one list of each; the Literal types and the tuples are the same list.
"""

from __future__ import annotations

from typing import Literal, get_args

CheckpointFormat = Literal["vitzoo", "vit_jax", "bit_jax", "transformers", "timm"]
ExportFormat = Literal["onnx", "transformers", "timm"]

READ_FORMATS: tuple[CheckpointFormat, ...] = get_args(CheckpointFormat)
EXPORT_FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)

Backend = Literal["torch", "onnxruntime", "openvino"]  # what runs a model: PyTorch, or its exported ONNX graph in one
BACKENDS: tuple[Backend, ...] = get_args(Backend)  # the one list every option and check takes its choices from
