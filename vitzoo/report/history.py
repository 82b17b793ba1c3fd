"""Each model's throughput over time on one machine, and whether the latest run is a regression beyond noise.

A *series* is every successful `vitzoo bench` run of one setting (model, backend, device, dtype, batch size,
resolution, threads, compile, precision) on one machine (host, CPU and device name), oldest first.

Noise is read from the rows themselves, never assumed:

* a run's own spread is ``(max - min) / median`` of its timed rounds (``round_img_per_s``);
* the noise of a comparison is the largest of: the latest run's spread, the median spread of the runs before
  it, their run-to-run spread (``(max - min) / median`` of their img/s, with three or more runs), and a floor of
  ``NOISE_FLOOR`` (3 %) for rows that recorded no rounds (stores from before rounds were kept).

The latest uncontended run is a **regression** when its img/s is below the median of the earlier uncontended
runs by more than that noise. Runs flagged ``contended`` (other processes used the CPU while they ran) are drawn
but never judged, nor used as a baseline: they understate the machine.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

NOISE_FLOOR = 0.03
SETTING_KEYS = ("backend", "device", "dtype", "batch_size", "img_size", "threads", "compile", "precision")
MACHINE_KEYS = ("host", "cpu", "device_name")


@dataclass(frozen=True)
class Point:
    record: int
    created: str
    img_per_s: float
    spread: float | None  # relative spread of its rounds; None: no rounds recorded
    contended: bool


@dataclass(frozen=True)
class Series:
    """One setting on one machine over time, with the verdict on its latest uncontended run."""

    model: str
    machine: str
    setting: str
    points: tuple[Point, ...]
    baseline: float | None  # median img/s of the earlier uncontended runs
    change: float | None  # latest / baseline - 1
    noise: float | None  # the relative noise the change is judged against
    regression: bool
    regressed_record: int | None  # the run flagged

    @property
    def label(self) -> str:
        return f"{self.model} · {self.setting} · {self.machine}"


def round_spread(rounds: Any) -> float | None:
    """``(max - min) / median`` of a run's per-round img/s; None without at least two rounds."""
    values = [float(v) for v in rounds or () if isinstance(v, (int, float)) and v > 0]
    if len(values) < 2:
        return None
    return (max(values) - min(values)) / statistics.median(values)


def judge(points: Sequence[Point]) -> tuple[float | None, float | None, float | None, bool, int | None]:
    """(baseline, change, noise, regression, flagged record) for a series' latest uncontended run."""
    calm = [p for p in points if not p.contended]
    if len(calm) < 2:
        return None, None, None, False, None
    *before, latest = calm
    baseline = statistics.median(p.img_per_s for p in before)
    spreads = [p.spread for p in before if p.spread is not None]
    candidates = [NOISE_FLOOR]
    if latest.spread is not None:
        candidates.append(latest.spread)
    if spreads:
        candidates.append(statistics.median(spreads))
    if len(before) >= 3:
        values = [p.img_per_s for p in before]
        candidates.append((max(values) - min(values)) / baseline)
    noise = max(candidates)
    change = latest.img_per_s / baseline - 1
    regression = change < -noise
    return baseline, change, noise, regression, latest.record if regression else None


def _setting(m: dict[str, Any], env: dict[str, Any]) -> str:
    parts = [m.get("dtype", "fp32"), f"b{m.get('batch_size')}"]
    if m.get("backend", "torch") != "torch":
        parts.insert(0, str(m["backend"]))
    if m.get("img_size"):
        parts.append(f"{m['img_size']}px")
    threads = m.get("threads", env.get("threads"))
    if threads is not None:
        parts.append(f"{threads}t")
    if m.get("compile"):
        parts.append("compiled")
    if m.get("precision", "cast") != "cast":
        parts.append(str(m["precision"]))
    if str(m.get("device", "cpu")) != "cpu":
        parts.insert(0, str(m["device"]))
    return " ".join(str(p) for p in parts)


def machine_of(env: dict[str, Any]) -> str:
    """A machine's short name: its host and device (the CPU model on CPU runs)."""
    host = env.get("host") or "?"
    device = env.get("device_name") or env.get("cpu") or "?"
    return f"{host} ({device})"


def series_of(records: Sequence[dict[str, Any]]) -> list[Series]:
    """The history series of successful bench ``records`` (store dicts), each judged; single runs included."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        m, env = r["metrics"], r["env"]
        value = m.get("img_per_s")
        if r["model"] == "gemm-peak" or m.get("status") not in (None, "ok") or not isinstance(value, (int, float)):
            continue
        if (m.get("ranks") or 1) > 1:  # a data-parallel aggregate is another kind of number
            continue
        key = (r["model"], *(env.get(k) for k in MACHINE_KEYS), *(str(m.get(k)) for k in SETTING_KEYS))
        groups.setdefault(key, []).append(r)
    out = []
    for rows in groups.values():
        rows.sort(key=lambda r: (r["created"], r["id"]))
        points = tuple(
            Point(r["id"], r["created"], float(r["metrics"]["img_per_s"]),
                  round_spread(r["metrics"].get("round_img_per_s")), bool(r["metrics"].get("contended")))
            for r in rows
        )  # fmt: skip
        first = rows[0]
        out.append(
            Series(first["model"], machine_of(first["env"]), _setting(first["metrics"], first["env"]), points,
                   *judge(points))
        )  # fmt: skip
    out.sort(key=lambda s: (not s.regression, -len(s.points), s.model, s.setting))
    return out
