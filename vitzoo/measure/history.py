"""Speed histories: one CSV file per machine kind that every benchmark run appends its rows to.

A history keeps every earlier run. A file written with an older column list (the current columns with some added
since at the end) is rewritten, atomically, under the current header, its old rows keeping their values and leaving
the new columns empty; a file with other columns is refused in one line before the long run, never appended to.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from vitzoo.errors import VitzooError
from vitzoo.files import atomic_path


def result_stem(name: str) -> str:
    """File name (without suffix) of this machine kind's results of benchmark ``name``: the CPU's ISA (torch's
    dispatch level), its cores and torch's version, e.g. ``peer-vit-b16-cpu-avx512-2core-pt2.13``."""
    isa = torch.backends.cpu.get_cpu_capability().lower()
    return f"{name}-cpu-{isa}-{os.cpu_count()}core-pt{'.'.join(torch.__version__.split('.')[:2])}"


def prepare_history(out: Path, stem: str, columns: Sequence[str]) -> Path:
    """The history ``out/stem.csv``, its folder made and checked (``check_history``) before a long run, not after."""
    out.mkdir(parents=True, exist_ok=True)
    history = out / f"{stem}.csv"
    check_history(history, columns)
    return history


def _header(path: Path) -> list[str] | None:
    if not path.exists() or not path.stat().st_size:
        return None
    with open(path, newline="") as f:
        return next(csv.reader(f), [])


def check_history(path: Path, columns: Sequence[str]) -> list[str] | None:
    """Refuse (one line) a history this run cannot append to: one whose columns are not the first of ``columns``.
    Returns its header (None for a new or empty file)."""
    header = _header(path)
    if header is not None and list(columns[: len(header)]) != header:
        raise VitzooError(f"{path} has other columns than this script writes; move it aside or choose --out")
    return header


def append_history(path: Path, columns: Sequence[str], rows: list[dict]) -> None:
    """Append ``rows`` (dicts keyed by ``columns``) to the history at ``path``, its header first if it is new or
    older than ``columns``: earlier runs are never lost."""
    header = check_history(path, columns)
    if header is not None and len(header) < len(columns):
        with open(path, newline="") as f:
            old = list(csv.DictReader(f))
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(old)
        header = list(columns)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, columns)
        if header is None:
            writer.writeheader()
        writer.writerows(rows)
