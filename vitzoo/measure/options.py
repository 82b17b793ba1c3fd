"""What a benchmark is asked to do: ``BenchOptions`` and ``Progress`` (no torch). What it reports, ``BenchResult``,
is in ``vitzoo.measure.results`` (re-exported here).

The harness is ``vitzoo.measure.bench``; one batch size on one device is ``vitzoo.measure.runner``.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vitzoo import dtypes
from vitzoo.errors import ConfigError
from vitzoo.measure.results import BenchResult, Status
from vitzoo.zoo.formats import BACKENDS

if TYPE_CHECKING:
    import torch

__all__ = ["BenchOptions", "BenchResult", "Progress", "ProgressFn", "Status", "check_backend", "parse_batch_sizes"]

_PACKAGES = {"onnxruntime": ("onnxruntime", "onnx", "onnxscript"), "openvino": ("openvino", "onnx", "onnxscript")}


@dataclass(frozen=True)
class BenchOptions:
    """What to measure and how. ``batch_sizes`` is a tuple of sizes or ``"auto"`` (largest that fits)."""

    device: str = "cpu"  # cpu | cuda | cuda:N | mps
    dtype: str = "fp32"  # fp32 | bf16 | fp16
    precision: Literal["cast", "autocast"] = "cast"  # cast weights+inputs to dtype, or fp32 weights + autocast
    batch_sizes: tuple[int, ...] | Literal["auto"] = (16,)
    img_size: int | None = None  # None: the resolution of the model's default checkpoint
    compile: bool = False  # torch.compile (inductor); its compile time is reported apart
    channels_last: bool = False  # NHWC memory format (helps the ResNets)
    fused: bool = True  # vitzoo's fused CPU kernels (oneDNN linear + bias/GELU/residual); False: plain aten
    threads: int | None = None  # CPU intra-op threads during the run; None: torch's current setting
    warmup: int = 3  # untimed passes per batch size (the first one compiles)
    iters: int = 10  # timed passes per round; ignored when ``seconds`` is set
    seconds: float | None = None  # timed seconds per batch size, split over the rounds
    rounds: int = 3  # timed rounds; throughput is their median
    max_batch: int = 1024  # upper bound of the "auto" search
    pretrained: bool = False  # load the checkpoint (speed does not depend on it; random weights work offline)
    gemm_peak: bool = True  # measure the GEMM roofline once per (device, dtype) for the % of peak column
    auto_max_pass_s: float = 10.0  # "auto" does not grow the batch past one pass of this many seconds
    backend: str = "torch"  # torch | onnxruntime | openvino (vitzoo.measure.backends: the exported ONNX graph)
    mode: Literal["inference", "train"] = "inference"  # train: forward + backward + SGD step (vitzoo.measure.training)
    grad_checkpointing: bool = False  # train: recompute each block's activations in backward (less memory)

    def __post_init__(self) -> None:
        if self.dtype not in dtypes.NAMES:
            raise ConfigError(f"dtype must be one of {', '.join(dtypes.NAMES)}, not {self.dtype!r}")
        if self.precision not in ("cast", "autocast"):
            raise ConfigError(f"precision must be 'cast' or 'autocast', not {self.precision!r}")
        if self.batch_sizes != "auto" and (
            not self.batch_sizes or not all(isinstance(b, int) and b > 0 for b in self.batch_sizes)
        ):
            raise ConfigError(f"batch sizes must be positive integers or 'auto', not {self.batch_sizes!r}")
        for name in ("warmup", "iters", "rounds", "max_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "warmup" else 1):
                raise ConfigError(f"{name} must be a positive integer, not {value!r}")
        if not self.auto_max_pass_s > 0:
            raise ConfigError(f"auto_max_pass_s must be > 0, not {self.auto_max_pass_s!r}")
        if self.seconds is not None and not self.seconds > 0:
            raise ConfigError(f"seconds must be > 0, not {self.seconds!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer, not {self.threads!r}")
        if self.mode not in ("inference", "train"):
            raise ConfigError(f"mode must be 'inference' or 'train', not {self.mode!r}")
        if self.mode == "train" and self.backend != "torch":
            raise ConfigError(f"--mode train runs PyTorch; {self.backend} only runs inference")
        if self.mode == "train" and self.precision == "cast" and self.dtype != "fp32":
            raise ConfigError(f"training keeps fp32 weights: {self.dtype} runs under autocast (precision='autocast')")
        if self.grad_checkpointing and self.mode != "train":
            raise ConfigError("gradient checkpointing only applies to --mode train")
        check_backend(self)

    @property
    def torch_dtype(self) -> torch.dtype:
        return dtypes.to_torch(self.dtype)


@dataclass(frozen=True)
class Progress:
    """What the harness is doing, for a progress bar: ``step`` of ``total`` in ``phase``."""

    model: str
    batch_size: int | None
    phase: Literal["peak", "build", "warmup", "probe", "timing", "done"]  # peak: measuring the GEMM roofline
    step: int = 0
    total: int = 0


ProgressFn = Callable[[Progress], None]


def parse_batch_sizes(text: str) -> tuple[int, ...] | Literal["auto"]:
    """``"16"``, ``"1,8,64"`` or ``"auto"``; anything else raises ConfigError."""
    text = text.strip().lower()
    if text == "auto":
        return "auto"
    if not re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
        raise ConfigError(f"batch size must be an integer, a comma-separated list (1,8,64) or 'auto', not {text!r}")
    sizes = tuple(int(t) for t in text.split(","))
    if 0 in sizes:
        raise ConfigError("batch sizes must be >= 1")
    return tuple(dict.fromkeys(sizes))


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
