"""The device and threads a measurement runs on: checked before any work, restored after."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import torch

from vitzoo.errors import ConfigError


def resolve_device(device: str) -> torch.device:
    """Check that a device string names an available device; raise ConfigError with the reason if not."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise ConfigError(f"device must be cpu, cuda, cuda:N or mps, not {device!r}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch was built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ConfigError(f"device {device!r} is not available: {why} (torch {torch.__version__})")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r} is not available: {torch.cuda.device_count()} GPU(s) visible")
    if device == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' is not available on this machine")
    return torch.device(device)


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``n`` CPU intra-op threads (None: unchanged); yields the count in effect."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
