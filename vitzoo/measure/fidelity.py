"""How far a deployed model's answers are from the fp32 PyTorch model's, on the same inputs (numpy only).

``compare`` takes the two logit arrays (and the labels, where the images have them): the largest and the mean
absolute logit error, the share of images whose top-1 class agrees, and the top-1 accuracy of both. A result is
**degraded** under MLPerf's 99% rule: its top-1 agreement with fp32 is below 99% (fp32 agrees with itself on
every image), or, with labels, its top-1 accuracy is below 99% of fp32's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

QUALITY_TARGET = 0.99  # MLPerf's 99% rule: a result must keep 99% of the fp32 reference's quality


@dataclass(frozen=True)
class Fidelity:
    """Logit errors and top-1 agreement against the fp32 reference, on ``images`` inputs."""

    images: int
    max_abs_err: float
    mean_abs_err: float
    top1_agreement: float  # share of images whose argmax equals fp32's argmax
    top1_accuracy: float | None = None  # with labels
    ref_top1_accuracy: float | None = None  # fp32's, on the same images
    degraded: bool = False
    degraded_why: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data; the keys are prefixed ``fid_`` where they join a result's metrics."""
        return dataclasses.asdict(self)


def top1(logits: np.ndarray) -> np.ndarray:
    """The argmax class of each row (the first one on ties, as numpy and torch do)."""
    return np.asarray(logits).argmax(axis=1)


def compare(ref: np.ndarray, got: np.ndarray, labels: np.ndarray | None = None) -> Fidelity:
    """Fidelity of ``got`` against the fp32 reference ``ref`` (both (images, classes)); ``labels`` optional."""
    ref, got = np.asarray(ref, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if ref.shape != got.shape or ref.ndim != 2 or not len(ref):
        raise ValueError(f"logits must be two (images, classes) arrays of one shape, not {ref.shape} and {got.shape}")
    diff = np.abs(got - ref)
    agree = float(np.mean(top1(got) == top1(ref)))
    acc = ref_acc = None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(ref),):
            raise ValueError(f"{len(ref)} images but {labels.shape} labels")
        acc, ref_acc = float(np.mean(top1(got) == labels)), float(np.mean(top1(ref) == labels))
    finite = bool(np.isfinite(diff).all())
    why = degraded_why(agree, acc, ref_acc) if finite else "non-finite logits"
    max_err, mean_err = (float(diff.max()), float(diff.mean())) if finite else (float("nan"), float("nan"))
    return Fidelity(len(ref), max_err, mean_err, agree, acc, ref_acc, why is not None, why)


def degraded_why(agreement: float, accuracy: float | None = None, ref_accuracy: float | None = None) -> str | None:
    """Why a result fails the 99% rule (None when it passes): accuracy against fp32's where there are labels."""
    if accuracy is not None and ref_accuracy is not None and ref_accuracy > 0:
        if accuracy < QUALITY_TARGET * ref_accuracy:
            return f"top-1 accuracy {100 * accuracy:.1f}% < 99% of fp32's {100 * ref_accuracy:.1f}%"
        return None
    if agreement < QUALITY_TARGET:
        return f"top-1 agreement with fp32 {100 * agreement:.1f}% < 99%"
    return None
