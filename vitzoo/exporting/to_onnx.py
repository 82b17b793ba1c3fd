"""ONNX: the dynamo exporter, the graph checked by ``onnx.checker`` and in ONNX Runtime."""

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
    check_logits,
    display_name,
    move_into_place,
    quiet,
    staging,
    writing,
)
from vitzoo.models.layers import StdConv2d, pad_same

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
    """A copy of ``model`` for tracing: eval mode, aten kernels, StdConvs frozen to plain convolutions."""
    from vitzoo.models.layers import set_fused_kernels

    model = set_fused_kernels(copy.deepcopy(model).eval(), False)
    for name, m in list(model.named_modules()):
        if isinstance(m, StdConv2d):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, _FrozenStdConv(m))
    return model.requires_grad_(False)


def onnx_program(model: nn.Module, opset: int | None = None):
    """``torch.onnx.export`` (dynamo) of a vitzoo model: ``pixel_values`` (batch, 3, S, S) -> ``logits``."""
    net = deployable(model)
    size = model.config.img_size
    x = torch.randn(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1)
    try:
        with quiet(), torch.no_grad():
            return torch.onnx.export(
                net, (x,), None, dynamo=True, input_names=["pixel_values"], output_names=["logits"],
                dynamic_shapes={"x": {0: batch}}, opset_version=opset, verbose=False, external_data=False,
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


def _export_onnx(model: nn.Module, out: Path, opset: int | None, tolerance: float) -> Exported:
    import onnx
    import onnxruntime as ort

    program = onnx_program(model, opset)
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
        opset_used = _opset_of(onnx.load(str(staged), load_external_data=False))
        files = sorted(p.name for p in tmp.iterdir())
        for name in sorted(files, key=lambda n: n == out.name):  # external data first, the graph last
            move_into_place(tmp / name, out.parent / name)
    return Exported(out, "onnx", display_name(model), model.config.img_size, model.config.num_classes,
                    f"ONNX opset {opset_used}, dynamic batch", f"onnxruntime {ort.__version__}", rel, tuple(files),
                    {"opset": opset_used, "input": "pixel_values", "output": "logits",
                     "external_data": external})  # fmt: skip
