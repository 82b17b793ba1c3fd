"""The GEMM roofline: the matmul throughput this machine reaches for a dtype, the "peak" results are compared with.

It is measured on the GEMMs of a ViT-B/16 forward pass (batch 16 x 197 tokens: qkv, attention output, MLP in and
out), through both the aten ``nn.Linear`` path and, on CPU, oneDNN's linear; the best of them is the peak. The int8
roofline (``dtype=torch.int8``, in TOP/s) is ``torch._int_mm`` (int8 x int8 -> int32, oneDNN on CPU: VNNI where the
CPU has it) on the same shapes; where that kernel does not exist or run, there is no int8 peak and the error says why.

A measurement takes seconds, so ``gemm_peak`` keeps it in ``$VITZOO_CACHE/gemm_peak.json``, keyed by the machine and
environment it was measured in (host, CPU and its ISA, device, torch and vitzoo versions, dtype, threads): a later
run there reuses it (``GemmPeak.measured_at`` says when it was measured); ``vitzoo bench --peak`` measures again and
replaces it. A cache that cannot be written only means measuring again next time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import statistics
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from vitzoo import dtypes
from vitzoo.errors import ConfigError, VitzooError
from vitzoo.files import atomic_path, cache_dir
from vitzoo.measure.results import GemmPeak
from vitzoo.measure.timing import make_timer


def vit_gemm_shapes(tokens: int = 16 * 197, width: int = 768, mlp_dim: int = 3072) -> list[tuple[int, int, int]]:
    """(M, K, N) of the dense layers of one ViT block: qkv, attention output, MLP in, MLP out."""
    return [(tokens, width, 3 * width), (tokens, width, width), (tokens, width, mlp_dim), (tokens, mlp_dim, width)]


INT8_KERNELS: dict[str, Callable] = {"int_mm": lambda x, w, b: functools.partial(torch._int_mm, x, w.t().contiguous())}


def _kernels(device: torch.device) -> dict[str, Callable]:
    """name -> prepare(x, W, b) -> call(): aten's nn.Linear path and, on CPU, oneDNN's linear (the weight plain,
    and pre-packed in its blocked layout as vitzoo's fused kernels keep it)."""
    kernels: dict[str, Callable] = {"aten": lambda x, w, b: functools.partial(F.linear, x, w, b)}
    mkldnn = getattr(torch.ops, "mkldnn", None)
    if device.type != "cpu" or not torch.backends.mkldnn.is_available() or not hasattr(mkldnn, "_linear_pointwise"):
        return kernels
    linear = torch.ops.mkldnn._linear_pointwise
    kernels["onednn"] = lambda x, w, b: functools.partial(linear, x, w, b, "none", [], "")
    if hasattr(mkldnn, "_reorder_linear_weight"):
        kernels["onednn_packed"] = lambda x, w, b: functools.partial(
            linear, x, torch.ops.mkldnn._reorder_linear_weight(w, x.shape[0]), b, "none", [], ""
        )
    return kernels


def measure_gemm_peak(
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    *,
    shapes: list[tuple[int, int, int]] | None = None,
    seconds: float = 0.3,
) -> GemmPeak:
    """Time ``y = x W^T + b`` on each (M, K, N) for about ``seconds`` per shape and kernel; median per run."""
    device = torch.device(device)
    timer = make_timer(device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    rows, errors = [], []
    with torch.inference_mode():
        for M, K, N in shapes or vit_gemm_shapes():
            if dtype == torch.int8:
                x = torch.randint(-128, 128, (M, K), generator=gen, dtype=dtype).to(device)
                w = torch.randint(-128, 128, (N, K), generator=gen, dtype=dtype).to(device)
                b = None
            else:
                x = torch.randn(M, K, generator=gen).to(device, dtype)
                w = (torch.randn(N, K, generator=gen) * K**-0.5).to(device, dtype)
                b = torch.randn(N, generator=gen).to(device, dtype)
            for name, prepare in (INT8_KERNELS if dtype == torch.int8 else _kernels(device)).items():
                try:
                    call = prepare(x, w, b)
                    call()  # warm-up (and the check that the kernel takes this dtype)
                except RuntimeError as e:  # e.g. oneDNN bf16 on a CPU without AVX-512: the other kernels count
                    errors.append(f"{name}: {(str(e).strip() or type(e).__name__).splitlines()[0][:120]}")
                    continue
                once, _ = timer.time(call, 1)
                iters = max(1, min(200, round(seconds / max(once[0], 1e-6))))  # a slow (emulated) GEMM: once more
                per, _ = timer.time(call, iters)
                per = per + once if iters < 3 else per
                rows.append((name, M, K, N, 2 * M * K * N / statistics.median(per) / 1e12))
    dtype_name = "int8" if dtype == torch.int8 else dtypes.name_of(dtype)
    if not rows:
        raise ConfigError(
            f"no matmul kernel runs in {dtype_name} on {device} "
            f"({', '.join(INT8_KERNELS if dtype == torch.int8 else _kernels(device))} all failed: "
            f"{errors[-1] if errors else 'no shapes'})"
        )
    return GemmPeak(str(device), dtype_name, torch.get_num_threads(), max(r[-1] for r in rows), tuple(rows))


PEAK_FILE = "gemm_peak.json"


def _environment_key(device: str, dtype: torch.dtype, threads: int) -> str:
    """What a GEMM peak depends on: the machine, its software and the run's settings, as one string."""
    from vitzoo.measure.env import environment

    env = environment(device)
    parts = [env.get(k) for k in ("host", "cpu", "cpu_capability", "device_name", "cuda", "torch", "vitzoo")]
    return json.dumps([*parts, device, dtypes.name_of(dtype), threads])


def _read_peaks() -> dict[str, Any]:
    try:
        data = json.loads((cache_dir() / PEAK_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remember_peak(peak: GemmPeak) -> None:
    """Keep ``peak`` in the cache for later runs in this environment (best effort: a read-only cache keeps none)."""
    key = _environment_key(peak.device, dtypes.to_torch(peak.dtype), peak.threads)
    entry = {"tflops": peak.tflops, "results": [list(r) for r in peak.results],
             "measured_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}  # fmt: skip
    peaks = {**_read_peaks(), key: entry}
    with contextlib.suppress(VitzooError, OSError), atomic_path(cache_dir() / PEAK_FILE) as tmp:
        tmp.write_text(json.dumps(peaks, indent=1) + "\n")


@functools.lru_cache(maxsize=16)
def _cached_peak(device: str, dtype: torch.dtype, threads: int) -> GemmPeak:
    entry = _read_peaks().get(_environment_key(device, dtype, threads))
    if isinstance(entry, dict) and isinstance(entry.get("tflops"), (int, float)) and entry["tflops"] > 0:
        rows = tuple(tuple(r) for r in entry.get("results") or ())
        return GemmPeak(device, dtypes.name_of(dtype), threads, float(entry["tflops"]), rows,  # type: ignore[arg-type]
                        measured_at=str(entry.get("measured_at") or "earlier"))  # fmt: skip
    peak = measure_gemm_peak(device, dtype)
    remember_peak(peak)
    return peak


def gemm_peak(device: str | torch.device, dtype: torch.dtype) -> GemmPeak:
    """The GEMM peak for (device, dtype, current threads): from the cache when this environment measured it before,
    else measured (and kept); once per process either way."""
    return _cached_peak(str(torch.device(device)), dtype, torch.get_num_threads())
