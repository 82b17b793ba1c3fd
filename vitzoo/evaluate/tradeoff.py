"""The compute-vs-accuracy trade-off: params, GMACs, measured throughput and top-1, per checkpoint.

Compute comes from the closed-form counts of ``vitzoo.zoo.analytic`` at each checkpoint's evaluation resolution;
throughput from the results store (``vitzoo bench``) for one device and dtype; accuracy is on one set (``dataset``:
ImageNet-1k by default, or ReaL, V2, Sketch, A, R): the user's own measurement (``vitzoo eval`` of that set, its
protocol recorded, all of it, with the checkpoint's resolution, crop and resize, in that dtype; latest run) when
there is one, otherwise the number reported for the checkpoint: the registry's for ImageNet-1k, timm's published
evaluation of its timm file for the other sets (``vitzoo.zoo.timm_results``). Rows that no other row beats on both
accuracy and cost are marked Pareto-optimal, once for GMACs (lower is better) and once for throughput (higher is
better).

int8 (the deployment matrix of ``vitzoo bench --dtype int8``): the throughput is that of the fastest int8 cell not
marked degraded (its top-1 within 99% of fp32's), and the accuracy is the fp32 one, which such a cell keeps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from vitzoo.errors import VitzooError
from vitzoo.measure.records import EvalMetrics, Record
from vitzoo.zoo.analytic import count_macs, count_params
from vitzoo.zoo.catalog import REGISTRY
from vitzoo.zoo.checkpoint import Checkpoint
from vitzoo.zoo.configs import Family
from vitzoo.zoo.lookup import refuse_file, resolve, resolve_one
from vitzoo.zoo.preprocess import Preprocess
from vitzoo.zoo.timm_results import DATASETS, TIMM_FILES, timm_results

if TYPE_CHECKING:
    from vitzoo.measure.store import ResultStore

AccuracyKind = Literal["measured", "reported"]
TagChoice = Literal["default", "all"]  # per architecture: its default checkpoint, or every checkpoint
OK_STATUS = (None, "ok")  # None: a row from before bench recorded a status
DATASET_TITLES = {"imagenet": "ImageNet-1k", "real": "ImageNet-ReaL", "v2": "ImageNet-V2", "sketch": "ImageNet-Sketch",
                  "a": "ImageNet-A", "r": "ImageNet-R"}  # fmt: skip


@dataclass(frozen=True)
class TradeoffRow:
    """One checkpoint in the trade-off."""

    model: str  # arch.tag
    family: Family
    title: str  # the paper's name, e.g. "ViT-B/16"
    img_size: int
    params: int
    gmacs: float  # per image, at img_size
    top1: float | None  # top-1 (%) on ``dataset``
    top1_kind: AccuracyKind | None  # measured by the user, or reported for the checkpoint
    top1_source: str | None
    throughput: float | None = None  # images/s from the store, for the chosen device and dtype
    pareto_gmacs: bool = False
    pareto_throughput: bool = False
    dataset: str = "imagenet"  # the set of the accuracy (vitzoo.zoo.timm_results.DATASETS)

    def as_dict(self) -> dict[str, Any]:
        """Plain data, in column order."""
        return asdict(self)


def pareto_front(
    costs: Sequence[float], accuracies: Sequence[float], *, higher_cost_better: bool = False
) -> list[bool]:
    """Which points are Pareto-optimal: no other point has accuracy >= and cost <= (strictly better in one).

    With ``higher_cost_better`` (throughput), "cost" is maximised instead. NaN points are never optimal.
    """
    sign = -1.0 if higher_cost_better else 1.0
    pts = [(sign * c, a) for c, a in zip(costs, accuracies, strict=True)]
    out = []
    for i, (c, a) in enumerate(pts):
        if math.isnan(c) or math.isnan(a):
            out.append(False)
            continue
        dominated = any(
            j != i and c2 <= c and a2 >= a and (c2 < c or a2 > a)
            for j, (c2, a2) in enumerate(pts)
            if not (math.isnan(c2) or math.isnan(a2))
        )
        out.append(not dominated)
    return out


def resolve_names(names: Sequence[str], tags: TagChoice = "default") -> list[str]:
    """``arch``, ``arch.tag`` or shell patterns over architectures -> full ``arch.tag`` names.

    No names: every architecture with a reported ImageNet-1k accuracy. ``tags="all"`` expands each
    architecture named without a tag to every one of its checkpoints instead of its default one.
    """
    out: list[str] = []
    if not names:
        for spec in REGISTRY.listed():
            chosen = spec.weights if tags == "all" else [spec.get_weights()]
            out += [c.name for w in chosen if w is not None and (c := Checkpoint.of(spec, w)).accuracy is not None]
        return out
    for name in names:
        for checkpoint in resolve(name):
            measure = f"measure a file with `vitzoo bench {name}` and `vitzoo eval {name}`"
            refuse_file(checkpoint, "tradeoff", measure)  # it compares the accuracies of catalogue entries
            if checkpoint.tag is None:
                raise VitzooError(f"{checkpoint.name} has no checkpoint to compare")
            spec, _ = REGISTRY.entry(checkpoint.arch, None)  # type: ignore[arg-type]
            all_tags = tags == "all" and "." not in name
            for full in [Checkpoint.of(spec, w).name for w in spec.weights] if all_tags else [checkpoint.name]:
                if full not in out:
                    out.append(full)
    return out


def _same_evaluation(m: EvalMetrics, pp: Preprocess, dtype: str) -> bool:
    """Whether a stored eval ``m`` measured the checkpoint as its row does: resolution, crop and dtype.

    ``img_size`` must match; the preprocessing (crop, resize, interpolation) must match where recorded; a run
    without a dtype counts as fp32 (``EvalMetrics``' default).
    """
    if m.img_size != pp.img_size or m.dtype != dtype:
        return False
    crop = m.pp_crop_pct
    if crop is not None and not (isinstance(crop, (int, float)) and math.isclose(crop, pp.crop_pct, abs_tol=1e-9)):
        return False
    return m.pp_resize in (None, pp.resize) and m.pp_interpolation in (None, pp.interpolation)


def measured_accuracy(
    store: ResultStore, model: str, dtype: str = "fp32", dataset: str = "imagenet"
) -> tuple[float, str] | None:
    """The latest full ``vitzoo eval`` of checkpoint ``model`` (``arch.tag``) on ``dataset``: (top-1, description).

    Only runs of that set's protocol on ImageNet-1k labels, without ``--limit``, that evaluated the checkpoint as
    its registry row says count (``_same_evaluation``): a 384-px or a centre-cropped run of a 224 checkpoint, or a
    bf16 run when ``dtype`` is fp32, is another measurement.
    """
    checkpoint = resolve_one(model)
    assert checkpoint.preprocess is not None
    runs = [
        r
        for r in store.load(kind="eval", model=_escape(model))
        if isinstance(r.metrics, EvalMetrics)
        and r.metrics.full_run
        and r.metrics.top1_on(dataset) is not None
        and _same_evaluation(r.metrics, checkpoint.preprocess, dtype)
    ]
    if not runs:
        return None
    last = runs[-1]
    m = last.metrics
    when = (last.created or "")[:10]
    return float(m.top1_on(dataset)), f"vitzoo eval {when}, {m.images_on(dataset)} images, {dtype}"


def reported_accuracy(weights: Any, dataset: str = "imagenet") -> tuple[float, str] | None:
    """The published top-1 of a checkpoint on ``dataset`` and its source: the registry's first accuracy for
    ImageNet-1k, timm's evaluation of its timm file for the other sets."""
    if dataset == "imagenet":
        return None if weights.accuracy is None else (weights.accuracy.top1, weights.accuracy.source)
    published = timm_results(weights).get(dataset)
    return None if published is None else (published[0], f"timm eval ({TIMM_FILES[dataset]})")


def measured_throughput(
    store: ResultStore, model: str, device: str, dtype: str, backend: str = "torch"
) -> float | None:
    """The best images/s of checkpoint ``model`` (``arch.tag``) among successful ``vitzoo bench`` runs.

    Runs count when they were on ``device`` (``cuda`` matches ``cuda:0``) in ``dtype`` at the checkpoint's
    resolution with ``backend`` (torch, onnxruntime, ...; rows from before backends existed are torch),
    recorded under ``arch.tag`` or, for the default tag, under ``arch``.
    """
    checkpoint = resolve_one(model)
    assert checkpoint.arch is not None and checkpoint.config is not None
    img_size = checkpoint.config.img_size
    names = {model, checkpoint.name} | (
        {checkpoint.arch} if resolve_one(checkpoint.arch).name == checkpoint.name else set()
    )
    best = None
    for r in store.load(kind="bench", model=f"{_escape(checkpoint.arch)}*"):
        m = r.metrics
        if r.model not in names or m.status not in OK_STATUS or (m.dtype or dtype) != dtype:
            continue
        if getattr(m, "degraded", None):  # a matrix cell below MLPerf's 99% rule: fast, but not the model's answers
            continue
        if (m.backend or "torch") != backend:
            continue
        recorded = str(getattr(m, "device", None) or device)  # a matrix cell (CPU) names no device
        if (recorded if ":" in device else recorded.split(":")[0]) != device:
            continue
        if (m.img_size or img_size) != img_size:
            continue
        if r.ranks > 1:  # a data-parallel aggregate over several processes, not one device's speed
            continue
        value = _throughput(r)
        if value is not None and math.isfinite(value) and (best is None or value > best):
            best = float(value)
    return best


def _throughput(r: Record) -> float | None:
    """Images/s of a bench record: ``img_per_s`` (rows of the first releases called it ``throughput``)."""
    value = r.metrics.img_per_s if r.metrics.img_per_s is not None else r.extra.get("throughput")
    return float(value) if isinstance(value, (int, float)) else None


def _escape(name: str) -> str:
    """A model name as an exact fnmatch pattern."""
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in name)


def build_tradeoff(
    names: Sequence[str] = (),
    *,
    store: ResultStore | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
    tags: TagChoice = "default",
    backend: str = "torch",
    dataset: str = "imagenet",
) -> list[TradeoffRow]:
    """The trade-off rows of ``names`` (see ``resolve_names``; ``tags="all"``: every checkpoint of each
    architecture), sorted by GMACs, Pareto flags set.

    Accuracy is on ``dataset`` (one of ``DATASETS``). Without a store, accuracy is the reported one and
    throughput is missing. Checkpoints without an accuracy on the set are left out unless named explicitly
    (``arch.tag``, or ``arch`` for its default).
    """
    if dataset not in DATASETS:
        raise VitzooError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    rows = []
    explicit = set(resolve_names(names)) if names else set()
    for full in resolve_names(names, tags):
        checkpoint = resolve_one(full)
        spec, weights = REGISTRY.entry(checkpoint.arch, checkpoint.tag)  # type: ignore[arg-type]
        assert weights is not None and checkpoint.config is not None
        config = checkpoint.config
        top1 = kind = source = None
        accuracy_dtype = "fp32" if dtype == "int8" else dtype  # int8 cells count only while within 99% of fp32
        measured = None if store is None else measured_accuracy(store, full, accuracy_dtype, dataset)
        reported = reported_accuracy(weights, dataset)
        if measured is not None:
            (top1, source), kind = measured, "measured"
        elif reported is not None:
            (top1, source), kind = reported, "reported"
        if top1 is None and full not in explicit:
            continue
        tput = None if store is None else measured_throughput(store, full, device, dtype, backend)
        rows.append(
            TradeoffRow(
                full, spec.family, spec.title or spec.name, weights.img_size, count_params(config),
                count_macs(config) / 1e9, top1, kind, source, tput, dataset=dataset,
            )
        )  # fmt: skip
    rows.sort(key=lambda r: r.gmacs)
    nan = float("nan")
    acc = [nan if r.top1 is None else r.top1 for r in rows]
    by_macs = pareto_front([r.gmacs for r in rows], acc)
    by_tput = pareto_front([nan if r.throughput is None else r.throughput for r in rows], acc, higher_cost_better=True)
    return [replace(r, pareto_gmacs=pm, pareto_throughput=pt) for r, pm, pt in zip(rows, by_macs, by_tput, strict=True)]
