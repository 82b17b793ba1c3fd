"""vitzoo.measure.fidelity: logit errors, top-1 agreement and accuracy against plain Python loops, and the 99% rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vitzoo.measure.fidelity import compare, degraded_why


def _by_hand(ref: np.ndarray, got: np.ndarray, labels: list[int] | None) -> dict:
    """The same numbers with loops over Python floats (first maximum on ties)."""
    errors = [abs(float(g) - float(r)) for rr, gg in zip(ref, got, strict=True) for r, g in zip(rr, gg, strict=True)]
    argmax = lambda row: max(range(len(row)), key=lambda i: (float(row[i]), -i))  # noqa: E731
    agree = sum(argmax(r) == argmax(g) for r, g in zip(ref, got, strict=True)) / len(ref)
    out = {"max": max(errors), "mean": math.fsum(errors) / len(errors), "agree": agree}
    if labels is not None:
        out["acc"] = sum(argmax(g) == y for g, y in zip(got, labels, strict=True)) / len(ref)
        out["ref_acc"] = sum(argmax(r) == y for r, y in zip(ref, labels, strict=True)) / len(ref)
    return out


def test_numbers_equal_an_independent_computation():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((50, 7)).astype(np.float32)
    got = (ref + rng.normal(0, 0.3, ref.shape)).astype(np.float32)
    labels = rng.integers(0, 7, 50).tolist()
    fid = compare(ref, got, np.asarray(labels))
    want = _by_hand(ref, got, labels)
    assert fid.images == 50
    assert fid.max_abs_err == pytest.approx(want["max"], rel=1e-12)
    assert fid.mean_abs_err == pytest.approx(want["mean"], rel=1e-12)
    assert fid.top1_agreement == want["agree"] and 0 < fid.top1_agreement < 1
    assert fid.top1_accuracy == want["acc"] and fid.ref_top1_accuracy == want["ref_acc"]


def test_identical_logits_agree_fully_and_ties_take_the_first_class():
    ref = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]], dtype=np.float32)
    fid = compare(ref, ref.copy())
    assert (fid.max_abs_err, fid.mean_abs_err, fid.top1_agreement, fid.degraded) == (0.0, 0.0, 1.0, False)
    assert fid.top1_accuracy is None and fid.degraded_why is None


def test_the_99_percent_rule():
    ref = np.eye(100, 5, dtype=np.float32)[np.arange(100) % 5] * 3  # class i % 5 wins
    one_off = ref.copy()
    one_off[0] = [0, 0, 0, 0, 3]  # 99 of 100 agree: exactly 99%, not degraded
    assert not compare(ref, one_off).degraded
    two_off = one_off.copy()
    two_off[1] = [0, 0, 0, 0, 3]
    fid = compare(ref, two_off)
    assert fid.degraded and fid.degraded_why == "top-1 agreement with fp32 98.0% < 99%"
    labels = np.arange(100) % 5  # fp32 is right on all 100; two wrong is 98% < 99% of 100%
    assert compare(ref, two_off, labels).degraded
    labels[:2] = 4  # the two changed answers are the right ones: accuracy above fp32's, agreement 98%
    fid = compare(ref, two_off, labels)
    assert not fid.degraded and fid.top1_accuracy == 1.0 and fid.ref_top1_accuracy == 0.98


def test_degraded_why_uses_accuracy_with_labels_and_agreement_without():
    assert degraded_why(0.5, 0.792, 0.8) is None  # 0.792 = 99% of 0.8
    assert degraded_why(1.0, 0.79, 0.8) == "top-1 accuracy 79.0% < 99% of fp32's 80.0%"
    assert degraded_why(0.5, 0.0, 0.0) == "top-1 agreement with fp32 50.0% < 99%"  # no fp32 accuracy to keep
    assert degraded_why(0.995) is None


def test_non_finite_logits_are_degraded_and_bad_shapes_refused():
    ref = np.ones((2, 3), dtype=np.float32)
    got = ref.copy()
    got[1, 2] = np.nan
    fid = compare(ref, got)
    assert fid.degraded and fid.degraded_why == "non-finite logits" and math.isnan(fid.max_abs_err)
    with pytest.raises(ValueError, match="one shape"):
        compare(ref, np.ones((2, 4)))
    with pytest.raises(ValueError, match="labels"):
        compare(ref, ref, np.array([1]))
