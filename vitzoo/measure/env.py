"""The environment fingerprint stored with every result: machine, software versions, device, threads."""

from __future__ import annotations

import functools
import os
import platform
import socket
from typing import Any

import vitzoo


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    """Human name of a device string: the CUDA GPU's name, ``Apple MPS``, or the CPU model."""
    import torch

    kind = device.split(":", 1)[0]
    if kind == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    if kind == "mps":
        return "Apple MPS"
    return cpu_model()


def environment(device: str = "cpu") -> dict[str, Any]:
    """Where a result was measured, as flat JSON-able data (stored with every result as ``env_*`` columns).

    Keys: host, platform, python, torch, vitzoo, cpu, cpu_count, cpu_capability (the widest SIMD ISA torch
    dispatches to), cpu_bf16 / cpu_fp16 (native arithmetic in that dtype: AVX512_BF16/AMX, AVX512_FP16; None
    where unknown), threads (torch intra-op threads), device, device_name, cuda (CUDA runtime torch was built
    with, or None), cudnn, gpu_count, world_size and local_world_size (processes of a torch.distributed run in
    all and on this machine; 1 for a single process).
    """
    import torch

    from vitzoo.measure.cpu import native_dtype

    cuda = torch.version.cuda
    cuda_ok = torch.cuda.is_available()
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "vitzoo": vitzoo.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16": native_dtype("bf16"),
        "cpu_fp16": native_dtype("fp16"),
        "threads": torch.get_num_threads(),
        "device": device,
        "device_name": device_name(device),
        "cuda": cuda,
        "cudnn": torch.backends.cudnn.version() if cuda_ok else None,
        "gpu_count": torch.cuda.device_count() if cuda_ok else 0,
        **_world(),
    }


def _world() -> dict[str, int]:
    """Processes of the torch.distributed run this process belongs to (1 and 1 outside one)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return {"world_size": 1, "local_world_size": 1}
    return {"world_size": dist.get_world_size(), "local_world_size": int(os.environ.get("LOCAL_WORLD_SIZE", "1"))}
