"""`vitzoo bench --peak`: measure the GEMM roofline of a device and dtype, print it and store it as a peak record."""

from __future__ import annotations

from vitzoo import dtypes
from vitzoo.cli._output import emit_csv, emit_json, err_console, info, number, render_table, warn

PEAK_COLUMNS = [("kernel", "kernel", None), ("M", "M", None), ("K", "K", None), ("N", "N", None),
                ("tflops", "TFLOP/s", number(3))]  # fmt: skip


def run_peak(device: str, dtype: str, threads: int | None, db: str | None, no_store: bool, fmt: str) -> None:
    """Measure, remember (for later runs' % of peak) and store the GEMM peak; print it as ``fmt``."""
    import torch

    from vitzoo.measure.device import num_threads, resolve_device
    from vitzoo.measure.records import record
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
        store.save(record(result, env=env))
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
