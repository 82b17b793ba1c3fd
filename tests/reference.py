"""Rebuild the reference checkpoints of tests/data/reference (outputs of the original vit_jax code).

The recipe is the one in tests/data/reference/README.md: seeded PCG64 draws per key in sorted order,
then a per-output-channel offset for StdConv kernels; a sha256 over the arrays guards the recipe.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data" / "reference"
CASES = ("ti16_opt_10cls_224", "s16_gap_224", "r26_s32_augreg_224")


def _fan_in(key: str, shape: tuple[int, ...]) -> int:
    parent = key.split("/")[-2]
    if parent in ("query", "key", "value"):
        return shape[0]
    if parent == "out":
        return shape[0] * shape[1]
    return int(np.prod(shape[:-1]))


def build_arrays(case: str) -> dict[str, np.ndarray]:
    """The checkpoint arrays of a reference case, checked against the recorded sha256."""
    spec = json.loads((DATA / f"{case}.json").read_text())
    rng = np.random.Generator(np.random.PCG64(spec["seed"]))
    arrays = {}
    for key in sorted(spec["params"]):
        shape = tuple(spec["params"][key])
        last = key.split("/")[-1]
        scale, offset = {"scale": (0.1, 1.0), "bias": (0.05, 0.0), "pos_embedding": (0.1, 0.0), "cls": (0.1, 0.0)}.get(
            last, (1.0, 0.0)
        )
        if last == "kernel":
            scale = 1 / np.sqrt(_fan_in(key, shape))
        a = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale) + np.float32(offset)
        if last == "kernel" and "conv" in key.split("/")[-2]:
            a = a + np.float32(0.02) * rng.standard_normal(shape[-1:], dtype=np.float32)
        arrays[key] = a.astype(np.float32)
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    assert digest.hexdigest() == spec["sha256"], f"{case}: regenerated arrays differ from the reference"
    return arrays


def write_npz(case: str, path: Path) -> Path:
    """Save the case's checkpoint exactly as the released files are laid out."""
    np.savez(path, **build_arrays(case))
    return path


def inputs() -> np.ndarray:
    """The four real photos, NCHW float32 in [-1, 1]."""
    return np.load(DATA / "images224.inputs.npy", allow_pickle=False)


def logits(case: str) -> np.ndarray:
    """The original model's logits for ``inputs()``."""
    return np.load(DATA / f"{case}.logits.npy", allow_pickle=False)
