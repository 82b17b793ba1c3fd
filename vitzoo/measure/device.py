"""The device and threads a measurement runs on: checked before any work, restored after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from vitzoo.dtypes import resolve_device  # noqa: F401 (the one device check; re-exported)


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
