"""Two sets of results side by side — two machines, two releases, two databases: is a difference the machine or
the software?

For each benchmark setting both sides measured (model, backend, dtype, batch size, resolution, compile), the
throughput ratio B/A is set against the ratio of the two sides' GEMM rooflines (``peak_tflops``, measured by
`vitzoo bench --peak` or by a benchmark for its % of peak, for the same dtype and device kind): the roofline ratio
is the speed-up the machine alone *predicts*, and ``measured / predicted`` is what is left for the software and
settings (1.0: the machine explains it all). A side's throughput is the median img/s of its uncontended
successful runs; when it has only contended runs (other processes used the CPU) their median is used and the row
is flagged. Rows from older vitzoo versions lack some fields: a missing dtype is fp32, backend torch, compile
off, contention unknown (not flagged), and without a recorded peak there is no prediction.
"""

from __future__ import annotations

import fnmatch
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from vitzoo.errors import VitzooError

Record = dict[str, Any]
SETTING = ("backend", "dtype", "batch_size", "img_size", "compile")
DEFAULTS = {"backend": "torch", "dtype": "fp32", "compile": False}
IGNORED_ENV = ("world_size", "local_world_size")  # same on every single-process run; noise in a diff


@dataclass(frozen=True)
class CompareRow:
    """One setting measured on both sides."""

    model: str
    backend: str
    dtype: str
    batch_size: int | None
    img_size: int | None
    compile: bool
    a_img_per_s: float
    b_img_per_s: float
    ratio: float  # B / A
    a_peak_tflops: float | None  # GEMM roofline of side A for this dtype and device
    b_peak_tflops: float | None
    predicted: float | None  # b_peak / a_peak: the ratio the machines alone predict
    software: float | None  # ratio / predicted: what the software and settings add (1.0: the machine explains it)
    a_contended: bool
    b_contended: bool
    a_device: str
    b_device: str
    a_records: tuple[int, ...]
    b_records: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    a: str  # how each side was selected
    b: str
    rows: tuple[CompareRow, ...]
    env_diff: tuple[tuple[str, str, str], ...]  # (key, A's values, B's values) where they differ
    only_a: int  # settings measured on one side only
    only_b: int


def parse_filters(text: str) -> dict[str, str]:
    """``"host=box1,threads=8"`` -> ``{"host": "box1", "threads": "8"}``; values are shell patterns."""
    out = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise VitzooError(f"a selector is KEY=VALUE[,KEY=VALUE...] (e.g. host=box1,dtype=bf16), not {text!r}")
        out[key.strip()] = value.strip()
    return out


def field(record: Record, key: str) -> Any:
    """A record's value for ``key``: its metrics first, then its environment, then the column (model, kind...)."""
    for source in (record["metrics"], record["env"], record):
        if key in source:
            return source[key]
    return None


def _as_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) or value is None else str(value)


def select(records: Sequence[Record], filters: Mapping[str, str]) -> list[Record]:
    """The records whose every ``filters`` key matches (``fnmatch`` on its text; true/false/null for JSON values)."""
    return [r for r in records if all(fnmatch.fnmatchcase(_as_text(field(r, k)), v) for k, v in filters.items())]


def _setting(r: Record) -> tuple:
    m = r["metrics"]
    return (r["model"], *(m.get(k, DEFAULTS.get(k)) for k in SETTING))


def _device_kind(m: Mapping[str, Any]) -> str:
    return str(m.get("device", "cpu")).split(":")[0]


def _ok(r: Record) -> bool:
    m = r["metrics"]
    ok = m.get("status") in (None, "ok") and isinstance(m.get("img_per_s"), (int, float))
    return r["kind"] == "bench" and r["model"] != "gemm-peak" and ok and (m.get("ranks") or 1) == 1


def peaks(records: Sequence[Record]) -> dict[tuple[str, str], float]:
    """(device kind, dtype) -> median GEMM peak TFLOP/s recorded in ``records`` (bench rows and --peak rows)."""
    values: dict[tuple[str, str], list[float]] = {}
    for r in records:
        m = r["metrics"]
        peak = m.get("peak_tflops")
        if r["kind"] == "bench" and isinstance(peak, (int, float)) and peak > 0:
            values.setdefault((_device_kind(m), m.get("dtype", "fp32")), []).append(float(peak))
    return {k: statistics.median(v) for k, v in values.items()}


def _side(rows: Sequence[Record]) -> tuple[float, bool, str, tuple[int, ...]]:
    """(median img/s, from contended runs only, device(s), records used)."""
    calm = [r for r in rows if not r["metrics"].get("contended")]
    used = calm or list(rows)
    devices = ", ".join(sorted({str(r["metrics"].get("device", "cpu")) for r in used}))
    value = statistics.median(float(r["metrics"]["img_per_s"]) for r in used)
    return value, not calm, devices, tuple(r["id"] for r in used)


def env_diff(a: Sequence[Record], b: Sequence[Record]) -> list[tuple[str, str, str]]:
    """The environment fields whose values differ between the two sides (each side: its distinct values)."""

    def values(records: Sequence[Record], key: str) -> str:
        seen = sorted({_as_text(r["env"].get(key)) for r in records if key in r["env"]})
        return ", ".join(seen) or "—"

    keys = sorted({k for r in [*a, *b] for k in r["env"]} - set(IGNORED_ENV))
    return [(k, va, vb) for k in keys if (va := values(a, k)) != (vb := values(b, k))]


def compare(a: Sequence[Record], b: Sequence[Record], *, a_label: str = "A", b_label: str = "B") -> Comparison:
    """Compare the bench records of side ``a`` with those of side ``b`` (store dicts), setting by setting."""
    groups: list[dict[tuple, list[Record]]] = [{}, {}]
    for side, records in zip(groups, (a, b), strict=True):
        for r in records:
            if _ok(r):
                side.setdefault(_setting(r), []).append(r)
    peak_a, peak_b = peaks(a), peaks(b)
    rows = []
    for key in [k for k in groups[0] if k in groups[1]]:
        va, busy_a, dev_a, ids_a = _side(groups[0][key])
        vb, busy_b, dev_b, ids_b = _side(groups[1][key])
        dtype = key[2]
        pa = peak_a.get((dev_a.split(":")[0], dtype)) if "," not in dev_a else None
        pb = peak_b.get((dev_b.split(":")[0], dtype)) if "," not in dev_b else None
        ratio = vb / va
        predicted = pb / pa if pa and pb else None
        rows.append(CompareRow(*key, va, vb, ratio, pa, pb, predicted, None if predicted is None else ratio / predicted,
                               busy_a, busy_b, dev_a, dev_b, ids_a, ids_b))  # fmt: skip
    ids_a = {i for row in rows for i in row.a_records}
    ids_b = {i for row in rows for i in row.b_records}
    used_a = [r for r in a if r["id"] in ids_a] or list(a)  # the environments the compared numbers came from
    used_b = [r for r in b if r["id"] in ids_b] or list(b)
    only_a = sum(k not in groups[1] for k in groups[0])
    only_b = sum(k not in groups[0] for k in groups[1])
    return Comparison(a_label, b_label, tuple(rows), tuple(env_diff(used_a, used_b)), only_a, only_b)
