"""Evaluation, few-shot features and benchmarks spread over the ranks of a torch.distributed launch.

Run under ``torchrun`` (or ``vitzoo ... --nproc N``) with ``vitzoo.parallel.distributed.process_group`` open; with one
process every function here is its single-process counterpart.

* ``evaluate_sharded`` / ``extract_features_sharded``: each rank takes a contiguous shard of whole batches (so it
  runs exactly the batches a single process would), and the counts, the unreadable files and the features come
  back in dataset order: the result equals the single-process one (only the timing differs).
* ``analyse_attention_sharded``: the attention passes of ``vitzoo inspect`` over many images, shared the same way.
* ``bench_data_parallel``: every rank measures the same model and batch size at the same time (data-parallel
  inference, one model replica per GPU); the aggregate images/s is the sum over ranks.
* ``bench_sweep``: the (model, batch size) measurements are dealt out round-robin over the ranks and gathered
  into one table in the order a single process would produce.

Progress: only rank 0 reports, and it reports its own share scaled to the whole dataset (its shard is the
largest, within one batch), so no collective runs during the work.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from vitzoo.errors import VitzooError
from vitzoo.evaluate.accuracy import (
    DEFAULT_RUN,
    PLAIN,
    Counts,
    EvalResult,
    Progress,
    RunOptions,
    Scoring,
    check_inputs,
    count_hits,
    evaluate,
    result_from_counts,
)
from vitzoo.evaluate.data import ImageDataset
from vitzoo.evaluate.fewshot import Features, extract_features
from vitzoo.inspection.attention import AttentionAnalysis
from vitzoo.parallel.distributed import Launch, agree, current, failure_watch, gather, shard_dataset, shard_range
from vitzoo.zoo.preprocess import Preprocess


def _shard_progress(progress: Progress | None, launch: Launch, shard_len: int, total: int) -> Progress:
    """Checks for another rank's failure after every batch; on rank 0, reports its share scaled to ``total``."""
    watch = failure_watch()

    def update(done: int, _: int) -> None:
        watch()
        if progress is not None and launch.is_main and shard_len:
            progress(min(total, done * total // shard_len), total)

    return update


def evaluate_sharded(
    model: nn.Module,
    preprocess: Preprocess,
    data: ImageDataset,
    *,
    options: RunOptions = DEFAULT_RUN,
    scoring: Scoring = PLAIN,
    progress: Progress | None = None,
) -> EvalResult:
    """``vitzoo.evaluate.accuracy.evaluate`` over every rank: the same result; ``seconds`` is the slowest rank's."""
    launch = current()
    if not launch.is_distributed:
        return evaluate(model, preprocess, data, options=options, scoring=scoring, progress=progress)

    agree(lambda: check_inputs(model, data, scoring), "checking the data")  # also starts the clocks together
    shard = shard_dataset(data, launch, options.batch_size)
    report = _shard_progress(progress, launch, len(shard), len(data))

    def count() -> dict[str, Any]:
        start = time.perf_counter()
        c = count_hits(model, preprocess, shard, options=options, scoring=scoring, progress=report)
        return {**dataclasses.asdict(c), "seconds": time.perf_counter() - start}

    parts = gather(count, "evaluating")
    total = Counts.join([Counts.from_dict(p) for p in parts])  # in rank order: failures and arrays in dataset order
    if progress is not None and launch.is_main:
        progress(len(data), len(data))
    return result_from_counts(total, data, preprocess, max(p["seconds"] for p in parts), protocol=scoring.protocol)


def extract_features_sharded(
    model: nn.Module,
    preprocess: Preprocess,
    data: ImageDataset,
    *,
    options: RunOptions = DEFAULT_RUN,
    progress: Progress | None = None,
    layer: int | None = None,
) -> Features:
    """``vitzoo.evaluate.fewshot.extract_features`` over every rank; every rank gets all features, in dataset order."""
    launch = current()
    if not launch.is_distributed:
        return extract_features(model, preprocess, data, options=options, progress=progress, layer=layer)
    shard = shard_dataset(data, launch, options.batch_size)
    report = _shard_progress(progress, launch, len(shard), len(data))

    def extract() -> dict[str, Any]:
        f = extract_features(model, preprocess, shard, options=options, progress=report, allow_empty=True, layer=layer)
        return {"x": f.x, "labels": f.labels, "failures": f.failures}

    parts = gather(extract, "extracting features")
    failures = tuple((key, reason) for p in parts for key, reason in p["failures"])
    kept = [p for p in parts if len(p["labels"])]
    if not kept:
        raise VitzooError(f"no readable image in {data.description}")
    if progress is not None and launch.is_main:
        progress(len(data), len(data))
    x = np.concatenate([p["x"] for p in kept])
    labels = np.concatenate([p["labels"] for p in kept]).astype(np.int64)
    return Features(x, labels, data.num_classes, failures)


def analyse_attention_sharded(model: nn.Module, images: torch.Tensor) -> AttentionAnalysis:
    """``vitzoo.inspection.analyse_attention`` over every rank: each takes a contiguous share of the images (whole
    forward batches), and the per-image distances and rollout maps come back in image order (the same result).
    """
    from vitzoo.inspection.attention import BATCH, analyse_attention

    launch = current()
    if not launch.is_distributed:
        return analyse_attention(model, images)
    mine = shard_range(len(images), launch.rank, launch.world_size, BATCH)

    def analyse() -> dict[str, Any]:
        if not len(mine):
            return {"n": 0}
        a = analyse_attention(model, images[mine.start : mine.stop])
        return {"n": len(mine), "distance": a.per_image_distance, "rollout": a.rollout, "stride": a.token_stride}

    parts = [p for p in gather(analyse, "analysing attention") if p["n"]]
    per_image = np.concatenate([p["distance"] for p in parts], axis=1)
    rollout = np.concatenate([p["rollout"] for p in parts])
    return AttentionAnalysis(per_image.mean(axis=1), rollout, parts[0]["stride"], len(images), per_image)


# -- benchmarks ----------------------------------------------------------------------------------------------


def _steps(names: Sequence[str], options: Any) -> list[tuple[str, Any]]:
    """(model, options with one batch size) for every measurement, in single-process order."""
    sizes = options.batch_sizes
    batches: list[Any] = ["auto"] if sizes == "auto" else [(b,) for b in sizes]
    return [(name, dataclasses.replace(options, batch_sizes=b)) for name in names for b in batches]


def _rank_rows(name: str, options: Any, launch: Launch, progress: Any) -> list[dict[str, Any]]:
    from vitzoo.measure.bench import bench_models

    return [{**r.as_dict(), "rank": launch.rank} for r in bench_models([name], options, progress)]


def aggregate_ranks(per_rank: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """One data-parallel row from every rank's rows of one measurement (rank order).

    ``img_per_s`` and ``tflops`` are summed over the ranks, latency and memory are the worst rank's, and
    ``rank_img_per_s`` lists each rank's own figure. If any rank did not measure (oom, error), the row
    takes that rank's status and error.
    """
    ok = [next((r for r in rows if r["status"] == "ok"), None) for rows in per_rank]
    first = ok[0] or per_rank[0][-1]
    row = {k: v for k, v in first.items() if k != "rank"}
    row |= {"ranks": len(per_rank), "mode": "data-parallel"}
    bad = next(((i, rows[-1]) for i, (rows, r) in enumerate(zip(per_rank, ok, strict=True)) if r is None), None)
    if bad is not None:
        rank, failed = bad
        row |= {"status": failed["status"], "error": f"rank {rank}: {failed['error']}", "img_per_s": None,
                "tflops": None, "pct_peak": None, "rank_img_per_s": [r and r["img_per_s"] for r in ok]}  # fmt: skip
        return row
    rates = [r["img_per_s"] for r in ok]

    def worst(key: str) -> float | None:
        values = [r[key] for r in ok if r.get(key) is not None]
        return max(values) if values else None

    row |= {
        "img_per_s": sum(rates),
        "rank_img_per_s": rates,
        "tflops": sum(r["tflops"] for r in ok) if all(r.get("tflops") is not None for r in ok) else None,
        "latency_ms": worst("latency_ms"),
        "latency_p90_ms": worst("latency_p90_ms"),
        "latency_p99_ms": worst("latency_p99_ms"),
        "memory_mib": worst("memory_mib"),
        "batch_sizes": [r["batch_size"] for r in ok],
    }
    if first.get("peak_tflops") and row["tflops"] is not None:
        row["pct_peak"] = 100 * row["tflops"] / (first["peak_tflops"] * len(ok))
    return row


def bench_data_parallel(names: Sequence[str], options: Any, progress: Any = None) -> list[dict[str, Any]]:
    """Every rank measures each (model, batch size) at the same time (a barrier before each one).

    Returns one ``aggregate_ranks`` row per measurement, with every rank's own rows under ``per_rank``, on
    every rank. With one process: the single-process rows, as one-rank aggregates.
    """
    launch = current()
    rows = []
    for name, opts in _steps(names, options):
        agree(lambda: None, f"starting {name}")
        per_rank = gather(lambda n=name, o=opts: _rank_rows(n, o, launch, progress), f"benchmarking {name}")
        rows.append({**aggregate_ranks(per_rank), "per_rank": [row for ranks in per_rank for row in ranks]})
    return rows


def bench_sweep(names: Sequence[str], options: Any, progress: Any = None) -> list[dict[str, Any]]:
    """The measurements dealt out round-robin over the ranks, each run alone on its rank's device.

    Returns the rows in single-process order (model, then batch size), each with its ``rank`` and the
    ``env`` (``vitzoo.measure.env.environment``) of the rank that measured it, on every rank.
    """
    from vitzoo.measure.bench import bench_environment, prepare_process

    launch = current()
    steps = _steps(names, options)

    def mine() -> list[Any]:
        prepare_process(options)
        env = bench_environment(options)
        out = []
        for i in range(launch.rank, len(steps), launch.world_size):
            name, opts = steps[i]
            out.append([i, [{**row, "env": env} for row in _rank_rows(name, opts, launch, progress)]])
        return out

    by_step: dict[int, list[dict[str, Any]]] = {}
    for part in gather(mine, "running the sweep"):
        by_step.update({int(i): rows for i, rows in part})
    return [row for i in range(len(steps)) for row in by_step[i]]
