"""timm's published accuracies of the catalogue's timm files on ImageNet and five robustness sets (no torch).

``timm_results.csv`` beside this module holds, for each timm model tag that a vitzoo checkpoint names as a source
(a ``HubFile`` in ``timm/<tag>``), the top-1/top-5 that timm published for that very file under its own
preprocessing (``results/*.csv`` of huggingface/pytorch-image-models, commit
aa4b5850c1543fa488abf260f18390eda46cf85d, Apache-2.0), on the sets of ``DATASETS``: ImageNet-1k val, ReaL,
ImageNet-V2 matched-frequency, Sketch, A and R (A and R scored over their 200 classes). These are "timm's
evaluation" numbers, the protocol the catalogue already labels so. ``tests/data/make_timm_results.py`` writes
the file.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

from vitzoo.zoo.registry import HubFile, Weights

RESULTS_FILE = Path(__file__).parent / "timm_results.csv"
DATASETS = ("imagenet", "real", "v2", "sketch", "a", "r")
TITLES = {"imagenet": "ImageNet", "real": "ReaL", "v2": "V2", "sketch": "Sketch", "a": "A", "r": "R"}
TIMM_FILES = {  # the timm results file behind each set's numbers
    "imagenet": "results-imagenet.csv",
    "real": "results-imagenet-real.csv",
    "v2": "results-imagenetv2-matched-frequency.csv",
    "sketch": "results-sketch.csv",
    "a": "results-imagenet-a.csv",
    "r": "results-imagenet-r.csv",
}


def timm_name(weights: Weights) -> str | None:
    """The timm model tag of a checkpoint (``vit_base_patch16_384.orig_in21k_ft_in1k``), from its first ``timm/``
    Hub source; None when it has none."""
    hub = next((s for s in weights.sources if isinstance(s, HubFile) and s.repo_id.startswith("timm/")), None)
    return None if hub is None else hub.repo_id.removeprefix("timm/")


@cache
def _table() -> dict[str, dict[str, tuple[float, float]]]:
    lines = [line for line in RESULTS_FILE.read_text().splitlines() if line and not line.startswith("#")]
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for row in csv.DictReader(lines):
        out[row["model"]] = {
            d: (float(row[f"{d}_top1"]), float(row[f"{d}_top5"])) for d in DATASETS if row[f"{d}_top1"]
        }
    return out


def timm_results(weights: Weights) -> dict[str, tuple[float, float]]:
    """timm's (top-1, top-5) per set for a checkpoint's timm file; empty when timm published none."""
    name = timm_name(weights)
    return {} if name is None else dict(_table().get(name, {}))
