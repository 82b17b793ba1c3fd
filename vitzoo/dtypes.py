"""vitzoo's names for floating-point types and their torch dtypes (the one table), and the one check of a device
name; torch is imported only when asked."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from vitzoo.errors import ConfigError

if TYPE_CHECKING:
    import torch

NAMES: tuple[str, ...] = ("fp32", "bf16", "fp16")  # what options and results say
ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}  # torch's spellings, accepted by load()


def to_torch(name: str) -> torch.dtype:
    """The torch dtype of ``"fp32"``, ``"bf16"`` or ``"fp16"`` (or torch's own spelling of them)."""
    import torch

    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    key = ALIASES.get(name, name)
    if key not in table:
        raise ConfigError(f"unknown dtype {name!r}; use one of {', '.join(NAMES)}")
    return table[key]


def name_of(dtype: torch.dtype) -> str:
    """vitzoo's name of a torch dtype (``torch.bfloat16`` -> ``"bf16"``); other dtypes as torch prints them."""
    return ALIASES.get(str(dtype).removeprefix("torch."), str(dtype))


def resolve(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """A torch dtype from a name or a torch dtype; None stays None (keep the weights' own dtype)."""
    return dtype if dtype is None or not isinstance(dtype, str) else to_torch(dtype)


def resolve_device(device: str | torch.device) -> torch.device:
    """Check that a device names an available device (``cpu``, ``cuda``, ``cuda:N``, ``mps``); ConfigError with the
    reason if not, instead of torch's AssertionError deep inside ``.to()``."""
    import torch

    name = str(device)
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", name):
        raise ConfigError(f"device must be cpu, cuda, cuda:N or mps, not {name!r}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch was built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ConfigError(f"device {name!r} is not available: {why} (torch {torch.__version__})")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} is not available: {torch.cuda.device_count()} GPU(s) visible")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' is not available on this machine")
    return torch.device(name)
