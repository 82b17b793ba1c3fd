"""Features from any block: which blocks ``forward_intermediates`` takes, as timm names and numbers them.

``indices`` is what timm's ``feature_take_indices`` accepts, so code written against timm works here: None takes
every block, an int ``n`` the last ``n``, a sequence the blocks it names (negative counts from the end).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

OutputFormat = Literal["NCHW", "NLC"]


def take_indices(num_blocks: int, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
    """The absolute block indices to take, in the order asked, and the largest of them.

    ValueError (one line) for an empty selection or an index outside ``0 .. num_blocks - 1`` (or the negative
    equivalent).
    """
    if indices is None:
        indices = num_blocks
    if isinstance(indices, bool) or not isinstance(indices, (int, Sequence)):
        raise ValueError(f"indices must be an int (the last n blocks) or a list of block indices, not {indices!r}")
    if isinstance(indices, int):
        if not 0 < indices <= num_blocks:
            raise ValueError(f"last-n {indices} is out of range: the model has {num_blocks} blocks (1 to {num_blocks})")
        return list(range(num_blocks - indices, num_blocks)), num_blocks - 1
    taken = []
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int):
            raise ValueError(f"block indices must be integers, not {i!r}")
        if not -num_blocks <= i < num_blocks:
            raise ValueError(f"block index {i} is out of range: the model has blocks 0 to {num_blocks - 1}")
        taken.append(i % num_blocks)
    if not taken:
        raise ValueError("indices is empty: name at least one block")
    return taken, max(taken)


def check_output_format(output_fmt: str, allowed: tuple[str, ...] = ("NCHW", "NLC")) -> None:
    if output_fmt not in allowed:
        raise ValueError(f"output_fmt must be one of {', '.join(allowed)}, not {output_fmt!r}")
