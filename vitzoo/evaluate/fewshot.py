"""Few-shot linear evaluation as the ViT paper does it (Sec. 4.1, "few-shot accuracies").

Frozen pre-logit features of a few images per class are mapped to {-1, 1}^K one-hot targets by
closed-form L2-regularised least squares; the accuracy of that linear classifier is measured on the
other images. Details follow big_vision's ``fewshot_lsr`` evaluator: features are standardised with the
training images' mean and std (+1e-5), a constant feature of 100 carries the (almost unregularised) bias,
and the ridge strength is fixed (2^10 by default).

Every choice that involves chance comes from one seed, so results are reproducible.

``layer`` probes an intermediate block instead (the paper's Sec. 4.5 asks what each depth represents): block N's
output (timm's numbering, as ``forward_intermediates``: ViT encoder blocks from 0, negative from the end; BiT 0 the
root, 1.. the stages), pooled as the model pools its last block. A ViT's tokens go through the final LayerNorm
first, as the last block's do before the head, and are then pooled by the class token or the mean of all tokens
(GAP); the representation layer of the 2020 ImageNet-21k checkpoints is not applied (it was trained on the last
block only). A BiT map is average-pooled; only the last stage's goes through the final GroupNorm + ReLU (the only
one it fits). So ``layer=-1`` is the default features less the representation layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from vitzoo.errors import VitzooError
from vitzoo.evaluate.accuracy import DEFAULT_RUN, Progress, RunOptions, run_batches
from vitzoo.evaluate.data import ImageDataset
from vitzoo.measure.records import FewShotMetrics, Record, record
from vitzoo.zoo.checkpoint import label_of
from vitzoo.zoo.configs import BiTConfig, ModelConfig
from vitzoo.zoo.preprocess import Preprocess

BIAS_CONSTANT = 100.0
DEFAULT_L2_REG = 2.0**10


@dataclass(frozen=True)
class Features:
    """Pre-logit features of the readable images of a dataset."""

    x: np.ndarray  # (N, D) float64
    labels: np.ndarray  # (N,) int64
    num_classes: int
    failures: tuple[tuple[str, str], ...] = ()  # (image key, reason) of unreadable files


@dataclass(frozen=True)
class LinearProbe:
    """A least-squares linear classifier on standardised features."""

    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    weights: np.ndarray  # (D + 1, K), last row: bias (times BIAS_CONSTANT)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """(N, K) regression outputs; the predicted class is the argmax."""
        return _design(x, self.mean, self.std) @ self.weights

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(N,) predicted classes."""
        return self.scores(x).argmax(axis=1)


@dataclass(frozen=True)
class FewShotResult:
    """Accuracy (%) of the probe fitted on ``shots`` images per class."""

    shots: int
    accuracy: float
    train_images: int
    test_images: int


def _design(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    z = (np.asarray(x, dtype=np.float64) - mean) / std
    return np.concatenate([z, np.full((len(z), 1), BIAS_CONSTANT)], axis=1)


def fit_least_squares(x: np.ndarray, labels: np.ndarray, num_classes: int, l2_reg: float) -> LinearProbe:
    """Solve min_W |X W - Y|^2 + l2_reg |W|^2 for Y in {-1, 1}^K, in closed form.

    X is the standardised features plus the bias column. With N >= D the normal equations
    (X^T X + l2 I)^-1 X^T Y are solved; otherwise the dual form X^T (X X^T + l2 I)^-1 Y (same solution).
    """
    if l2_reg <= 0:
        raise VitzooError(f"l2_reg must be positive, not {l2_reg}")
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-5
    X = _design(x, mean, std)
    Y = 2.0 * np.eye(num_classes)[np.asarray(labels)] - 1.0
    n, d = X.shape
    if n >= d:
        W = np.linalg.solve(X.T @ X + l2_reg * np.eye(d), X.T @ Y)
    else:
        W = X.T @ np.linalg.solve(X @ X.T + l2_reg * np.eye(n), Y)
    return LinearProbe(mean, std, W)


def check_shots(labels: Sequence[int] | np.ndarray, shots: Sequence[int]) -> None:
    """Raise what ``fewshot_accuracy`` would on these labels, before any feature is extracted.

    Needs at least two classes, and more than ``max(shots)`` images in every class (the rest are the test set).
    """
    if not shots or min(shots) <= 0:
        raise VitzooError(f"shots must be positive integers, not {list(shots)}")
    counts = np.unique(np.asarray(labels), return_counts=True)[1]
    if len(counts) < 2:
        raise VitzooError("few-shot evaluation needs images of at least two classes")
    top = max(shots)
    if counts.min() <= top:
        raise VitzooError(f"a class has {counts.min()} images; {top} shots need at least {top + 1} per class")


def split_shots(labels: np.ndarray, shots: Sequence[int], seed: int) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Training indices for each shot count, and one test set shared by all of them.

    Each class's images are shuffled once (by ``seed``); ``k`` shots take the first ``k`` of them (so the
    training sets are nested), and the test set is every image not among the first ``max(shots)``.
    """
    if not shots or min(shots) <= 0:
        raise VitzooError(f"shots must be positive integers, not {list(shots)}")
    rng = np.random.default_rng(seed)
    top = max(shots)
    per_class = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) <= top:
            raise VitzooError(f"a class has {len(idx)} images; {top} shots need at least {top + 1} per class")
        per_class.append(idx)
    train = {k: np.sort(np.concatenate([idx[:k] for idx in per_class])) for k in sorted(set(shots))}
    test = np.sort(np.concatenate([idx[top:] for idx in per_class]))
    return train, test


def fewshot_accuracy(
    features: Features, shots: Sequence[int], *, seed: int = 0, l2_reg: float = DEFAULT_L2_REG
) -> list[FewShotResult]:
    """Few-shot accuracy for each shot count on precomputed features."""
    present, y = np.unique(features.labels, return_inverse=True)  # targets only for the classes present
    if len(present) < 2:
        raise VitzooError("few-shot evaluation needs images of at least two classes")
    train, test = split_shots(y, shots, seed)
    out = []
    for k, idx in train.items():
        probe = fit_least_squares(features.x[idx], y[idx], len(present), l2_reg)
        hits = probe.predict(features.x[test]) == y[test]
        out.append(FewShotResult(k, 100.0 * float(hits.mean()), len(idx), len(test)))
    return out


def fewshot_record(model: str, results: Sequence[FewShotResult], *, env: dict[str, Any] | None = None,
                   **run: Any) -> Record:  # fmt: skip
    """The typed record of a few-shot run for the results store (``ResultStore.save``): accuracy per shot count,
    and ``run``, how it ran (``dataset``, ``seed``, ``l2_reg``, ``classes``, ...: fields of
    ``vitzoo.measure.records.FewShotMetrics``)."""
    return record(FewShotMetrics(shots={str(r.shots): r.accuracy for r in results}, **run), model=model, env=env)


def pre_logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The frozen representation the head sees (after ViT's pre_logits layer or BiT's pooling)."""
    return model.forward_head(model.forward_features(images), pre_logits=True)


def feature_blocks(config: ModelConfig) -> int:
    """How many blocks ``layer`` can name: a ViT's encoder blocks, or BiT's root plus its stages."""
    return len(config.layers) + 1 if isinstance(config, BiTConfig) else config.depth


def check_layer(config: ModelConfig, layer: int, name: str) -> None:
    """VitzooError (one line) unless ``layer`` names a block of the model (negative counts from the end)."""
    n = feature_blocks(config)
    if not -n <= layer < n:
        what = "its root (0) and stages (1 to" if isinstance(config, BiTConfig) else "encoder blocks (0 to"
        raise VitzooError(f"layer {layer} does not exist: {name} has {what} {n - 1}; -1 is the last)")


def check_layer_of(source: str | nn.Module, layer: int | None) -> None:
    """``check_layer`` for a loaded model, or a registry name from its config alone (nothing downloaded; a file
    name passes: check it once loaded). Nothing to check for ``layer=None``."""
    from vitzoo.weights.loading import is_path
    from vitzoo.zoo.lookup import resolve_config

    if layer is None:
        return
    if isinstance(source, nn.Module):
        check_layer(source.config, layer, getattr(source, "name", "the model"))
    elif not is_path(source):
        check_layer(resolve_config(source)[2], layer, source)


def layer_features(model: nn.Module, images: torch.Tensor, layer: int) -> torch.Tensor:
    """Block ``layer``'s output, normed and pooled as the model pools its last block (see the module docstring)."""
    if isinstance(model.config, BiTConfig):
        [fmap] = model.forward_intermediates(images, [layer], norm=True, stop_early=True, intermediates_only=True)
        return fmap.mean(dim=(2, 3))
    [out] = model.forward_intermediates(images, [layer], return_prefix_tokens=True, norm=True, stop_early=True,
                                        output_fmt="NLC", intermediates_only=True)  # fmt: skip
    return out[1][:, 0] if model.config.classifier == "token" else out.mean(dim=1)


def extract_features(
    model: nn.Module,
    preprocess: Preprocess,
    data: ImageDataset,
    *,
    options: RunOptions = DEFAULT_RUN,
    progress: Progress | None = None,
    allow_empty: bool = False,
    layer: int | None = None,
) -> Features:
    """Pre-logit features of every readable image of ``data`` (``allow_empty``: no error if there is none), or
    block ``layer``'s pooled output (``layer_features``)."""
    if layer is not None:
        check_layer(model.config, layer, label_of(model, "the model"))

    def features(x: torch.Tensor) -> torch.Tensor:
        return pre_logits(model, x) if layer is None else layer_features(model, x, layer)

    xs, ys, failures = [], [], []
    for out, batch in run_batches(model, preprocess, data, features, options, progress):
        failures += [(data.keys[i], reason) for i, reason in batch.failures]
        if len(batch.labels):
            xs.append(out.double().numpy())
            ys.append(batch.labels.numpy())
    if not xs:
        if allow_empty:  # a shard of a larger dataset; the caller checks the whole
            return Features(np.zeros((0, 0)), np.zeros(0, dtype=np.int64), data.num_classes, tuple(failures))
        raise VitzooError(f"no readable image in {data.description}")
    return Features(np.concatenate(xs), np.concatenate(ys), data.num_classes, tuple(failures))
