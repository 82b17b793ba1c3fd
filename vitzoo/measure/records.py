"""Typed records of the results store: a kind, a schema version, typed metrics and the environment (no torch).

A ``Record`` is what the library returns and the store keeps: ``record(result)`` wraps a ``BenchResult``,
``MatrixResult`` (a deployment-matrix cell), ``FlopCount``, ``GemmPeak``, ``EvalMetrics`` or ``FewShotMetrics``;
``ResultStore.save(record)`` appends it and ``ResultStore.load(kind=..., model=...)`` reads them back, typed.

The SQLite layout is the one earlier releases wrote (``vitzoo.measure.store``: kind, model, metrics JSON, env
JSON), so their databases read without a migration and they read ours. Metrics written by this module carry
``"schema": RECORD_SCHEMA``; rows without it are schema 1 (before typed records). Fields a row has and its typed
metrics do not name (older or newer releases, a data-parallel row's ``per_rank``) are kept in ``Record.extra``;
fields a row lacks take the dataclass default, ``None`` where the release that wrote it did not record them.
How each kind is laid out in the table:

- ``bench``: a ``BenchResult`` (inference, ``mode="train"``, data-parallel aggregates with ``ranks`` in ``extra``),
  or a ``MatrixResult`` when the environment says ``mode="matrix"``;
- ``peak``: a ``GemmPeak``, stored as the ``bench`` row of model ``"gemm-peak"`` earlier releases wrote (so
  ``results compare`` of an older vitzoo still finds it); such old rows read as peak records;
- ``flops``: a ``FlopCount``; ``eval``: an ``EvalMetrics``; ``fewshot``: a ``FewShotMetrics``.

>>> from vitzoo.measure.store import ResultStore
>>> store = ResultStore("/tmp/results.sqlite")
>>> store.save(record(bench_models(["vit-s16"], options)[0]))  # doctest: +SKIP
>>> [r.metrics.img_per_s for r in store.load(kind="bench", model="vit-s16")]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from vitzoo.errors import ConfigError
from vitzoo.measure.results import BenchResult, FlopCount, GemmPeak, MatrixResult

__all__ = ["KINDS", "PEAK_MODEL", "RECORD_SCHEMA", "EvalMetrics", "FewShotMetrics", "Metrics", "Record",
           "bench_row_record", "load_records", "record"]  # fmt: skip

RECORD_SCHEMA = 2  # 1: the untyped dicts of releases before typed records
KINDS = ("bench", "flops", "eval", "fewshot", "peak")
Kind = Literal["bench", "flops", "eval", "fewshot", "peak"]
PEAK_MODEL = "gemm-peak"  # the model column of a peak row (what earlier releases wrote)
_DERIVED = {"gmacs", "gflops", "agree", "gmacs_closed_form", "schema"}  # computed from other fields, not stored input


@dataclass(frozen=True)
class EvalMetrics:
    """One ``vitzoo eval`` result as stored: ``EvalResult.metrics()`` (``vitzoo.evaluate.accuracy``) and how the
    run was made. Percentages; ``None``: not measured, or not recorded by the release that wrote the row."""

    top1: float | None = None
    top5: float | None = None
    num_images: int | None = None
    skipped: int | None = None
    seconds: float | None = None
    dataset: str | None = None  # a description of the data
    num_classes: int | None = None
    real_top1: float | None = None
    real_top5: float | None = None
    real_images: int | None = None
    protocol: str | None = None  # imagenet, real, v2, a, r, sketch; None: classes of its own (or an old row)
    protocol_top1: float | None = None
    protocol_top5: float | None = None
    protocol_images: int | None = None
    top1_ci_low: float | None = None  # 95% bootstrap interval of the protocol's top-1
    top1_ci_high: float | None = None
    bootstrap_resamples: int | None = None
    bootstrap_seed: int | None = None
    ece: float | None = None  # expected calibration error (%), ``ece_bins`` equal-width bins
    ece_bins: int | None = None
    images_per_s: float | None = None
    img_size: int | None = None
    preprocess: str | None = None  # one line (vitzoo.zoo.preprocess.describe_preprocess)
    pp_resize: str | None = None
    pp_crop_pct: float | None = None
    pp_interpolation: str | None = None
    pp_mean: tuple[float, ...] | None = None
    pp_std: tuple[float, ...] | None = None
    set: str | None = None  # the set's name (its folder, or the Hugging Face dataset and split)
    imagenet: bool = False  # the labels are ImageNet-1k's (a score comparable with the checkpoint's)
    limit: int | None = None  # --limit: a quick look on N images, not the full set
    device: str | None = None
    dtype: str = "fp32"  # rows from before dtypes were recorded ran fp32
    batch_size: int | None = None
    workers: int | None = None
    weights_sha256: str | None = None

    @property
    def full_run(self) -> bool:
        """A run of the whole set (no ``--limit``) on ImageNet-1k labels: what a checkpoint's accuracy means."""
        return self.imagenet and self.limit is None

    def top1_on(self, dataset: str) -> float | None:
        """The top-1 this run measured on ``dataset`` (a protocol name), or None when it measured another set.

        Rows from before protocols were recorded count as ImageNet-1k; ReaL is also the ``--real-labels`` score of
        an ImageNet-1k run."""
        protocol = self.protocol or "imagenet"
        if dataset == "real" and protocol in ("real", "imagenet"):
            return self.real_top1
        return self.top1 if protocol == dataset else None

    def images_on(self, dataset: str) -> int | None:
        return self.real_images if dataset == "real" else self.num_images


@dataclass(frozen=True)
class FewShotMetrics:
    """One ``vitzoo fewshot`` run as stored: accuracy (%) per shot count and how it was made."""

    shots: Mapping[str, float] = field(default_factory=dict)  # "10" -> accuracy %
    dataset: str | None = None
    seed: int | None = None
    l2_reg: float | None = None
    classes: int | None = None
    num_images: int | None = None
    skipped: int | None = None
    img_size: int | None = None
    preprocess: str | None = None
    limit: int | None = None
    device: str | None = None
    dtype: str = "fp32"
    layer: int | None = None  # the probed block; None: the pre-logits
    weights_sha256: str | None = None


Metrics = Union[BenchResult, MatrixResult, FlopCount, GemmPeak, EvalMetrics, FewShotMetrics]  # noqa: UP007


@dataclass(frozen=True)
class Record:
    """One result: its kind, the model it measured, typed metrics, the environment and the schema it was written
    with. ``id`` and ``created`` are set when it comes from a store."""

    kind: Kind
    model: str
    metrics: Metrics
    env: Mapping[str, Any] = field(default_factory=dict)  # vitzoo.measure.env.environment(); empty: this machine's
    extra: Mapping[str, Any] = field(default_factory=dict)  # stored fields the typed metrics do not name
    schema: int = RECORD_SCHEMA  # the layout it was read in (saving writes RECORD_SCHEMA's)
    id: int | None = None
    created: str | None = None  # UTC, ISO 8601

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"result kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"model must be a non-empty string, not {self.model!r}")

    @property
    def ranks(self) -> int:
        """Processes a bench row aggregates (a data-parallel run over several ranks); 1 for one process."""
        return int(self.extra.get("ranks") or 1)

    @property
    def sweep(self) -> bool:
        """A bench row measured by one rank of a ``--sweep`` launch."""
        return bool(self.extra.get("sweep"))

    def stored(self) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
        """(kind column, model column, metrics JSON, env JSON) as the SQLite table holds them."""
        m = self.metrics
        if isinstance(m, GemmPeak):
            metrics = m.as_dict()
        elif isinstance(m, FlopCount):
            metrics = {k: v for k, v in m.as_dict().items() if k != "model"}
            metrics["gmacs_closed_form"] = m.macs_closed_form / 1e9
        elif isinstance(m, (BenchResult, MatrixResult)):
            metrics = {k: v for k, v in m.as_dict().items() if k != "model"}
        else:
            metrics = dataclasses.asdict(m)
        metrics = {**self.extra, **metrics, "schema": RECORD_SCHEMA}  # written in this release's layout
        env = dict(self.env)
        if isinstance(m, MatrixResult):
            env["mode"] = "matrix"
        if self.kind == "peak":
            return "bench", PEAK_MODEL, metrics, env
        return self.kind, self.model, metrics, env

    @classmethod
    def from_stored(cls, row: Mapping[str, Any]) -> Record:
        """A row as ``ResultStore.records`` returns it (id, created, kind, model, metrics, env), of any release."""
        kind, model, metrics, env = row["kind"], row["model"], dict(row["metrics"]), dict(row["env"])
        schema = int(metrics.pop("schema", 1) or 1)
        if kind == "bench" and model == PEAK_MODEL:
            kind = "peak"
        if kind == "peak":
            typed, extra = _peak(metrics)
        elif kind == "bench":
            result_type = MatrixResult if env.get("mode") == "matrix" else BenchResult
            typed, extra = _typed(result_type, {"model": model, **metrics})
        elif kind == "flops":
            typed, extra = _typed(FlopCount, {"model": model, **metrics})
        else:
            typed, extra = _typed(EvalMetrics if kind == "eval" else FewShotMetrics, metrics)
        return cls(kind, model, typed, env, extra, schema, row.get("id"), row.get("created"))


def _typed(cls: type, data: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``cls`` built from the fields of ``data`` it names (lists become tuples; a required field the row lacks is
    None), and the rest of ``data``."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, f in names.items():
        if name in data:
            value = data[name]
            kwargs[name] = tuple(value) if isinstance(value, list) and "tuple" in str(f.type) else value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs[name] = None
    extra = {k: v for k, v in data.items() if k not in names and k not in _DERIVED}
    return cls(**kwargs), extra


def _peak(m: dict[str, Any]) -> tuple[GemmPeak, dict[str, Any]]:
    rows = tuple(
        (r.get("kernel"), r.get("M"), r.get("K"), r.get("N"), r.get("tflops"))
        for r in m.get("results") or ()
        if isinstance(r, Mapping)
    )
    known = {"device", "dtype", "threads", "peak_tflops", "results"}
    peak = GemmPeak(m.get("device"), m.get("dtype"), m.get("threads"), m.get("peak_tflops"), rows)
    return peak, {k: v for k, v in m.items() if k not in known}


def load_records(rows_of: Callable[[str | None, str | None], list[Any]], kind: str | None = None,
                 model: str | None = None) -> list[Record]:  # fmt: skip
    """Typed records of ``kind`` (``"peak"`` included) whose model matches the shell pattern ``model``, from
    ``rows_of(kind, model)``, a reader of raw rows (``ResultStore.records``)."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"result kind must be one of {', '.join(KINDS)}, not {kind!r}")
    rows = rows_of("bench", PEAK_MODEL) if kind == "peak" else rows_of(kind, model)
    out = [Record.from_stored(r) for r in rows]
    return out if kind is None else [r for r in out if r.kind == kind]


def bench_row_record(model: str, metrics: Mapping[str, Any], env: Mapping[str, Any] | None = None) -> Record:
    """The record of a bench row given as plain data (``vitzoo.parallel.sharded``'s data-parallel aggregates and
    sweep rows): a ``BenchResult``, with what it adds (``ranks``, ``rank_img_per_s``, ``per_rank``, ...) in
    ``extra``."""
    typed, extra = _typed(BenchResult, {**metrics, "model": model})
    return Record("bench", model, typed, dict(env or {}), extra)


def record(result: Metrics, *, model: str | None = None, env: Mapping[str, Any] | None = None, **extra: Any) -> Record:
    """The record of a library result: its kind from its type, its model from the result (``model=`` for
    ``EvalMetrics`` and ``FewShotMetrics``, which do not name one). ``env`` defaults to this machine's, filled in
    when the store saves it; ``extra`` adds stored fields of its own (a data-parallel row's ``ranks``, ...)."""
    if isinstance(result, GemmPeak):
        kind, name = "peak", PEAK_MODEL
    elif isinstance(result, (BenchResult, MatrixResult)):
        kind, name = "bench", result.model
    elif isinstance(result, FlopCount):
        kind, name = "flops", result.model
    elif isinstance(result, (EvalMetrics, FewShotMetrics)):
        if model is None:
            raise ConfigError(f"a {type(result).__name__} record needs model=")
        kind, name = ("eval" if isinstance(result, EvalMetrics) else "fewshot"), model
    else:
        raise ConfigError(f"not a vitzoo result: {type(result).__name__}")
    return Record(kind, model or name, result, dict(env or {}), extra)
