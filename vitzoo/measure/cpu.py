"""The CPU a benchmark runs on: what it can do in low precision, and how busy other processes keep it.

Capabilities are detected at run time, never assumed: the ISA flags of ``/proc/cpuinfo`` say whether bf16/fp16
arithmetic is native (AVX512_BF16 / AMX-BF16, AVX512_FP16 / AMX-FP16, Arm's BF16 / FP16), and a probe of oneDNN
(``vitzoo.measure.fused.onednn_linear_supports``) says whether vitzoo's fused kernels run a dtype at all (bf16
needs AVX-512 or AVX-NE-CONVERT). Contention is what other processes took from the CPUs this process may run on
while it was being timed (``/proc/stat`` minus this process's own CPU time), plus the load average.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch

from vitzoo.dtypes import to_torch
from vitzoo.machine import cpu_flags
from vitzoo.measure.fused import onednn_linear_supports

__all__ = ["Contention", "ContentionMeter", "fused_kernels", "int8_note", "low_precision_warning", "native_dtype"]

# ISA flags (x86 /proc/cpuinfo "flags", Arm "Features") that mean hardware arithmetic in the dtype.
NATIVE_FLAGS = {
    "bf16": ("avx512_bf16", "amx_bf16", "bf16"),
    "fp16": ("avx512_fp16", "amx_fp16", "asimdhp"),
    "int8": ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp"),  # int8 dot products (VNNI, AMX, Arm's SDOT)
}
_SHOWN = {"bf16": "AVX512_BF16/AMX", "fp16": "AVX512_FP16/AMX-FP16", "int8": "AVX512-VNNI/AVX-VNNI/AMX-INT8"}


def native_dtype(dtype: str, flags: frozenset[str] | None = None) -> bool | None:
    """Whether the CPU has hardware arithmetic for ``dtype`` (fp32 always); None where its flags are unknown."""
    if dtype == "fp32":
        return True
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return None
    return any(f in flags for f in NATIVE_FLAGS[dtype])


def low_precision_warning(dtype: str, device: str = "cpu", flags: frozenset[str] | None = None) -> str | None:
    """One line to show before a CPU run in bf16/fp16 on a CPU without native support for it, else None."""
    if not device.startswith("cpu") or native_dtype(dtype, flags) is not False:
        return None
    if onednn_linear_supports(to_torch(dtype)):
        return (f"{dtype} has no native instructions on this CPU (no {_SHOWN[dtype]}): its GEMMs convert to fp32, "
                "expect no speed-up over fp32")  # fmt: skip
    return f"{dtype} is emulated on this CPU (no {_SHOWN[dtype]}): expect several times slower than fp32"


def int8_note(flags: frozenset[str] | None = None) -> str | None:
    """None where the CPU has int8 dot-product instructions; else one line saying int8 runs emulated."""
    native = native_dtype("int8", flags)
    if native:
        return None
    if native is None:
        return "int8 support unknown (no CPU flags to read): it may run emulated"
    return f"int8 emulated on this CPU (no {_SHOWN['int8']}): int8 GEMMs widen to int16/fp32"


def fused_kernels(
    requested: bool, *, device: str, dtype: str, precision: str = "cast", compile: bool = False
) -> tuple[bool, str | None]:
    """Whether vitzoo's fused CPU kernels will run for this setting, and why not (None when they run)."""
    if not requested:
        return False, "--aten (fused kernels off)"
    if not device.startswith("cpu"):
        return False, f"fused kernels are CPU-only (device {device})"
    if compile:
        return False, "torch.compile (inductor fuses by itself)"
    if precision == "autocast" and dtype != "fp32":
        return False, "autocast runs aten"
    if dtype not in ("fp32", "bf16"):
        return False, f"no fused kernels for {dtype} (fp32 and bf16 only)"
    if not onednn_linear_supports(to_torch(dtype)):
        what = "AVX-512 BW/VL, AVX-NE-CONVERT or AMX" if dtype == "bf16" else "a oneDNN build with it"
        return False, f"no oneDNN {dtype} linear on this {_capability()} CPU: needs {what}"
    return True, None


def _capability() -> str:
    return torch.backends.cpu.get_cpu_capability()


# -- contention -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contention:
    """How busy the machine was around one measurement.

    ``other_cpu`` is the CPU time other processes used on this process's CPUs during the run, in cores
    (1.0 = one core busy the whole time); ``contended`` flags a result that other work probably slowed down.
    """

    load_start: float | None  # 1-minute load average before the run
    load_end: float | None  # and after it
    other_cpu: float | None  # cores used by other processes during the run; None where unknown
    contended: bool


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _allowed_cpus() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def busy_seconds(cpus: set[int] | None = None) -> float | None:
    """Non-idle CPU time (user, nice, system, irq, softirq, steal) of ``cpus`` since boot, from ``/proc/stat``."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    ticks = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        v = [int(x) for x in fields[:8]] + [0] * (8 - len(fields[:8]))
        ticks += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system (idle iowait) irq softirq steal
    return ticks / os.sysconf("SC_CLK_TCK")


def is_contended(other_cpu: float | None, threads: int, load: float | None, seconds: float) -> bool:
    """Other processes took at least half a core, and a quarter of what this run used (``threads`` cores), during a
    run long enough to tell (0.25 s: /proc/stat counts in 10 ms ticks); otherwise (short run, no /proc/stat) the
    machine was oversubscribed before the run began (load average above the core count)."""
    if other_cpu is not None and seconds >= 0.25:
        return other_cpu >= max(0.5, 0.25 * threads)
    cores = len(_allowed_cpus() or ()) or os.cpu_count() or 1
    return load is not None and load > cores + 0.5


class ContentionMeter:
    """Context manager: load average and other processes' CPU use around a block; ``result`` after the block."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.result: Contention | None = None

    def __enter__(self) -> ContentionMeter:
        self._cpus = _allowed_cpus()
        self._load = _loadavg()
        self._busy = busy_seconds(self._cpus)
        self._own = time.process_time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.perf_counter() - self._t0
        busy = busy_seconds(self._cpus)
        other = None
        if busy is not None and self._busy is not None and seconds > 0:
            own = time.process_time() - self._own
            other = round(max(busy - self._busy - own, 0.0) / seconds, 2)
        load = _loadavg()
        contended = is_contended(other, self.threads, self._load, seconds)
        self.result = Contention(self._load, load, other, contended)
