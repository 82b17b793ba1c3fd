"""One cell of the deployment matrix (a runtime and a precision), built and ready to run numpy batches.

Each runtime runs its precisions with its own tools:

* **torch**: fp32 and bf16 on vitzoo's default path (its fused oneDNN kernels and, on AVX-512, its native attention
  where this CPU runs the dtype, else aten); int8 through PyTorch's maintained quantization (torchao): ``pt2e``,
  static post-training quantization of the ``torch.export`` graph with the ``X86InductorQuantizer`` (int8
  activations calibrated on the calibration images, int8 weights per channel), or ``torchao``, ``quantize_`` with
  ``Int8DynamicActivationInt8WeightConfig`` (int8 weights per channel, activations quantized per token at run time).
  Both are compiled by Inductor with freezing on, which lowers them to oneDNN's int8 kernels (VNNI where the CPU has
  it); eager they would run as reference fp32 code. What is not quantized (attention, LayerNorm, GELU, residuals)
  runs under bf16 autocast where the CPU has native bf16 (PyTorch's "int8-mixed-bf16" recipe), else in fp32; its
  attention is the fused kernels' (``attention_kernel``): vitzoo's native kernel, exported as the operator
  ``torch.ops.vitzoo.attention`` (``NativeAttention``) that the compiled graph calls, else two batched GEMMs
  (``MatmulAttention``) where the CPU has AVX512-BF16 and no AMX, else SDPA. What each step gained is in README.md
  (*The deployment matrix*).
* **onnxruntime**: vitzoo's exported fp32 ONNX graph; int8 ``static`` (QDQ, calibrated) or ``dynamic``
  (``vitzoo.exporting.quantize``). bf16 only if ONNX Runtime's CPU provider has bf16 GEMM kernels (probed).
* **openvino**: the same graph; bf16 with ``INFERENCE_PRECISION_HINT`` where the CPU has native bf16; int8 through
  NNCF post-training quantization (``nncf.quantize`` on the OpenVINO model, transformer preset, same calibration
  images), compiled with OpenVINO's defaults for what stays in floating point.

``why_not`` says in one line why a cell cannot run here; nothing is assumed about the CPU that was not read from it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vitzoo.errors import first_line
from vitzoo.exporting._common import quiet
from vitzoo.measure.cpu import fused_kernels, int8_note, native_dtype
from vitzoo.measure.fused import MatmulAttention, NativeAttention, attention_kernel
from vitzoo.models.vit import Attention

INT8_METHODS = {"torch": ("pt2e", "torchao"), "onnxruntime": ("static", "dynamic"), "openvino": ("nncf",)}
DEFAULT_TORCH_INT8 = "pt2e"  # the default until measured: the matrix then makes the faster non-degraded one default
_NEEDS = {
    "torch": {"int8": ("torchao",)},
    "onnxruntime": {"": ("onnx", "onnxscript", "onnxruntime")},
    "openvino": {"": ("onnx", "onnxscript", "openvino"), "int8": ("nncf",)},
}
_HINT = {"torchao": "pip install 'vitzoo[int8]'", "nncf": "pip install nncf", "openvino": "pip install openvino"}


@dataclass(frozen=True)
class Cell:
    """A runtime, a precision and, for int8, the quantization method."""

    backend: str  # torch | onnxruntime | openvino
    dtype: str  # fp32 | bf16 | int8
    method: str | None = None  # int8: pt2e | torchao | static | dynamic | nncf

    @property
    def label(self) -> str:
        return f"{self.dtype} {self.method}" if self.method else self.dtype


def cells(backends: tuple[str, ...], dtypes: tuple[str, ...]) -> list[Cell]:
    """The cross product, int8 expanded into each runtime's methods (torch's default method first)."""
    return [Cell(b, d, m) for b in backends for d in dtypes
            for m in (INT8_METHODS[b] if d == "int8" else (None,))]  # fmt: skip


@dataclass
class Engine:
    """A built cell: ``run`` takes a float32 NCHW batch and returns float32 logits."""

    cell: Cell
    run: Callable[[np.ndarray], np.ndarray]
    note: str | None = None  # what ran (kernels, emulation, precision the runtime chose)
    prepare_s: float = 0.0  # quantization (calibration) time; compilation happens on the first calls


@functools.cache
def _ort_bf16_why() -> str | None:
    """Probe ONNX Runtime's CPU provider with a one-node bf16 MatMul: None where it runs, else why not."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    info = [helper.make_tensor_value_info(n, TensorProto.BFLOAT16, [2, 2]) for n in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "probe", info[:2], info[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as e:
        code = "NOT_IMPLEMENTED" if "NOT_IMPLEMENTED" in str(e) else first_line(e)[:60]
        return f"onnxruntime {ort.__version__}'s CPU provider has no bf16 MatMul kernel ({code})"
    return None


def why_not(cell: Cell, flags: frozenset[str] | None = None) -> str | None:
    """One line saying why ``cell`` cannot run on this machine and runtime; None where it can."""
    needs = (*_NEEDS.get(cell.backend, {}).get("", ()), *_NEEDS.get(cell.backend, {}).get(cell.dtype, ()))
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        hint = _HINT.get(missing[-1], "pip install 'vitzoo[onnx]'")
        return f"{', '.join(missing)} not installed ({hint})"
    if cell.dtype == "bf16" and cell.backend != "torch":
        if not native_dtype("bf16", flags):
            return "this CPU has no native bf16 (AVX512_BF16/AMX): the runtime would compute in fp32"
        if cell.backend == "onnxruntime":
            return _ort_bf16_why()
    return None


def build(cell: Cell, model: nn.Module, onnx_path: Path | None, calib: np.ndarray, threads: int, work: Path) -> Engine:
    """Build ``cell`` for the fp32 ``model`` (its ONNX graph at ``onnx_path``), calibrating int8 on ``calib``."""
    t0 = time.perf_counter()
    if cell.backend == "torch" and cell.dtype == "int8":
        with quiet(*_NOISY):  # torchao's import and the quantizers
            engine = _torch_int8(cell, model, calib)
    elif cell.backend == "torch":
        engine = _torch(cell, model)
    elif cell.backend == "onnxruntime":
        engine = _ort(cell, onnx_path, calib, threads, work)
    else:
        engine = _openvino(cell, onnx_path, calib, threads)
    engine.prepare_s = time.perf_counter() - t0
    if cell.dtype == "int8" and int8_note():
        engine.note = "; ".join(filter(None, (engine.note, int8_note())))
    return engine


def _torch(cell: Cell, model: nn.Module) -> Engine:
    from vitzoo.dtypes import to_torch
    from vitzoo.measure.fused import attention_kernel_of, set_fused_kernels

    dtype = to_torch(cell.dtype)
    fused, why = fused_kernels(True, device="cpu", dtype=cell.dtype)
    net = set_fused_kernels(copy.deepcopy(model).to(dtype).eval(), fused)
    attention = _ATTENTION_WORDS.get(attention_kernel_of(net, dtype, fused))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(x).to(dtype)).float().numpy()

    return Engine(cell, run, ", ".join(filter(None, ("fused oneDNN kernels" if fused else f"aten ({why})", attention))))


_ATTENTION_WORDS = {"native": "vitzoo's native attention", "gemms": "attention as oneDNN GEMMs"}  # sdpa: unsaid
_GRAPH_ATTENTION = {"native": NativeAttention, "gemms": MatmulAttention}  # what an exported graph calls for each


# torchao logs every optional CUDA library it cannot load, torch's pytree a deprecation, Inductor's int8 lowering
# a UserWarning per layer: none of it is the user's business in a benchmark table
_NOISY = ("torchao", "torch.utils._pytree", "torch._inductor")


def _torch_int8(cell: Cell, model: nn.Module, calib: np.ndarray) -> Engine:
    from torch._inductor import config as inductor_config

    from vitzoo.exporting import deployable

    net = deployable(model)  # the reference model: PyTorch's quantizers find its linears by class (nn.Linear)
    mixed = bool(native_dtype("bf16"))  # int8-mixed-bf16: what is not quantized runs in bf16 where it is native
    kinds = []  # the fused kernels' attention, as graph ops (vitzoo.measure.fused)
    for m in (m for m in net.modules() if type(m) is Attention):
        kinds.append(attention_kernel(torch.bfloat16 if mixed else torch.float32, m.qkv.in_features // m.num_heads))
        m.__class__ = _GRAPH_ATTENTION.get(kinds[-1], Attention)
    attention = _ATTENTION_WORDS.get(kinds[0]) if kinds else None
    if cell.method == "pt2e":
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

        example = torch.from_numpy(calib[:2])
        batch = torch.export.Dim("batch", min=1)
        graph = torch.export.export(net, (example,), dynamic_shapes={"x": {0: batch}}).module()
        quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for i in range(0, len(calib), 8):
                prepared(torch.from_numpy(calib[i : i + 8]))
        net = convert_pt2e(prepared)
        note = "PT2E X86InductorQuantizer (static, calibrated), Inductor + freezing"
    else:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantize_(net, Int8DynamicActivationInt8WeightConfig())
        note = "torchao Int8DynamicActivationInt8Weight, Inductor + freezing"
    compiled = torch.compile(net, dynamic=False)
    note += "; the rest in " + ", ".join(filter(None, ("bf16 (autocast)" if mixed else "fp32", attention)))

    compiled_for: set[tuple[int, ...]] = set()  # input shapes compiled so far (dynamic=False: one graph each)

    def run(x: np.ndarray) -> np.ndarray:
        autocast = torch.autocast("cpu", torch.bfloat16, mixed)
        # quiet only while a new shape compiles: not a cost of every timed pass
        noise = contextlib.nullcontext() if x.shape in compiled_for else quiet(*_NOISY)
        with torch.no_grad(), inductor_config.patch(freezing=True), autocast, noise:
            logits = compiled(torch.from_numpy(x)).float().numpy()
        compiled_for.add(x.shape)
        return logits

    return Engine(cell, run, note)


def _ort(cell: Cell, onnx_path: Path | None, calib: np.ndarray, threads: int, work: Path) -> Engine:
    from vitzoo.exporting import Calibration, ort_session
    from vitzoo.exporting.quantize import quantize_onnx

    assert onnx_path is not None
    path, note = onnx_path, "CPUExecutionProvider, all graph optimisations"
    if cell.dtype == "int8":
        path = work / f"int8-{cell.method}.onnx"
        record = Calibration("the run's calibration images", len(calib))
        info = quantize_onnx(onnx_path, path, cell.method or "static", (calib, record))
        note = f"{info['method']}; {note}"
    session = ort_session(path, threads)

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {"pixel_values": x})[0]

    return Engine(cell, run, note)


def _openvino(cell: Cell, onnx_path: Path | None, calib: np.ndarray, threads: int) -> Engine:
    import openvino as ov

    assert onnx_path is not None
    core = ov.Core()
    ov_model = core.read_model(str(onnx_path))
    config: dict = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    if cell.dtype == "int8":
        import nncf

        nncf.set_log_level(logging.ERROR)
        data = nncf.Dataset([calib[i : i + 1] for i in range(len(calib))])
        sink = io.StringIO()  # NNCF draws progress bars on stdout: keep them out of the table and the JSON
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            ov_model = nncf.quantize(ov_model, data, subset_size=len(calib), model_type=nncf.ModelType.TRANSFORMER)
    else:
        config["INFERENCE_PRECISION_HINT"] = "bf16" if cell.dtype == "bf16" else "f32"
    compiled = core.compile_model(ov_model, "CPU", config)
    request = compiled.create_infer_request()
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
    note = f"inference precision {precision}" + (" (NNCF int8; OpenVINO's default for the rest)"
                                                  if cell.dtype == "int8" else "")  # fmt: skip

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(request.infer({0: x})[0])

    return Engine(cell, run, note)
