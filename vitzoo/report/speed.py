"""The report's machine and speed sections: environments, benchmarks (with the deployment matrix), history."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from vitzoo.report import charts
from vitzoo.report.history import NOISE_FLOOR, Series, machine_of
from vitzoo.report.page import Cell, Figure, Section, describe, num, table, text

# env keys in the order a reader looks for them; any other key the env JSON holds follows
ENV_ORDER = ("host", "cpu", "cpu_capability", "cpu_bf16", "cpu_fp16", "cpu_count", "threads", "heap", "device",
             "device_name", "gpu_count", "cuda", "cudnn", "torch", "backend", "python", "vitzoo", "platform",
             "world_size", "local_world_size")  # fmt: skip


class Environments:
    """The distinct environments of the records, labelled E1, E2, ... in the order they first appear."""

    def __init__(self, records: Sequence[dict[str, Any]]) -> None:
        self.labels: dict[str, str] = {}
        self.envs: dict[str, dict[str, Any]] = {}
        self.members: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            key = json.dumps(r["env"], sort_keys=True)
            if key not in self.labels:
                self.labels[key] = f"E{len(self.labels) + 1}"
                self.envs[self.labels[key]] = r["env"]
            self.members.setdefault(self.labels[key], []).append(r)

    def label(self, record: dict[str, Any]) -> str:
        return self.labels[json.dumps(record["env"], sort_keys=True)]


def is_bench(r: dict[str, Any]) -> bool:
    return r["kind"] == "bench" and r["model"] != "gemm-peak"


def environments_section(envs: Environments) -> Section:
    """One row per environment: every field its env JSON holds, the kernels its benchmarks ran, its GEMM peaks."""
    if not envs.envs:
        return Section("environments", "Environments", empty="No results, so no environments.")
    keys = [k for k in ENV_ORDER if any(k in e for e in envs.envs.values())]
    keys += sorted({k for e in envs.envs.values() for k in e} - set(keys))
    rows = []
    for label, env in envs.envs.items():
        members = envs.members[label]
        kernels = sorted(
            {str(r["metrics"].get("kernels")) for r in members if is_bench(r) and r["metrics"].get("kernels")}
        )
        peaks = _peaks(members)
        first = members[0]["id"]
        rows.append([Cell(label, int(label[1:]), first), text(len(members)),
                     *(text(describe(env[k]) if isinstance(env.get(k), (dict, list)) else env.get(k)) for k in keys),
                     text(", ".join(kernels) or None),
                     Cell(", ".join(f"{d} {v:.3f}" for d, (v, _) in peaks.items()) or "—", None,
                          next(iter(peaks.values()))[1] if peaks else None)])  # fmt: skip
    columns = ["env", "records", *keys, "kernels", "GEMM peak TFLOP/s"]
    return Section("environments", "Environments",
                   "Where the results were measured: every field of the environment stored with each record, the "
                   "kernels the benchmarks ran and the GEMM roofline (`vitzoo bench --peak`, or measured by a "
                   "benchmark for its % of peak).", tables=(table(columns, rows),))  # fmt: skip


def _peaks(records: Sequence[dict[str, Any]]) -> dict[str, tuple[float, int]]:
    """dtype -> (the latest GEMM peak TFLOP/s recorded in these records, its record id)."""
    out: dict[str, tuple[float, int]] = {}
    for r in records:
        m = r["metrics"]
        value = m.get("peak_tflops")
        if r["kind"] == "bench" and isinstance(value, (int, float)) and value > 0:
            out[str(m.get("dtype", "fp32"))] = (float(value), r["id"])
    return out


BENCH_KEYS = ("backend", "device", "dtype", "precision", "batch_size", "img_size", "compile", "channels_last",
              "threads", "ranks", "mode")  # fmt: skip


def latest_benchmarks(records: Sequence[dict[str, Any]], envs: Environments) -> list[dict[str, Any]]:
    """The latest bench record of each setting in each environment (older runs are in the history)."""
    latest: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if is_bench(r):
            latest[(r["model"], envs.label(r), *(str(r["metrics"].get(k)) for k in BENCH_KEYS))] = r
    return sorted(latest.values(), key=lambda r: (r["model"], envs.label(r), r["id"]))


def benchmarks_section(records: Sequence[dict[str, Any]], envs: Environments) -> Section:
    """The latest run of each benchmark setting: table, bar chart, and the deployment matrix when several backends
    or dtypes were measured."""
    rows, labels, values, backends = [], [], [], []
    latest = latest_benchmarks(records, envs)
    for r in latest:
        m, i = r["metrics"], r["id"]
        backend = m.get("backend", "torch")
        busy = m.get("contended")
        rows.append([text(r["model"]), Cell(envs.label(r), None, i), text(backend), text(m.get("device", "cpu")),
                     text(m.get("dtype", "fp32")), num(m.get("batch_size"), 0, i), text(m.get("status", "ok")),
                     num(m.get("img_per_s"), 2, i), num(m.get("latency_ms"), 2, i), num(m.get("latency_p90_ms"), 2, i),
                     num(m.get("latency_p99_ms"), 2, i), num(m.get("memory_mib"), 0, i), num(m.get("tflops"), 3, i),
                     num(m.get("pct_peak"), 1, i), text(m.get("kernels")),
                     text(None if busy is None else ("yes" if busy else "no")), _date(r)])  # fmt: skip
        if isinstance(m.get("img_per_s"), (int, float)) and m.get("status", "ok") == "ok":
            dp = f" x{m['ranks']} ranks" if (m.get("ranks") or 1) > 1 else ""
            labels.append(f"{r['model']} · {m.get('dtype', 'fp32')} · b{m.get('batch_size')}{dp} · {envs.label(r)}")
            values.append(float(m["img_per_s"]))
            backends.append(backend)
    if not rows:
        return Section("benchmarks", "Benchmarks", empty="No benchmark results (`vitzoo bench`).")
    columns = ["model", "env", "backend", "device", "dtype", "batch", "status", "img/s", "ms/batch p50", "p90",
               "p99", "mem MiB", "TFLOP/s", "% GEMM peak", "kernels", "contended", "date"]  # fmt: skip
    tables = [table(columns, rows, "Latest run of each setting in each environment; earlier runs: History.")]
    matrix = _matrix(latest)
    if matrix is not None:
        tables.append(matrix)
    figures = ()
    if values:
        bars = (labels, values, backends)
        figures = (Figure("Throughput", lambda: charts.throughput_bars(*bars),
                          "bar chart of images per second for each benchmark setting"),)  # fmt: skip
    return Section("benchmarks", "Benchmarks",
                   "`vitzoo bench`: images/s (median over rounds), latency per batch (p50/p90/p99), peak memory, "
                   "achieved TFLOP/s and its share of the GEMM roofline measured on the same machine. Contended "
                   "runs were measured while other processes used the CPU: they understate the machine.",
                   tables=tuple(tables), figures=figures)  # fmt: skip


def _matrix(latest: Sequence[dict[str, Any]]) -> Any:
    """The deployment matrix: img/s of each (model, batch, machine, threads) under each (backend, dtype) measured
    (the latest run of each); None when only one (backend, dtype) was measured."""
    cols: dict[str, None] = {}
    grid: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in sorted(latest, key=lambda r: r["id"]):
        m = r["metrics"]
        if m.get("status", "ok") != "ok" or (m.get("ranks") or 1) > 1:
            continue
        col = f"{m.get('backend', 'torch')} {m.get('dtype', 'fp32')}"
        cols[col] = None
        threads = m.get("threads", r["env"].get("threads"))
        grid.setdefault((r["model"], m.get("batch_size"), machine_of(r["env"]), threads), {})[col] = r
    if len(cols) < 2:
        return None
    rows = []
    for (model, batch, machine, threads), cells in grid.items():
        rows.append([text(model), num(batch, 0), text(machine), text(threads),
                     *(num(cells[c]["metrics"].get("img_per_s"), 2, cells[c]["id"]) if c in cells else Cell("—")
                       for c in cols)])  # fmt: skip
    return table(["model", "batch", "machine", "threads", *(f"{c} img/s" for c in cols)], rows,
                 "Deployment matrix: the same model under each backend and dtype measured on one machine.")  # fmt: skip


def _date(r: dict[str, Any]) -> Cell:
    return Cell(r["created"][:10], r["created"], r["id"])


def _parse(created: str) -> dt.datetime:
    return dt.datetime.fromisoformat(created.replace("Z", "+00:00"))


MAX_LINES = 8  # series drawn in the history chart (the ones with most runs; every series is in the table)


def _verdict(s: Series) -> str:
    if s.regression:
        return "REGRESSION"
    if s.change is not None:
        return "within noise"
    return "contended runs only" if all(p.contended for p in s.points) else "one run"


def _history_row(s: Series) -> list[Cell]:
    first, last = s.points[0], s.points[-1]
    change = None if s.change is None else 100 * s.change
    noise = None if s.noise is None else 100 * s.noise
    return [text(s.model), text(s.machine), text(s.setting), num(len(s.points), 0),
            Cell(first.created[:10], first.created, first.record), num(last.img_per_s, 2, last.record),
            num(s.baseline, 2), num(change, 1, s.regressed_record, suffix=" %"),
            num(noise, 1, suffix=" %"), Cell(_verdict(s), _verdict(s))]  # fmt: skip


def history_section(series: Sequence[Series]) -> Section:
    """Each setting's throughput over time on its machine, the latest uncontended run judged against noise."""
    if not series:
        return Section("history", "History", empty="No benchmark results, so no history.")
    rows = [_history_row(s) for s in series]
    drawn = [s for s in series if len(s.points) > 1][:MAX_LINES]
    figures = ()
    if drawn:
        lines = [
            (s.label, [_parse(p.created) for p in s.points], [p.img_per_s for p in s.points],
             [p.contended for p in s.points], [p.record == s.regressed_record for p in s.points])
            for s in drawn
        ]  # fmt: skip
        figures = (Figure("Throughput over time", lambda: charts.history_lines(lines),
                          "line chart of images per second over time per setting"),)  # fmt: skip
    flagged = sum(s.regression for s in series)
    notes = (f"{flagged} regression(s) beyond noise: see the verdict column.",) if flagged else ()
    return Section("history", "History",
                   "Each setting's img/s over time on one machine (host and device). The latest uncontended run is "
                   "compared with the median of the earlier uncontended ones; it is a REGRESSION when it is slower by "
                   "more than the noise, the largest of: its own spread over rounds ((max - min) / median of "
                   "round_img_per_s), the earlier runs' median spread, their run-to-run spread (three or more runs) "
                   f"and a floor of {100 * NOISE_FLOOR:.0f} %. Contended runs (hollow markers) are shown, never "
                   "judged nor used as a baseline.",
                   tables=(table(["model", "machine", "setting", "runs", "since", "latest img/s", "baseline img/s",
                                  "change", "noise", "verdict"], rows),),
                   figures=figures, notes=notes)  # fmt: skip
