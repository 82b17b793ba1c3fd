"""ONNX: the dynamo exporter, the graph checked by ``onnx.checker`` and in ONNX Runtime; the file's
``metadata_props`` carry the checkpoint's preprocessing and class names (``preprocess_metadata``)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vitzoo.errors import first_line
from vitzoo.exporting._common import (
    Exported,
    ExportError,
    display_name,
    move_export,
    move_into_place,
    preprocess_metadata,
    quiet,
    staging,
    writing,
)
from vitzoo.exporting.check import check_logits, relative_difference
from vitzoo.models.layers import StdConv2d, pad_same
from vitzoo.zoo.preprocess import Preprocess

ONNX_FILE_LIMIT = 1_800_000_000  # bytes of weights above which they go to an external file (protobuf's 2 GiB cap)


class _FrozenStdConv(nn.Module):
    """A StdConv2d with its standardised kernel baked in: the graph holds one Conv (and a Pad), not the statistics."""

    def __init__(self, conv: StdConv2d) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.standardized_weight().detach().clone(), requires_grad=False)
        self.stride, self.padding, self.tf_same = conv.stride, conv.padding, conv.tf_same
        self.kernel = conv.kernel_size[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_same:
            x = pad_same(x, self.kernel, self.stride[0])
        return F.conv2d(x, self.weight, None, self.stride, self.padding)


def deployable(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for tracing: eval mode, the reference modules (a module whose class names a
    ``reference_class``, as ``vitzoo.measure.fused``'s do, is turned back into it), StdConvs frozen to plain
    convolutions."""
    model = copy.deepcopy(model).eval()
    for m in model.modules():
        if (reference := getattr(type(m), "reference_class", None)) is not None:
            m.__class__ = reference
    for name, m in list(model.named_modules()):
        if isinstance(m, StdConv2d):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, _FrozenStdConv(m))
    return model.requires_grad_(False)


def onnx_program(model: nn.Module, opset: int | None = None, dynamic_size: bool = False):
    """``torch.onnx.export`` (dynamo) of a vitzoo model: ``pixel_values`` (batch, 3, S, S) -> ``logits``.

    ``dynamic_size``: height and width are dynamic too, any multiples of ``config.stride`` (the patch size, a
    hybrid's total stride, BiT's 2^(stages+1)); a ViT's graph then resamples its position embedding to the input's
    grid as vitzoo does (``dynamic_img_size``).
    """
    net = deployable(model)
    size = model.config.img_size
    x = torch.randn(2, 3, size, size)
    shapes = {0: torch.export.Dim("batch", min=1)}
    if dynamic_size:
        if hasattr(net, "dynamic_img_size"):
            net.dynamic_img_size = True
        s = model.config.stride
        shapes.update({2: s * torch.export.Dim("grid_height", min=1), 3: s * torch.export.Dim("grid_width", min=1)})
    try:
        with quiet(), torch.no_grad():
            return torch.onnx.export(
                net, (x,), None, dynamo=True, input_names=["pixel_values"], output_names=["logits"],
                dynamic_shapes={"x": shapes}, opset_version=opset, verbose=False, external_data=False,
            )  # fmt: skip
    except Exception as e:
        raise ExportError(f"{display_name(model)}: torch.onnx.export failed: {first_line(e)}") from None


def check_opset(opset: int | None) -> None:
    """Refuse, before any work, an opset no ONNX release defines (below 1 or above this onnx package's newest)."""
    if opset is None:
        return
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or isinstance(opset, bool) or not 1 <= opset <= newest:
        raise ExportError(f"opset {opset!r} does not exist: onnx {onnx.__version__} defines opsets 1 to {newest}")


def _opset_of(model_proto) -> int | None:
    return next((o.version for o in model_proto.opset_import if o.domain in ("", "ai.onnx")), None)


def ort_session(path: str | os.PathLike, threads: int | None = None):
    """An ONNX Runtime CPU session with all graph optimisations, ``threads`` intra-op threads (None: ORT's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export_onnx(
    model: nn.Module, out: Path, opset: int | None, tolerance: float, pp: Preprocess, dynamic_size: bool
) -> Exported:
    import onnx
    import onnxruntime as ort

    program = onnx_program(model, opset, dynamic_size)
    program.model.metadata_props.update(preprocess_metadata(model, pp))  # the file says how to prepare its input
    written = _opset_of(program.model_proto)
    if opset is not None and written != opset:  # the exporter keeps its own opset when it cannot convert the graph
        raise ExportError(f"torch's ONNX exporter could not convert this model to opset {opset} (it stayed at "
                          f"{written}); leave the opset out for {written}, or choose another")  # fmt: skip
    asked = f" at opset {opset} (the exporter's own is {written})" if opset is not None else ""
    external = sum(p.numel() * p.element_size() for p in model.parameters()) > ONNX_FILE_LIMIT
    with staging(out) as tmp:
        staged = tmp / out.name
        with writing(out), quiet():
            program.save(str(staged), external_data=external)
        try:
            onnx.checker.check_model(str(staged), full_check=True)
        except Exception as e:
            raise ExportError(f"{out}: the exported graph is not valid ONNX{asked}: {first_line(e)}") from None
        session = ort_session(staged)

        def run(x: torch.Tensor) -> torch.Tensor:
            try:
                return torch.from_numpy(session.run(None, {"pixel_values": x.numpy()})[0])
            except Exception as e:
                why = first_line(e)
                raise ExportError(f"{out}: ONNX Runtime cannot run the exported graph{asked}: {why}") from None

        rel = check_logits(model, run, tolerance, "ONNX Runtime")
        if dynamic_size:  # and at a second, non-square size (the model was loaded with dynamic_img_size)
            s, size = model.config.stride, model.config.img_size
            rel = max(rel, check_logits(model, run, tolerance, "ONNX Runtime", (size + s, size + 3 * s)))
        opset_used = _opset_of(onnx.load(str(staged), load_external_data=False))
        files = sorted(p.name for p in tmp.iterdir())
        move_export(staged, out, tuple(files))  # external data first, the graph last
    axes = f"dynamic batch, height and width (multiples of {model.config.stride})" if dynamic_size else "dynamic batch"
    return Exported(out, "onnx", display_name(model), model.config.img_size, model.config.num_classes,
                    f"ONNX opset {opset_used}, {axes}", f"onnxruntime {ort.__version__}", rel, tuple(files),
                    {"opset": opset_used, "input": "pixel_values", "output": "logits",
                     "external_data": external, "metadata_props": sorted(program.model.metadata_props),
                     "dynamic_size": dynamic_size,
                     "size_multiple": model.config.stride if dynamic_size else None})  # fmt: skip


def _export_onnx_int8(
    model: nn.Module, out: Path, opset: int | None, pp: Preprocess, method: str, calibration
) -> Exported:
    """The fp32 export, quantized to int8 by ONNX Runtime (``vitzoo.exporting.quantize``) and checked to run."""
    import onnx
    import onnxruntime as ort

    from vitzoo.exporting.quantize import quantize_onnx

    program = onnx_program(model, opset)
    program.model.metadata_props.update(preprocess_metadata(model, pp))  # int8 keeps the preprocessing too
    if sum(p.numel() for p in model.parameters()) > ONNX_FILE_LIMIT:  # int8 is 4x smaller, but fp32 comes first
        raise ExportError(f"{display_name(model)}: too large for a single-file int8 export")
    with staging(out) as tmp:
        fp32 = tmp / "fp32.onnx"
        with quiet():
            program.save(str(fp32), external_data=False)
        staged = tmp / out.name
        info = quantize_onnx(fp32, staged, method, calibration)
        try:
            onnx.checker.check_model(str(staged), full_check=True)
        except Exception as e:
            raise ExportError(f"{out}: the quantized graph is not valid ONNX: {first_line(e)}") from None
        session = ort_session(staged)
        size = model.config.img_size
        x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            ref = model(x)
        try:
            got = torch.from_numpy(session.run(None, {"pixel_values": x.numpy()})[0])
        except Exception as e:
            raise ExportError(f"{out}: ONNX Runtime cannot run the quantized graph: {first_line(e)}") from None
        if not torch.isfinite(got).all():
            raise ExportError(f"{out}: the quantized graph gives non-finite logits")
        rel = relative_difference(got, ref)
        opset_used = _opset_of(onnx.load(str(staged), load_external_data=False))
        move_into_place(staged, out)
    return Exported(out, "onnx", display_name(model), model.config.img_size, model.config.num_classes,
                    f"ONNX opset {opset_used}, int8 {info['method']}, dynamic batch", f"onnxruntime {ort.__version__}",
                    rel, (out.name,), {"opset": opset_used, "input": "pixel_values", "output": "logits",
                                       "external_data": False, "dtype": "int8", "quantization": info})  # fmt: skip
