"""Top-1 / top-5 (and ImageNet-ReaL) accuracy of a classifier on a labelled image dataset, with its 95% bootstrap
interval and expected calibration error (``vitzoo.evaluate.stats``); ``Scoring`` says how a protocol scores logits.

>>> from vitzoo.evaluate.data import image_folder
>>> from vitzoo.evaluate.accuracy import evaluate
>>> result = evaluate(model, weights.preprocess, image_folder("val/"))  # doctest: +SKIP
>>> result.top1, result.top5, result.images_per_s  # doctest: +SKIP

Library code: nothing is printed; progress goes to an optional ``progress(done, total)`` callback.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vitzoo.errors import VitzooError
from vitzoo.evaluate.data import Batch, ImageDataset, make_loader
from vitzoo.evaluate.imagenet import NUM_IMAGENET_CLASSES
from vitzoo.evaluate.stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    ECE_BINS,
    bootstrap_ci,
    expected_calibration_error,
)
from vitzoo.measure.records import EvalMetrics, Record, record
from vitzoo.zoo.preprocess import Preprocess, describe_preprocess

Progress = Callable[[int, int], None]  # (images done, total images)


@dataclass(frozen=True)
class RunOptions:
    """How batches are fed to the model."""

    batch_size: int = 32
    workers: int = 0  # DataLoader worker processes (0: load in the main process)


DEFAULT_RUN = RunOptions()


@dataclass(frozen=True)
class EvalResult:
    """Accuracy of a classifier on a dataset (percentages), with what was measured and how."""

    top1: float
    top5: float  # top-k with k = min(5, the head's classes)
    num_images: int  # images scored
    skipped: int  # files that could not be read
    seconds: float  # wall time, data loading included
    preprocess: Preprocess
    dataset: str
    num_classes: int
    real_top1: float | None = None  # ImageNet-ReaL top-1, over the images that have ReaL labels
    real_images: int = 0
    failures: tuple[tuple[str, str], ...] = ()  # (image key, reason) of the skipped files
    protocol: str | None = None  # imagenet, real, v2, a, r, sketch (vitzoo.evaluate.protocols); None: own classes
    real_top5: float | None = None
    top1_ci_low: float | None = None  # 95% bootstrap interval of the headline top-1 (vitzoo.evaluate.stats)
    top1_ci_high: float | None = None
    ece: float | None = None  # expected calibration error (%) of the headline top-1, 15 equal-width bins
    imagenet: bool = False  # the data's labels are ImageNet-1k's (a score comparable with the checkpoint's)

    @property
    def protocol_top1(self) -> float | None:
        """The top-1 the protocol reports: ReaL's under "real", else the labels'."""
        return self.real_top1 if self.protocol == "real" else self.top1

    @property
    def protocol_top5(self) -> float | None:
        return self.real_top5 if self.protocol == "real" else self.top5

    @property
    def protocol_images(self) -> int:
        """Images behind ``protocol_top1`` (under "real": those with a non-empty set of ReaL labels)."""
        return self.real_images if self.protocol == "real" else self.num_images

    @property
    def images_per_s(self) -> float:
        """End-to-end throughput (decoding, preprocessing and the model)."""
        return self.num_images / self.seconds if self.seconds > 0 else float("nan")

    def metrics(self) -> dict[str, Any]:
        """Flat, JSON-serialisable metrics (what the results store records)."""
        pp = asdict(self.preprocess)
        out = {k: v for k, v in asdict(self).items() if k not in ("preprocess", "failures")}
        out["images_per_s"] = self.images_per_s
        out |= {"protocol_top1": self.protocol_top1, "protocol_top5": self.protocol_top5,
                "protocol_images": self.protocol_images, "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
                "bootstrap_seed": BOOTSTRAP_SEED, "ece_bins": ECE_BINS}  # fmt: skip
        out["img_size"] = self.preprocess.img_size
        out["preprocess"] = describe_preprocess(self.preprocess)
        out |= {f"pp_{k}": (list(v) if isinstance(v, tuple) else v) for k, v in pp.items() if k != "img_size"}
        return out

    def record(self, model: str, *, env: dict[str, Any] | None = None, **run: Any) -> Record:
        """The typed record of this result for the results store (``ResultStore.save``): ``model`` names the
        checkpoint (``model.name``), ``run`` says how it ran (``limit``, ``device``, ``dtype``, ``batch_size``,
        ``workers``, ``weights_sha256``, ``set``: fields of ``vitzoo.measure.records.EvalMetrics``)."""
        metrics = {k: tuple(v) if isinstance(v, list) else v for k, v in self.metrics().items()}
        return record(EvalMetrics(**metrics, **run), model=model, env=env)


def model_num_classes(model: nn.Module) -> int:
    """Classes of a model's head (0 for a feature extractor)."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "num_classes"):
        return int(config.num_classes)
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        return head.out_features
    raise VitzooError(f"cannot tell the classes of {type(model).__name__}: it has no config and no Linear head")


def check_head(model: nn.Module | int, data: ImageDataset) -> None:
    """Raise a clear error when a head (a model, or its class count) cannot score the dataset's labels."""
    n, m = model if isinstance(model, int) else model_num_classes(model), data.num_classes
    if n == 0:
        raise VitzooError("the model has no classification head (num_classes=0); use `vitzoo fewshot` for features")
    if data.classes.by_index:  # folders named by class index: the head must have the largest one
        if n < m:
            raise VitzooError(f"the model's head has {n} classes but {data.description} has class index {m - 1}")
        return
    if n != m:
        hint = ""
        if m == NUM_IMAGENET_CLASSES and n > m:
            hint = " (an ImageNet-21k checkpoint: pick a tag fine-tuned on ImageNet-1k, see `vitzoo info NAME`)"
        raise VitzooError(f"the model's head has {n} classes but {data.description} has {m}{hint}")


def run_batches(
    model: nn.Module,
    preprocess: Preprocess,
    data: ImageDataset,
    forward: Callable[[torch.Tensor], torch.Tensor],
    options: RunOptions = DEFAULT_RUN,
    progress: Progress | None = None,
) -> Iterator[tuple[torch.Tensor, Batch]]:
    """``forward(images)`` over the dataset, preprocessed by ``preprocess``; yields (outputs, batch).

    Inputs follow the model's device and dtype; unreadable files end up in each batch's ``failures``.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.dtype.is_floating_point else torch.float32
    loader = make_loader(data.with_preprocess(preprocess), options.batch_size, options.workers)
    done, total = 0, len(data)
    with torch.inference_mode():
        for batch in loader:
            out = forward(batch.images.to(device, dtype)) if len(batch.labels) else torch.empty(0, 0)
            done += len(batch.labels) + len(batch.failures)
            yield out.float().cpu(), batch
            if progress is not None:
                progress(done, total)


RealLabels = dict[str, frozenset[int]]


def load_real_labels(path: str | os.PathLike) -> RealLabels:
    """ImageNet-ReaL labels (Beyer et al. 2020, "Are we done with ImageNet?"), keyed by image file stem.

    The official ``real.json`` is a list of 50,000 label lists for ``ILSVRC2012_val_00000001`` onwards;
    a JSON object ``{file name: [labels]}`` is accepted too, for other images.
    """
    p = Path(path).expanduser()
    try:
        raw = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VitzooError(f"cannot read ReaL labels {p}: {e}".splitlines()[0]) from None
    if isinstance(raw, list):
        items = [(f"ILSVRC2012_val_{i + 1:08d}", v) for i, v in enumerate(raw)]
    elif isinstance(raw, dict):
        items = [(Path(k).stem, v) for k, v in raw.items()]
    else:
        raise VitzooError(f"{p}: expected a JSON list or object of label lists")
    out: RealLabels = {}
    for key, labels in items:
        if not isinstance(labels, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in labels):
            raise VitzooError(f"{p}: the labels of {key} are not a list of class indices: {labels!r}")
        out[key] = frozenset(labels)
    return out


@dataclass(frozen=True)
class Scoring:
    """How logits are scored: the protocol (its name, for the record), the logit columns it keeps, ReaL labels.

    ``columns``: only these ImageNet-1k classes compete (ImageNet-A/-R score the 1000-way logits restricted to
    their 200 classes); labels stay ImageNet-1k indices. ``real_labels``: ReaL top-1/top-5 are counted too, and
    under protocol "real" they are the headline (its interval and calibration error are ReaL's).
    """

    protocol: str | None = None
    columns: tuple[int, ...] | None = None
    real_labels: RealLabels | None = None


PLAIN = Scoring()


def _empty(dtype: Any) -> np.ndarray:
    return np.zeros(0, dtype)


@dataclass(frozen=True, eq=False)  # the per-image arrays have no single truth value to compare by
class Counts:
    """What ``evaluate`` sums over batches (and what shards of a dataset would sum across processes).

    The per-image arrays (readable images, in dataset order) feed the bootstrap interval and the calibration
    error: ``hit`` (top-1 right), ``confidence`` (softmax probability of the top prediction over the scored
    classes) and ``real`` (ReaL top-1 right: 1, wrong: 0, no ReaL label: -1).
    """

    top1: int = 0  # images whose top prediction is the label
    top5: int = 0  # images whose label is among the top-k predictions
    real_hits: int = 0  # images with ReaL labels whose top prediction is one of them
    real_images: int = 0  # images with a non-empty set of ReaL labels
    failures: tuple[tuple[str, str], ...] = ()  # (image key, reason) of unreadable files
    real_top5: int = 0  # images with ReaL labels one of which is among the top-k predictions
    hit: np.ndarray = field(default_factory=lambda: _empty(bool))
    confidence: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    real: np.ndarray = field(default_factory=lambda: _empty(np.int8))

    def __add__(self, other: Counts) -> Counts:
        return Counts.join([self, other])

    @staticmethod
    def join(parts: Sequence[Counts]) -> Counts:
        """The counts of consecutive parts of a dataset (in dataset order), in one pass."""
        return Counts(
            sum(p.top1 for p in parts),
            sum(p.top5 for p in parts),
            sum(p.real_hits for p in parts),
            sum(p.real_images for p in parts),
            tuple(f for p in parts for f in p.failures),
            sum(p.real_top5 for p in parts),
            np.concatenate([_empty(bool), *(p.hit for p in parts)]),
            np.concatenate([_empty(np.float64), *(p.confidence for p in parts)]),
            np.concatenate([_empty(np.int8), *(p.real for p in parts)]),
        )

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Counts:
        """The inverse of ``dataclasses.asdict`` after a trip between processes (lists back to tuples)."""
        names = [f.name for f in fields(Counts)]
        d = {k: v for k, v in d.items() if k in names}
        return Counts(**{**d, "failures": tuple((key, reason) for key, reason in d["failures"])})


def score_batch(logits: torch.Tensor, batch: Batch, keys: Sequence[str], k: int, scoring: Scoring = PLAIN) -> Counts:
    """The counts of one batch: ``logits`` (B, classes) of its readable images; ``keys`` name the dataset's images."""
    failures = tuple((keys[i], reason) for i, reason in batch.failures)
    if not len(batch.labels):
        return Counts(failures=failures)
    if scoring.columns is not None:
        columns = torch.tensor(scoring.columns, dtype=torch.long)
        logits = logits[:, columns]
    pred = logits.topk(min(k, logits.shape[1]), dim=1).indices
    if scoring.columns is not None:
        pred = columns[pred]  # back to ImageNet-1k indices
    confidence = logits.double().softmax(dim=1).max(dim=1).values.numpy()
    hit = (pred[:, 0] == batch.labels).numpy()
    top5 = int((pred == batch.labels[:, None]).any(dim=1).sum())
    real = np.full(len(hit), -1, np.int8)
    real_top5 = 0
    if scoring.real_labels is not None:
        for j, (i, p) in enumerate(zip(batch.indices.tolist(), pred.tolist(), strict=True)):
            labels = scoring.real_labels.get(keys[i])
            if labels:
                real[j] = p[0] in labels
                real_top5 += any(q in labels for q in p)
    real_images = int((real >= 0).sum())
    return Counts(int(hit.sum()), top5, int((real == 1).sum()), real_images, failures, real_top5, hit, confidence, real)


def result_from_counts(
    counts: Counts,
    data: ImageDataset,
    preprocess: Preprocess,
    seconds: float,
    total: int | None = None,
    protocol: str | None = None,
) -> EvalResult:
    """Percentages from the counts over ``total`` images (default: all of ``data``), with the headline top-1's
    bootstrap interval and calibration error (ReaL's under protocol "real")."""
    n = (len(data) if total is None else total) - len(counts.failures)
    if n == 0:
        raise VitzooError(f"no readable image in {data.description} ({len(counts.failures)} files skipped)")
    hit, confidence = counts.hit.astype(np.float64), counts.confidence
    if protocol == "real":
        keep = counts.real >= 0
        hit, confidence = counts.real[keep].astype(np.float64), confidence[keep]
    ci = bootstrap_ci(hit) if len(hit) else None
    return EvalResult(
        top1=100.0 * counts.top1 / n,
        top5=100.0 * counts.top5 / n,
        num_images=n,
        skipped=len(counts.failures),
        seconds=seconds,
        preprocess=preprocess,
        dataset=data.description,
        num_classes=data.num_classes,
        real_top1=100.0 * counts.real_hits / counts.real_images if counts.real_images else None,
        real_images=counts.real_images,
        failures=counts.failures,
        protocol=protocol,
        real_top5=100.0 * counts.real_top5 / counts.real_images if counts.real_images else None,
        top1_ci_low=None if ci is None else 100.0 * ci[0],
        top1_ci_high=None if ci is None else 100.0 * ci[1],
        ece=100.0 * expected_calibration_error(confidence, hit) if len(hit) else None,
        imagenet=bool(getattr(data.classes, "imagenet", False)),
    )


def check_inputs(model: nn.Module, data: ImageDataset, scoring: Scoring = PLAIN) -> None:
    """Refuse, before any image is read, a head that cannot score ``data`` or ReaL labels that match no image."""
    check_head(model, data)
    if scoring.real_labels is not None and not any(k in scoring.real_labels for k in data.keys):
        raise VitzooError(f"none of the {len(data)} images has a ReaL label (labels are keyed by file name)")


def evaluate(
    model: nn.Module,
    preprocess: Preprocess,
    data: ImageDataset,
    *,
    options: RunOptions = DEFAULT_RUN,
    scoring: Scoring = PLAIN,
    progress: Progress | None = None,
) -> EvalResult:
    """Top-1/top-5 accuracy (%) of ``model`` on ``data`` preprocessed by ``preprocess``, scored by ``scoring``.

    With ReaL labels, also ReaL top-1/top-5: a prediction counts as correct when it is in the image's set of
    ReaL labels; images with an empty set (or no entry) are left out of that score, as its authors do.
    """
    check_inputs(model, data, scoring)
    start = time.perf_counter()
    counts = count_hits(model, preprocess, data, options=options, scoring=scoring, progress=progress)
    return result_from_counts(counts, data, preprocess, time.perf_counter() - start, protocol=scoring.protocol)


def count_hits(
    model: nn.Module,
    preprocess: Preprocess,
    data: ImageDataset,
    *,
    options: RunOptions = DEFAULT_RUN,
    scoring: Scoring = PLAIN,
    progress: Progress | None = None,
) -> Counts:
    """Top-1 / top-5 / ReaL hits of ``model`` over ``data`` (no checks: an empty or unreadable shard counts 0)."""
    k = 5  # top-5, or top-k with k = the head's classes when it has fewer
    parts = [
        score_batch(logits, batch, data.keys, k, scoring)
        for logits, batch in run_batches(model, preprocess, data, model, options, progress)
    ]
    return Counts.join(parts)
