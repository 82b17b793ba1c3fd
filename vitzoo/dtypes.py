"""vitzoo's names for floating-point types, and their torch dtypes: the one table (torch imported only when asked)."""

from __future__ import annotations

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
