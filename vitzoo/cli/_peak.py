"""`vitzoo bench --peak`: the GEMM roofline of a device and dtype, measured, kept for later runs, shown and stored;
and the line saying when a benchmark's % of peak comes from that kept measurement."""

from __future__ import annotations

from typing import Any

from vitzoo import dtypes
from vitzoo.cli._output import emit_csv, emit_json, err_console, info, number, render_table, warn


def announce_cached_peak(options: Any) -> None:
    """The GEMM peak for the % of peak column: one line when it comes from the cache instead of being measured."""
    from vitzoo.measure.bench import gemm_peak  # the harness's own (what its % of peak column uses)
    from vitzoo.measure.device import num_threads

    with num_threads(options.threads):
        peak = gemm_peak(options.device, options.torch_dtype)  # measured here (and kept) if this is the first time
    if peak.measured_at:
        info(f"GEMM peak {peak.tflops:.3f} TFLOP/s from the cache (measured {peak.measured_at} in this environment; "
             "`vitzoo bench --peak` measures it again)")  # fmt: skip


PEAK_COLUMNS = [("kernel", "kernel", None), ("M", "M", None), ("K", "K", None), ("N", "N", None),
                ("tflops", "TFLOP/s", number(3))]  # fmt: skip


def measure_peak(device: str, dtype: str, threads: int | None, db: str | None, no_store: bool, fmt: str) -> None:
    """Measure the GEMM roofline (`--peak`), keep it for later runs in this environment, store and show it."""
    import torch

    from vitzoo.measure.device import num_threads, resolve_device
    from vitzoo.measure.roofline import measure_gemm_peak, remember_peak
    from vitzoo.measure.store import ResultStore, environment

    resolve_device(device)
    store = None if no_store else ResultStore(db)
    from vitzoo.measure.cpu import int8_note, low_precision_warning

    slow = int8_note() if dtype == "int8" else low_precision_warning(dtype, device)
    if slow:
        warn(slow)
    with num_threads(threads), err_console.status(f"measuring {dtype} GEMM throughput on {device}"):
        torch_dtype = torch.int8 if dtype == "int8" else dtypes.to_torch(dtype)
        result = measure_gemm_peak(device, torch_dtype, seconds=1.0)
        env = environment(device)
    remember_peak(result)  # later `vitzoo bench` runs in this environment reuse it
    data = result.as_dict()
    if store is not None:
        store.add("bench", "gemm-peak", data, env)
        info(f"GEMM peak appended to {store.path}")
    if fmt == "json":
        emit_json({**data, "env": env})
        return
    rows = [{**r, "dtype": dtype} for r in data["results"]]
    if fmt == "csv":
        emit_csv(rows)
        return
    render_table(
        rows,
        PEAK_COLUMNS,
        title=f"GEMM peak {dtype} on {env['device_name']} ({env['threads']} threads): {result.tflops:.3f} TFLOP/s",
    )
