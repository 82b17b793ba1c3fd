"""`vitzoo bench` as the ranks of a torch.distributed launch: data-parallel throughput, or a sweep over the ranks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vitzoo.cli._output import emit, fail, info, render_table, warn

PARALLEL_COLUMNS = [
    ("model", "model", None),
    ("batch_size", "batch/rank", None),
    ("img_size", "res", None),
    ("status", "status", None),
    ("ranks", "ranks", None),
    ("img_per_s", "img/s (all ranks)", lambda v: "—" if v is None else f"{v:,.2f}"),
    ("rank_img_per_s", "img/s per rank", lambda v: ", ".join("—" if x is None else f"{x:,.1f}" for x in v or [])),
    ("latency_ms", "ms/batch p50 (worst)", lambda v: "—" if v is None else f"{v:,.1f}"),
    ("memory_mib", "mem MiB (max)", lambda v: "—" if v is None else f"{v:,.0f}"),
    ("tflops", "TFLOP/s (all)", lambda v: "—" if v is None else f"{v:,.3f}"),
]


def bench_ranks(names: Sequence[str], options: Any, store: Any, fmt: str, *, sweep: bool, columns: list) -> None:
    """Run the distributed benchmark on every rank; rank 0 stores and prints (``columns``: the bench table's)."""
    from vitzoo.measure.bench import bench_environment
    from vitzoo.measure.records import bench_row_record
    from vitzoo.parallel.distributed import current
    from vitzoo.parallel.sharded import bench_data_parallel, bench_sweep

    launch = current()
    rows = bench_sweep(names, options) if sweep else bench_data_parallel(names, options)
    if not launch.is_main:
        return
    for row in rows:
        if row["status"] != "ok":
            where = f" (rank {row['rank']})" if sweep else ""
            warn(f"{row['model']} batch {row['batch_size']}{where}: {row['status']}: {row['error']}")
    if store is not None:
        env = None if sweep else bench_environment(options)  # a sweep row carries its own rank's environment
        for row in rows:
            metrics = {k: v for k, v in row.items() if k not in ("model", "env")} | ({"sweep": True} if sweep else {})
            store.save(bench_row_record(row["model"], metrics, row["env"] if sweep else env))
        info(f"{len(rows)} {'sweep' if sweep else 'data-parallel'} result(s) appended to {store.path}")
    if sweep:
        shown = rows if fmt != "table" else [{k: v for k, v in r.items() if k != "env"} for r in rows]
        title = f"sweep over {launch.world_size} ranks · {options.dtype}"
        emit(shown, fmt, [*columns, ("rank", "rank", None), ("device", "device", None)], title)
    elif fmt != "table":
        emit(rows, fmt, [])
    else:
        title = f"data-parallel inference on {launch.world_size} ranks · {options.dtype} · the same batch on each"
        render_table(rows, PARALLEL_COLUMNS, title=title)
    _fail_if_any_failed(rows)


def _fail_if_any_failed(rows: list[dict[str, Any]]) -> None:
    """Exit 1, as a single-process bench does, when any requested measurement failed (after printing them all)."""
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        fail(f"{len(failed)} of {len(rows)} measurement(s) failed ({', '.join(sorted({r['status'] for r in failed}))})")
