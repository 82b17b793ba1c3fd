"""How sure an accuracy is, and how honest a model's confidence is: bootstrap intervals and calibration error.

* ``bootstrap_ci``: the percentile bootstrap (Efron) of a mean over per-image outcomes: ``BOOTSTRAP_RESAMPLES``
  resamples of the n images with replacement, seeded (``BOOTSTRAP_SEED``), so the same outcomes always give the
  same interval. For a top-1 of p over n images it is close to the binomial normal interval
  p ± 1.96 sqrt(p (1 - p) / n) (``tests/test_stats.py`` checks it).
* ``expected_calibration_error``: ECE with ``ECE_BINS`` equal-width confidence bins (Guo et al. 2017, "On
  Calibration of Modern Neural Networks"): bin b holds the images whose top-1 confidence lies in
  (b / 15, (b + 1) / 15]; ECE = sum over bins of (images in bin / n) * |accuracy in bin - mean confidence in bin|.

Both take and return fractions in [0, 1]; ``vitzoo.evaluate.accuracy`` turns them into percentages.
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
ECE_BINS = 15
_CHUNK = 2_000_000  # resampled indices drawn at once (16 MB): memory stays flat for 50,000-image sets


def bootstrap_ci(
    outcomes: np.ndarray, *, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """The percentile bootstrap interval of ``outcomes.mean()`` (per-image 0/1 hits, or any numbers).

    Deterministic: the resamples come from ``numpy.random.default_rng(seed)``.
    """
    x = np.asarray(outcomes, dtype=np.float64).ravel()
    n = len(x)
    if n == 0:
        raise ValueError("bootstrap of no outcomes")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), not {level}")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    per_chunk = max(1, _CHUNK // n)
    for start in range(0, resamples, per_chunk):
        m = min(per_chunk, resamples - start)
        means[start : start + m] = x[rng.integers(0, n, size=(m, n))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over ``bins`` equal-width bins of (0, 1]: sum_b (n_b / n) |acc_b - conf_b| (see the module docstring)."""
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    hit = np.asarray(correct, dtype=np.float64).ravel()
    if conf.shape != hit.shape:
        raise ValueError(f"{len(conf)} confidences for {len(hit)} outcomes")
    if len(conf) == 0:
        raise ValueError("calibration error of no predictions")
    which = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)  # (b/bins, (b+1)/bins] -> b
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, hit, bins) - np.bincount(which, conf, bins))  # per bin: n_b |acc_b - conf_b|
    return float(gap.sum() / count.sum())
