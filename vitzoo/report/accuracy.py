"""The report's accuracy sections: eval results (with confidence intervals where recorded), few-shot curves, and
the compute-vs-accuracy trade-off (``vitzoo.evaluate.tradeoff`` and its plot, against the BiT baselines and the
paper's Table 6)."""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Sequence
from typing import Any

from vitzoo.measure.records import Record, load_records
from vitzoo.report import charts
from vitzoo.report.page import Cell, Figure, Section, interval, num, table, text


def _pct(m: dict[str, Any], key: str, record: int) -> Cell:
    return num(m.get(key), 2, record)


def _metrics(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["metrics"] for r in records]


def accuracy_section(records: Sequence[dict[str, Any]]) -> Section:
    """Every `vitzoo eval` result: top-1/top-5/ReaL and, where the result records them, its 95 % confidence
    interval, calibration error (ECE) and evaluation protocol."""
    evals = [r for r in records if r["kind"] == "eval"]
    if not evals:
        return Section("accuracy", "Accuracy", empty="No accuracy results (`vitzoo eval`).")
    extras = [k for k in ("top1_ci_low", "ece", "protocol") if any(m.get(k) is not None for m in _metrics(evals))]
    rows = []
    for r in evals:
        m, i = r["metrics"], r["id"]
        row = [text(r["model"]), text(m.get("set") or m.get("dataset")), num(m.get("num_images"), 0, i),
               _pct(m, "top1", i), _pct(m, "top5", i), _pct(m, "real_top1", i)]  # fmt: skip
        for k in extras:
            if k == "top1_ci_low":
                low, high = m.get("top1_ci_low"), m.get("top1_ci_high")
                row.append(Cell("—") if low is None else interval(low, high, i))
            else:
                row.append(_pct(m, k, i) if k == "ece" else text(m.get(k), i))
        row += [text(m.get("img_size")), text(m.get("dtype", "fp32")), text(m.get("limit")),
                Cell(r["created"][:10], r["created"], i)]  # fmt: skip
        rows.append(row)
    columns = ["model", "dataset", "images", "top-1 %", "top-5 %", "ReaL top-1 %",
               *({"top1_ci_low": "95 % CI of top-1", "ece": "ECE %", "protocol": "protocol"}[k] for k in extras),
               "res", "dtype", "limit", "date"]  # fmt: skip
    return Section("accuracy", "Accuracy",
                   "`vitzoo eval` results, one per run: top-1 and top-5 (%), ReaL top-1 where ReaL labels were given, "
                   "and the confidence interval, calibration error and protocol where the run recorded them. "
                   "`limit`: a run on that many images only.", tables=(table(columns, rows),))  # fmt: skip


def fewshot_section(records: Sequence[dict[str, Any]]) -> Section:
    """`vitzoo fewshot` results: accuracy per shot count, and the curves."""
    runs = [r for r in records if r["kind"] == "fewshot" and isinstance(r["metrics"].get("shots"), dict)]
    if not runs:
        return Section("fewshot", "Few-shot", empty="No few-shot results (`vitzoo fewshot`).")
    shots = sorted({int(k) for r in runs for k in r["metrics"]["shots"]})
    rows, curves = [], []
    for r in runs:
        m, i = r["metrics"], r["id"]
        acc = {int(k): v for k, v in m["shots"].items()}
        rows.append([text(r["model"]), text(m.get("dataset")), text(m.get("seed")),
                     *(num(acc.get(k), 2, i) for k in shots), Cell(r["created"][:10], r["created"], i)])  # fmt: skip
        ks = sorted(k for k, v in acc.items() if isinstance(v, (int, float)))
        curves.append((f"{r['model']} · {m.get('dataset')} (#{i})", ks, [acc[k] for k in ks]))
    figure = Figure("Few-shot accuracy", lambda: charts.fewshot_curves(curves),
                    "few-shot accuracy against shots per class")  # fmt: skip
    return Section("fewshot", "Few-shot",
                   "Linear few-shot accuracy (%) on frozen features, by images per class (the ViT paper's protocol).",
                   tables=(table(["model", "dataset", "seed", *(f"{k}-shot %" for k in shots), "date"], rows),),
                   figures=(figure,))  # fmt: skip


class RecordView:
    """Already-read records answering ``records(kind, model)`` as ``ResultStore`` does (what
    ``vitzoo.evaluate.tradeoff`` reads), so the trade-off sees exactly the report's records and reads the file once."""

    def __init__(self, records: Sequence[dict[str, Any]]) -> None:
        self._records = list(records)

    def records(self, kind: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self._records if (kind is None or r["kind"] == kind)
                and (model is None or fnmatch.fnmatchcase(r["model"], model))]  # fmt: skip

    def load(self, kind: str | None = None, model: str | None = None) -> list[Record]:
        """Typed records, as ``ResultStore.load``."""
        return load_records(self.records, kind, model)


def _throughput_setting(records: Sequence[dict[str, Any]]) -> tuple[str, str, str]:
    """The (device kind, dtype, backend) with most successful bench runs; (cpu, fp32, torch) when none."""
    counts = Counter(
        (str(r["metrics"].get("device", "cpu")).split(":")[0], r["metrics"].get("dtype", "fp32"),
         r["metrics"].get("backend", "torch"))
        for r in records if r["kind"] == "bench" and r["model"] != "gemm-peak"
        and r["metrics"].get("status") in (None, "ok")
    )  # fmt: skip
    return counts.most_common(1)[0][0] if counts else ("cpu", "fp32", "torch")


def tradeoff_section(records: Sequence[dict[str, Any]]) -> Section:
    """The trade-off of every architecture's default checkpoint (and every registry checkpoint the records
    measured), throughput and measured accuracy from the records; the paper's Table 6 beside it."""
    from vitzoo.errors import VitzooError
    from vitzoo.evaluate.plots import tradeoff_figure
    from vitzoo.evaluate.tradeoff import build_tradeoff
    from vitzoo.zoo.catalog import REGISTRY
    from vitzoo.zoo.lookup import resolve_one

    measured = []
    for r in records:
        try:
            checkpoint = resolve_one(r["model"])
        except VitzooError:  # a weight file no longer there, gemm-peak, or a name from another vitzoo
            continue
        if not checkpoint.is_file and checkpoint.accuracy is not None:
            measured.append(checkpoint.name)
    names = [s.name for s in REGISTRY.listed() if s.get_weights() is not None and s.get_weights().accuracy is not None]
    device, dtype, backend = _throughput_setting(records)
    rows = build_tradeoff([*names, *dict.fromkeys(measured)], store=RecordView(records), device=device, dtype=dtype,
                          backend=backend)  # fmt: skip
    rows = [r for r in rows if r.top1 is not None]
    where = f"{device}, {dtype}" + ("" if backend == "torch" else f", {backend}")
    cells = []
    for r in rows:
        marks = (["GMACs"] if r.pareto_gmacs else []) + (["img/s"] if r.pareto_throughput else [])
        measured_top1 = _source(records, "eval", r.model, "top1", r.top1) if r.top1_kind == "measured" else None
        cells.append([text(r.model), text(r.family), text(r.img_size), num(r.params / 1e6, 2), num(r.gmacs, 3),
                      num(r.throughput, 1, _source(records, "bench", r.model, "img_per_s", r.throughput)),
                      num(r.top1, 2, measured_top1), text(r.top1_kind), text(r.top1_source),
                      text("★ " + ", ".join(marks) if marks else "")])  # fmt: skip
    figure = Figure(
        "Accuracy vs compute",
        lambda: charts.to_svg(tradeoff_figure(rows, subtitle=where)),
        "ImageNet top-1 against GMACs, measured throughput and the paper's pre-training compute",
    )
    flops = _flops_table(records)
    return Section("tradeoff", "Compute vs accuracy",
                   "ImageNet-1k top-1 against inference compute (closed-form GMACs) and, where benchmarked, "
                   f"throughput ({where}), for every architecture's default checkpoint — ViTs, hybrids and the BiT "
                   "ResNet baselines — beside the paper's own view (Table 6: top-1 against pre-training exaFLOPs). "
                   "Accuracy is your full-ImageNet `vitzoo eval` where the records hold one, else the reported "
                   "number. ★ marks the Pareto front (dashed line).",
                   tables=(table(["model", "family", "res", "params (M)", "GMACs", "img/s", "top-1 %", "top-1 is",
                                  "source", "Pareto"], cells), *flops),
                   figures=(figure,))  # fmt: skip


def _source(records: Sequence[dict[str, Any]], kind: str, model: str, key: str, value: Any) -> int | None:
    """The id of the latest record a trade-off number was read from: of ``kind``, for checkpoint ``model``
    (``arch.tag``, or ``arch`` for a default tag), whose ``key`` is ``value``."""
    if value is None:
        return None
    names = {model, model.split(".", 1)[0]}
    ids = [r["id"] for r in records if r["kind"] == kind and r["model"] in names and r["metrics"].get(key) == value]
    return ids[-1] if ids else None


def _flops_table(records: Sequence[dict[str, Any]]) -> tuple:
    runs = [r for r in records if r["kind"] == "flops"]
    if not runs:
        return ()
    rows = [[text(r["model"]), text(r["metrics"].get("img_size")), num((r["metrics"].get("params") or 0) / 1e6, 3,
             r["id"]), num(r["metrics"].get("gmacs"), 4, r["id"]), num(r["metrics"].get("gflops"), 4, r["id"]),
             Cell(r["created"][:10], r["created"], r["id"])] for r in runs]  # fmt: skip
    return (table(["model", "res", "params (M)", "GMACs", "GFLOPs", "date"], rows,
                  "Compute counted by `vitzoo flops` (per image)."),)  # fmt: skip
