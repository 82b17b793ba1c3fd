"""Inference backends for ``vitzoo bench``: the same harness times the model where it is deployed.

``torch`` is vitzoo's own path (``vitzoo.measure.bench``). ``onnxruntime`` (and ``openvino``, where its wheel is
installed) run the graph ``vitzoo export --format onnx`` writes (``vitzoo.exporting.onnx_program``: dynamo exporter,
dynamic batch, StdConv kernels baked in), checked against the PyTorch logits before anything is timed. Their runners
have the interface of ``vitzoo.measure.runner.Runner`` (``inputs``, ``forward``, ``sync``, ``probe``, ``measure``,
``memory``, ``first_call_s``), so warm-up, rounds, latency percentiles, memory and % of GEMM peak are measured
exactly as for torch. Intra-op threads follow ``--threads`` (default: torch's current setting), one inter-op thread.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vitzoo.errors import ConfigError
from vitzoo.measure.options import BenchOptions
from vitzoo.measure.runner import Runner
from vitzoo.zoo.formats import BACKENDS

_PACKAGES = {"onnxruntime": ("onnxruntime", "onnx", "onnxscript"), "openvino": ("openvino", "onnx", "onnxscript")}
CHECK_RTOL = 1e-4  # max |backend - torch| / max |torch| logits on one batch before timing


def backend_version(backend: str) -> str:
    """``"torch 2.13.0"``, ``"onnxruntime 1.32.0"``: what the bench header and the results name."""
    package = backend
    try:
        return f"{backend} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{backend} {torch.__version__}" if backend == "torch" else backend


def check_backend(options: BenchOptions) -> None:
    """ConfigError for an unknown or uninstalled backend, or a setting it cannot run (before anything is built)."""
    backend = options.backend
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return
    missing = [p for p in _PACKAGES[backend] if importlib.util.find_spec(p) is None]
    if missing:
        hint = "pip install 'vitzoo[onnx]'" if backend == "onnxruntime" else "pip install 'vitzoo[openvino]'"
        raise ConfigError(f"--backend {backend} needs {', '.join(missing)}: {hint}")
    unsupported = [
        text
        for bad, text in (
            (options.device != "cpu", f"--device {options.device}"),
            (options.dtype != "fp32", f"--dtype {options.dtype}"),
            (options.compile, "--compile"),
            (options.channels_last, "--channels-last"),
        )
        if bad
    ]
    if unsupported:
        raise ConfigError(f"--backend {backend} runs the fp32 ONNX graph on the CPU; drop {', '.join(unsupported)}")


def make_runner(model: nn.Module, options: BenchOptions, img_size: int, device: torch.device, threads: int) -> Runner:
    """The runner of ``options.backend`` for a prepared vitzoo model."""
    check_backend(options)
    if options.backend == "onnxruntime":
        return OrtRunner(model, options, img_size, device, threads)
    if options.backend == "openvino":
        return OpenVinoRunner(model, options, img_size, device, threads)
    return Runner(model, options, img_size, device, threads)


class _OnnxRunner(Runner):
    """Exports the model to ONNX once, builds the backend's session, checks its logits, then runs numpy batches."""

    def __init__(
        self, model: nn.Module, options: BenchOptions, img_size: int, device: torch.device, threads: int
    ) -> None:
        from vitzoo.exporting import onnx_program

        model = model.eval()
        super().__init__(model, options, img_size, device, threads)  # the torch reference (fp32, cpu) for the check
        program = onnx_program(model, None)
        with tempfile.TemporaryDirectory(prefix="vitzoo-bench-") as tmp:
            path = Path(tmp) / "model.onnx"
            program.save(str(path), external_data=sum(p.numel() for p in model.parameters()) > 400_000_000)
            self._build(path)
        del program
        self._check()

    def _build(self, path: Path) -> None:
        raise NotImplementedError

    def _check(self) -> None:
        from vitzoo.exporting import relative_difference

        x = self.inputs(2)
        with torch.inference_mode():
            ref = self.model(torch.from_numpy(x))
        rel = relative_difference(torch.from_numpy(np.asarray(self.forward(x))), ref)
        if not rel <= CHECK_RTOL:
            raise RuntimeError(f"{self.options.backend} logits differ from torch by {rel:.1e} (relative)")
        self.max_rel_diff = rel

    def inputs(self, batch: int) -> Any:
        rng = np.random.default_rng(batch)
        return rng.standard_normal((batch, 3, self.img_size, self.img_size), dtype=np.float32)

    def sync(self) -> None:
        """Runs are synchronous on the CPU."""


class OrtRunner(_OnnxRunner):
    """ONNX Runtime, CPUExecutionProvider, all graph optimisations (``vitzoo.exporting.ort_session``)."""

    def _build(self, path: Path) -> None:
        from vitzoo.exporting import ort_session

        self.session = ort_session(path, self.threads)

    def forward(self, x: Any) -> Any:
        return self.session.run(None, {"pixel_values": x})[0]


class OpenVinoRunner(_OnnxRunner):
    """OpenVINO on the CPU, latency hint, ``threads`` inference threads."""

    def _build(self, path: Path) -> None:
        import openvino as ov

        core = ov.Core()
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self.compiled_model = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.request = self.compiled_model.create_infer_request()

    def forward(self, x: Any) -> Any:
        return self.request.infer({0: x})[0]
