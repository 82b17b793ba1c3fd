"""vitzoo.evaluate.stats: the bootstrap interval against the binomial closed form, ECE against a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vitzoo.evaluate.stats import BOOTSTRAP_RESAMPLES, bootstrap_ci, expected_calibration_error


def test_bootstrap_interval_matches_the_binomial_normal_approximation():
    n, p = 20_000, 0.8
    hits = np.zeros(n)
    hits[: int(p * n)] = 1
    np.random.default_rng(1).shuffle(hits)
    low, high = bootstrap_ci(hits)
    half = 1.96 * math.sqrt(p * (1 - p) / n)  # 0.00554: the normal approximation of the binomial's 95% interval
    assert low == pytest.approx(p - half, abs=0.1 * half) and high == pytest.approx(p + half, abs=0.1 * half)
    assert bootstrap_ci(hits) == (low, high)  # seeded: the same outcomes, the same interval
    assert bootstrap_ci(hits, seed=1) != (low, high) and BOOTSTRAP_RESAMPLES == 1000
    assert bootstrap_ci(np.ones(50)) == (1.0, 1.0)
    with pytest.raises(ValueError, match="no outcomes"):
        bootstrap_ci(np.zeros(0))


def test_bootstrap_of_a_small_set_is_wide():
    """Ten images at 70%: the interval spans tens of points (what a --limit 10 number is worth)."""
    low, high = bootstrap_ci(np.array([1, 1, 1, 0, 1, 0, 1, 1, 0, 1]))
    assert low < 0.5 and high > 0.9  # normal approximation: 0.7 ± 0.28


def test_ece_by_hand():
    conf = np.array([0.95, 0.97, 0.93, 0.62, 0.64, 0.30])
    hit = np.array([1, 1, 0, 1, 0, 0])
    # 15 bins of width 1/15: 0.95 and 0.97 fall in bin 14, 0.93 in 13, 0.62 and 0.64 in 9, 0.30 in 4
    by_hand = (2 * abs(1.0 - 0.96) + 1 * abs(0.0 - 0.93) + 2 * abs(0.5 - 0.63) + 1 * abs(0.0 - 0.30)) / 6
    assert expected_calibration_error(conf, hit) == pytest.approx(by_hand, abs=1e-12)  # 0.26167
    assert expected_calibration_error(np.full(10, 0.8), np.array([1] * 8 + [0] * 2)) == pytest.approx(0.0, abs=1e-12)
    # the same hits at confidence 1.0 (the last bin's closed upper edge): off by the error rate
    assert expected_calibration_error(np.ones(10), np.array([1] * 8 + [0] * 2)) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="3 confidences for 2 outcomes"):
        expected_calibration_error(np.ones(3), np.ones(2))
