"""The deployment matrix of ViT-B/16 on this machine: every runtime x fp32/bf16/int8, speed and fidelity, one run.

It runs what `vitzoo bench vit-b16 --backend torch,onnxruntime,openvino --dtype fp32,bf16,int8` runs
(vitzoo.measure.matrix: interleaved rounds, the order reversed every other round; img/s at the throughput batch,
batch-1 latency, RSS growth, % of the matching GEMM roofline, fidelity to the fp32 PyTorch model with MLPerf's 99%
rule), with random weights (speed does not depend on them; the zero head is re-drawn so logits mean something)
on the four real photos of tests/data/reference and their mirror images (fidelity) and the same photos upside down
and transposed (int8 calibration, apart from the fidelity images): no pretrained ViT-B/16 or labelled data needed.
Writes the run's .md and .json and appends it to this machine kind's history (the CPU's ISA, its cores and torch's
version in the file name).

    python benchmarks/matrix_vit.py                        # batch 16, 4 rounds
    python benchmarks/matrix_vit.py --rounds 2 --dtypes fp32,int8 --backends torch,openvino
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import torch

from vitzoo.errors import VitzooError
from vitzoo.measure.history import append_history, prepare_history, result_stem

RESULTS = Path(__file__).parent / "results"
PHOTOS = Path(__file__).parents[1] / "tests" / "data" / "reference" / "images224.inputs.npy"
HISTORY_COLUMNS = ("date", "backend", "precision", "status", "batch_size", "rounds", "img_per_s", "latency_b1_ms",
                   "latency_b1_p99_ms", "memory_mib", "pct_peak", "peak_tflops", "max_abs_err", "top1_agreement",
                   "degraded", "load_average_start", "other_cpu", "why")  # fmt: skip


def precision(r) -> str:
    return r.dtype + (f" {r.method}" if r.method else "") + (" (default)" if r.method and r.default and
                                                             r.backend == "torch" else "")  # fmt: skip


def _f(v, spec: str) -> str:
    return "" if v is None else format(v, spec)


def history_rows(results: list, date: str, load: float) -> list[dict]:
    """One row per cell of a run, keyed by HISTORY_COLUMNS."""
    return [{"date": date, "backend": r.backend, "precision": precision(r), "status": r.status,
             "batch_size": r.batch_size, "rounds": r.rounds, "img_per_s": _f(r.img_per_s, ".3f"),
             "latency_b1_ms": _f(r.latency_b1_ms, ".1f"), "latency_b1_p99_ms": _f(r.latency_b1_p99_ms, ".1f"),
             "memory_mib": _f(r.memory_mib, ".0f"), "pct_peak": _f(r.pct_peak, ".1f"),
             "peak_tflops": _f(r.peak_tflops, ".4f"), "max_abs_err": _f(r.max_abs_err, ".2e"),
             "top1_agreement": _f(r.top1_agreement, ".3f"), "degraded": "" if r.degraded is None else r.degraded,
             "load_average_start": f"{load:.2f}", "other_cpu": _f(r.other_cpu, ".2f"),
             "why": r.error or r.degraded_why or ""} for r in results]  # fmt: skip


def markdown(results: list, meta: dict, env: dict) -> str:
    ok = next((r for r in results if r.status == "ok"), results[0])
    lines = [
        f"# ViT-B/16 deployment matrix, {env['device_name']} ({meta['cpu_capability']}, {ok.threads} threads)",
        "",
        f"Measured {meta['date']} with `python benchmarks/matrix_vit.py` ({meta['args']}): {ok.rounds} interleaved "
        f"rounds; img/s is the median over rounds of {ok.iters} passes at batch {ok.batch_size}, latency is over "
        f"every batch-1 pass; random weights, {ok.gflops:.2f} GFLOPs per image; fidelity against the fp32 PyTorch "
        f"model on {ok.fid_source}; int8 calibrated on {meta['calib_source']}. Load average (1, 5, 15 min) at start "
        f"{meta['load_start']}, at end {meta['load_end']}; other processes used {ok.other_cpu} cores on average "
        f"during the timed rounds{' (contended: a shared, busy machine)' if ok.contended else ''}.",
        "",
        "| runtime | precision | img/s | batch-1 ms p50 / p90 / p99 | RSS growth MiB | % roofline | max abs logit err "
        "| mean abs logit err | top-1 agreement | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if r.status != "ok":
            lines.append(f"| {r.backend} | {precision(r)} | — | — | — | — | — | — | — | {r.status}: {r.error} |")
            continue
        note = f"**degraded**: {r.degraded_why}" if r.degraded else (r.note or "")
        roof = "—" if r.pct_peak is None else f"{r.pct_peak:.0f}% of {r.peak_tflops:.3f}"
        lines.append(
            f"| {r.backend} | {precision(r)} | {r.img_per_s:.2f} | {r.latency_b1_ms:.0f} / {r.latency_b1_p90_ms:.0f} / "
            f"{r.latency_b1_p99_ms:.0f} | {r.memory_mib:.0f} | {roof} | {r.max_abs_err:.2e} | {r.mean_abs_err:.2e} "
            f"| {100 * r.top1_agreement:.1f}% | {note} |"
        )
    lines += ["", "% roofline: achieved TFLOP/s (TOP/s for int8: every MAC counted in the cell's precision) over the "
              "GEMM peak of that precision measured in the same process (int8: `torch._int_mm`).", "",
              "Preparation (quantization, calibration) and warm-up (compilation included), seconds: "
              + ", ".join(f"{r.backend} {precision(r)} {r.prepare_s:.0f} + {r.warmup_s:.0f}" for r in results
                          if r.status == "ok") + ".", "", "Environment:", "", "```", json.dumps(env, indent=2),
              "```", ""]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=16, help="throughput batch (default: %(default)s)")
    parser.add_argument("--backends", default="torch,onnxruntime,openvino", help="(default: %(default)s)")
    parser.add_argument("--dtypes", default="fp32,bf16,int8", help="(default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default: %(default)s)")
    parser.add_argument("--iters", type=int, default=2, help="passes per cell and round at the throughput batch "
                        "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--latency-iters", type=int, default=3, help="batch-1 passes per cell and round (default: "
                        "%(default)s)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's, one per core)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the run's .md and .json and the .csv "
                        "history every run appends to (default: %(default)s)")  # fmt: skip
    args = parser.parse_args()
    import vitzoo
    from vitzoo.measure.env import environment
    from vitzoo.measure.matrix import MatrixData, MatrixOptions, run_matrix

    stem = result_stem("matrix-vit-b16")
    try:
        history = prepare_history(args.out, stem, HISTORY_COLUMNS)
    except VitzooError as e:
        raise SystemExit(f"error: {e}") from None
    options = MatrixOptions(backends=tuple(args.backends.split(",")), dtypes=tuple(args.dtypes.split(",")),
                            batch_size=args.batch_size, rounds=args.rounds, iters=args.iters,
                            latency_iters=args.latency_iters, threads=args.threads)  # fmt: skip
    photos = np.load(PHOTOS, allow_pickle=False)
    images = np.ascontiguousarray(np.concatenate([photos, photos[..., ::-1]]))
    shown = "the 4 photos of tests/data/reference and their mirror images"
    calib = np.ascontiguousarray(np.concatenate([photos[..., ::-1, :], photos.transpose(0, 1, 3, 2)]))
    calib_source = "8 other images: the 4 photos upside down and transposed (not the fidelity images)"
    data = MatrixData(calib, calib_source, images, shown)
    torch.manual_seed(0)
    model = vitzoo.create("vit-b16")
    load_start = os.getloadavg()
    results = run_matrix(model, "vit-b16", options, data, lambda text: print(f"... {text}", flush=True))
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = {"date": date, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "calib_source":
            calib_source, "load_start": ", ".join(f"{a:.2f}" for a in load_start),
            "load_end": ", ".join(f"{a:.2f}" for a in os.getloadavg()),
            "args": " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                             if k != "out" and v is not None)}  # fmt: skip
    env = environment("cpu")
    (args.out / f"{stem}.json").write_text(json.dumps({**meta, "results": [r.as_dict() for r in results],
                                                       "env": env}, indent=2) + "\n")  # fmt: skip
    text = markdown(results, meta, env)
    (args.out / f"{stem}.md").write_text(text)
    append_history(history, HISTORY_COLUMNS, history_rows(results, date, load_start[0]))
    print(text)
    print(f"written: {args.out / stem}.md and .json; run appended to {history}")


if __name__ == "__main__":
    main()
