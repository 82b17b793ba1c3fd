"""vitzoo ViT-B/16 against its peers on this machine, same weights, one interleaved run.

Engines: transformers' ViTForImageClassification (SDPA attention) and timm's VisionTransformer (where timm is
installed: it needs torchvision, which the CPU-only torch wheel lacks, so run this script from a venv with the
CUDA builds of torch and torchvision, see benchmarks/README.md; elsewhere timm is skipped, saying so), each eager
and under torch.compile; vitzoo with plain aten kernels (the library default), with its fused oneDNN kernels (what
`vitzoo bench` runs by default) and under torch.compile; ONNX Runtime (and OpenVINO, where installed) running the
graph `vitzoo export --format onnx` writes. All get the same random weights (vitzoo's fused qkv split into HF's
query/key/value) and are checked to give the same logits before anything is timed. Runs are interleaved: each
round times every engine in turn (the order alternates between rounds), so load changes on the machine hit all of
them alike; the table reports the median over rounds. Every round also times single images (batch 1,
``--latency-iters`` passes) for the batch-1 latency (p50 over all rounds). The GEMM roofline
(vitzoo.measure.roofline) is measured before and after and in every round (% of peak then also per round), and the
load average and the CPU's instruction set are recorded with the result. bf16 runs only where the CPU has native
bf16 (AVX512-BF16 or AMX); ONNX Runtime and OpenVINO are timed in fp32 only (the deployment matrix,
matrix_vit.py, runs them in every precision). The process keeps the memory it frees, as `vitzoo bench` does on CPU
(`vitzoo.machine.reuse_freed_memory`; `VITZOO_HEAP=system` keeps glibc's defaults): every PyTorch engine,
transformers and timm too, runs under the same heap.

    python benchmarks/peer_vit.py                      # fp32 (+ bf16 if native), batch 16: writes results/
    python benchmarks/peer_vit.py --dtypes bf16 --rounds 3 --batch-size 8 --no-compile
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import importlib.util
import json
import os
import statistics
import time
from pathlib import Path

import torch

import vitzoo
from vitzoo.dtypes import to_torch
from vitzoo.errors import VitzooError
from vitzoo.machine import reuse_freed_memory
from vitzoo.measure.env import environment
from vitzoo.measure.fused import set_fused_kernels
from vitzoo.measure.history import append_history, prepare_history, result_stem
from vitzoo.measure.roofline import measure_gemm_peak
from vitzoo.weights.convert.torch_formats import canonical_to_transformers, hf_layout
from vitzoo.zoo.analytic import count_macs

RESULTS = Path(__file__).parent / "results"


def hf_vit_b16(model: torch.nn.Module) -> torch.nn.Module:
    """transformers ViT-B/16 (tanh GELU, LN eps 1e-6, as the original) holding ``model``'s weights."""
    from transformers import ViTConfig, ViTForImageClassification

    c = model.config
    config = ViTConfig(hidden_size=c.width, num_hidden_layers=c.depth, num_attention_heads=c.num_heads,
                       intermediate_size=c.mlp_dim, image_size=c.img_size, patch_size=c.patch_size,
                       hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, num_labels=c.num_classes,
                       attn_implementation="sdpa")  # fmt: skip
    hf = ViTForImageClassification(config).eval()
    layout = hf_layout(hf.state_dict())  # transformers >= 5 renamed the layers in memory
    hf.load_state_dict(canonical_to_transformers(model.state_dict(), bit=False, layout=layout), strict=True)
    assert hf.config._attn_implementation == "sdpa"
    return hf


def time_passes(fn, x: torch.Tensor, iters: int) -> float:
    """Images per second over ``iters`` back-to-back passes."""
    t0 = time.perf_counter()
    for _ in range(iters):
        fn(x)
    return x.shape[0] * iters / (time.perf_counter() - t0)


HF = "transformers ViTForImageClassification (sdpa)"
HF_COMPILED = "transformers + torch.compile"
TIMM = "timm VisionTransformer (gelu_tanh)"
TIMM_COMPILED = "timm + torch.compile"
AUTO = "vitzoo aten kernels (library default)"
FUSED = "vitzoo fused oneDNN kernels (`vitzoo bench` default)"
COMPILED = "vitzoo + torch.compile"
ORT = "ONNX Runtime (vitzoo export)"
OPENVINO = "OpenVINO (vitzoo export)"


def native_bf16() -> bool:
    """The CPU does bf16 dot products in hardware (AVX512-BF16 / AMX), so bf16 is worth timing."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check and check()) and torch.backends.cpu.get_cpu_capability() != "AVX2"


def timm_vit_b16(model: torch.nn.Module) -> torch.nn.Module | None:
    """timm's ViT-B/16 built as vitzoo's timm export names it (tanh GELU, as the original), holding ``model``'s
    weights; None where timm is not installed."""
    if importlib.util.find_spec("timm") is None:
        return None
    import timm

    from vitzoo.exporting.to_timm import timm_model
    from vitzoo.weights.convert.torch_formats import canonical_to_timm

    name, kwargs = timm_model(model.config)
    net = timm.create_model(name, pretrained=False, **kwargs).eval()
    net.load_state_dict(canonical_to_timm(model.state_dict(), bit=False), strict=True)
    return net


def latency_ms(fn, x: torch.Tensor, iters: int) -> list[float]:
    """Milliseconds of each of ``iters`` single passes."""
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn(x)
        times.append(1e3 * (time.perf_counter() - t0))
    return times


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def onnx_engines(model: torch.nn.Module, threads: int) -> dict:
    """ONNX Runtime (and OpenVINO) running vitzoo's exported graph of ``model`` (fp32), as numpy callables."""
    from vitzoo.measure.backends import OpenVinoRunner, OrtRunner
    from vitzoo.measure.bench import BenchOptions

    engines = {}
    options = BenchOptions(backend="onnxruntime", threads=threads, gemm_peak=False)
    if all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")):
        runner = OrtRunner(model, options, model.config.img_size, torch.device("cpu"), threads)
        engines[ORT] = runner.forward
    if importlib.util.find_spec("openvino") and ORT in engines:
        runner = OpenVinoRunner(model, BenchOptions(backend="openvino", threads=threads, gemm_peak=False),
                                model.config.img_size, torch.device("cpu"), threads)  # fmt: skip
        engines[OPENVINO] = runner.forward
    return engines


def run(
    batch: int, dtypes: list[str], rounds: int, iters: int, warmup: int, compile_: bool, latency_iters: int = 3
) -> dict:
    torch.manual_seed(0)
    ours = vitzoo.create("vit-b16").eval()
    torch.nn.init.normal_(ours.head.weight, std=0.02)  # a non-zero head, so the logits check means something
    peer = hf_vit_b16(ours)
    timm_net = timm_vit_b16(ours)
    no_timm = "timm is not installed (it needs torchvision: run from a venv with its CUDA builds, benchmarks/README.md)"
    gflops = 2 * count_macs(ours.config) / 1e9
    x32 = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    load_start = os.getloadavg()
    heap = "freed memory reused" if reuse_freed_memory() else "glibc defaults"
    report: dict = {"batch_size": batch, "gflops_per_img": gflops, "rounds": rounds, "iters": iters, "dtypes": {},
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": native_bf16(),
                    "threads": torch.get_num_threads(), "compile_s": {}, "heap": heap,
                    "skipped": {} if timm_net else {TIMM: no_timm}}  # fmt: skip
    for name in dtypes:
        dtype = to_torch(name)
        ours.to(dtype), peer.to(dtype)
        fused = set_fused_kernels(copy.deepcopy(ours), True)  # a second copy: each keeps its own weight cache
        x = x32.to(dtype)
        models = {HF: lambda t: peer(pixel_values=t).logits, AUTO: ours, FUSED: fused}
        if timm_net is not None:
            models[TIMM] = timm_net.to(dtype)
        if compile_:
            hf_compiled = torch.compile(peer, dynamic=False)
            models[HF_COMPILED] = lambda t, c=hf_compiled: c(pixel_values=t).logits
            models[COMPILED] = torch.compile(ours, dynamic=False)
            if timm_net is not None:
                models[TIMM_COMPILED] = torch.compile(timm_net, dynamic=False)
        numpy_engines = onnx_engines(ours, torch.get_num_threads()) if name == "fp32" else {}
        for k, f in numpy_engines.items():
            models[k] = lambda t, f=f: torch.from_numpy(f(t.numpy()))  # the same batch, as numpy (no copy)
        with torch.inference_mode():
            for k in (HF_COMPILED, COMPILED, TIMM_COMPILED):  # the first calls compile (batch 16, then 1): timed apart
                if k in models:
                    t0 = time.perf_counter()
                    models[k](x), models[k](x[:1])
                    report["compile_s"][f"{name} {k}"] = time.perf_counter() - t0
            ref = models[HF](x).float()
            diffs = {k: (f(x).float() - ref).abs().max().item() for k, f in models.items()}
            peak_before = measure_gemm_peak("cpu", dtype, seconds=0.5).tflops
            for f in models.values():
                for _ in range(warmup):
                    f(x)
            rates: dict[str, list[float]] = {k: [] for k in models}
            latencies: dict[str, list[float]] = {k: [] for k in models}
            peaks: list[float] = []  # the roofline once per round too: on a shared machine it moves with the load
            for r in range(rounds):
                for k in models if r % 2 == 0 else reversed(models):  # alternate the order, too
                    rates[k].append(time_passes(models[k], x, iters))
                    latencies[k] += latency_ms(models[k], x[:1], latency_iters)
                peaks.append(measure_gemm_peak("cpu", dtype, seconds=0.1).tflops)
            peak_after = measure_gemm_peak("cpu", dtype, seconds=0.5).tflops
        peak = max(peak_before, peak_after)
        hf_rate = statistics.median(rates[HF])
        report["dtypes"][name] = {
            "max_abs_logit": ref.abs().max().item(),
            "gemm_peak_tflops": peak,
            "gemm_peak_tflops_before_after": [peak_before, peak_after],
            "gemm_peak_tflops_rounds": peaks,
            "models": {
                k: {
                    "img_per_s": statistics.median(v),
                    "img_per_s_rounds": v,
                    "speedup_vs_transformers": statistics.median(v) / hf_rate,
                    "speedup_vs_fused": statistics.median(v) / statistics.median(rates[FUSED]),
                    "best_round_img_per_s": max(v),  # robust to bursts of load from other jobs on a shared machine
                    "best_speedup_vs_transformers": max(v) / max(rates[HF]),
                    "best_speedup_vs_fused": max(v) / max(rates[FUSED]),
                    "tflops": gflops * statistics.median(v) / 1e3,
                    "pct_gemm_peak": 100 * gflops * statistics.median(v) / 1e3 / peak,
                    "pct_gemm_peak_per_round": statistics.median(
                        100 * gflops * rate / 1e3 / p for rate, p in zip(v, peaks, strict=True)
                    ),
                    "max_abs_logit_diff_vs_transformers": diffs[k],
                    "latency_b1_ms": statistics.median(latencies[k]),
                    "latency_b1_p90_ms": p90(latencies[k]),
                    "latency_vs_fused": statistics.median(latencies[k]) / statistics.median(latencies[FUSED]),
                }
                for k, v in rates.items()
            },
        }
    report["load_average_start"] = load_start
    report["load_average_end"] = os.getloadavg()
    return report


def markdown(report: dict, env: dict) -> str:
    lines = [
        f"# ViT-B/16 inference: vitzoo vs transformers vs ONNX Runtime, batch {report['batch_size']}, "
        f"{env['device_name']} ({report['cpu_capability']}, {report['threads']} threads)",
        "",
        f"Measured {report['date']} with `python benchmarks/peer_vit.py`; median img/s over {report['rounds']} "
        f"interleaved rounds of {report['iters']} passes; random weights (speed does not depend on them), "
        f"{report['gflops_per_img']:.2f} GFLOPs per image. CPU instruction set (torch's dispatch level): "
        f"{report['cpu_capability']}, native bf16: {'yes' if report['native_bf16'] else 'no'}. Load average "
        f"(1, 5, 15 min) at start {_load(report['load_average_start'])}, at end {_load(report['load_average_end'])}. "
        f"Heap: {report['heap']} (the same for every engine).",
        "",
        "| dtype | engine | img/s (median) | vs transformers | vs vitzoo bench default | batch-1 ms p50 / p90 "
        "| batch-1 vs vitzoo bench default | TFLOP/s | % GEMM peak | % of the round's GEMM peak (median) "
        "| best round img/s | best vs transformers | best vs vitzoo bench default | best % GEMM peak "
        "| GEMM peak TFLOP/s | max abs logit diff |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, d in report["dtypes"].items():
        for model, m in d["models"].items():
            best_pct = 100 * report["gflops_per_img"] * m["best_round_img_per_s"] / 1e3 / d["gemm_peak_tflops"]
            lines.append(
                f"| {name} | {model} | {m['img_per_s']:.2f} | {m['speedup_vs_transformers']:.2f}x | "
                f"{m['speedup_vs_fused']:.2f}x | {m['latency_b1_ms']:.0f} / {m['latency_b1_p90_ms']:.0f} | "
                f"{m['latency_vs_fused']:.2f}x | {m['tflops']:.3f} | {m['pct_gemm_peak']:.0f}% | "
                f"{m['pct_gemm_peak_per_round']:.0f}% | "
                f"{m['best_round_img_per_s']:.2f} | {m['best_speedup_vs_transformers']:.2f}x | "
                f"{m['best_speedup_vs_fused']:.2f}x | {best_pct:.0f}% | "
                f"{d['gemm_peak_tflops']:.3f} | {m['max_abs_logit_diff_vs_transformers']:.1e} |"
            )
    lines += [
        "",
        "% GEMM peak divides by the larger roofline measured before and after the run; the next column "
        "divides each round's throughput by the roofline measured in that round and takes the median. Batch-1 "
        "latency: p50 and p90 over every single-image pass of every round; the ratio is to vitzoo's p50 (below 1x "
        "is faster).",
    ]
    lines += [f"\nNot run: {k}: {why}." for k, why in report.get("skipped", {}).items()]
    if report["compile_s"]:
        compiled = ", ".join(f"{k} {v:.0f} s" for k, v in report["compile_s"].items())
        lines += ["", f"First call (compilation) of the compiled engines: {compiled}."]
    scale = ", ".join(f"{n} {d['max_abs_logit']:.2f}" for n, d in report["dtypes"].items())
    lines += ["", f"Largest logit magnitude, for scale: {scale}.", "", "Environment:", "", "```",
              json.dumps(env, indent=2), "```", ""]  # fmt: skip
    return "\n".join(lines)


def _load(avg: list[float] | tuple[float, ...]) -> str:
    return ", ".join(f"{a:.2f}" for a in avg)


HISTORY_FORMATS = {"img_per_s": ".3f", "best_round_img_per_s": ".3f", "speedup_vs_transformers": ".3f",
                   "speedup_vs_fused": ".3f", "tflops": ".4f", "pct_gemm_peak": ".1f", "pct_gemm_peak_per_round": ".1f",
                   "max_abs_logit_diff_vs_transformers": ".2e"}  # fmt: skip
LATENCY_FORMATS = {"latency_b1_ms": ".1f", "latency_b1_p90_ms": ".1f", "latency_vs_fused": ".3f"}
# the latency columns came last: an older history gains them (vitzoo.measure.history)
HISTORY_COLUMNS = ("date", "dtype", "model", "batch_size", "rounds", *HISTORY_FORMATS, "gemm_peak_tflops",
                   "load_average_start", *LATENCY_FORMATS)  # fmt: skip


def history_rows(report: dict) -> list[dict]:
    """One row per dtype and engine of a run, keyed by HISTORY_COLUMNS."""
    return [
        {"date": report["date"], "dtype": name, "model": model, "batch_size": report["batch_size"],
         "rounds": report["rounds"], **{k: format(m[k], f) for k, f in HISTORY_FORMATS.items()},
         "gemm_peak_tflops": f"{d['gemm_peak_tflops']:.4f}",
         "load_average_start": f"{report['load_average_start'][0]:.2f}",
         **{k: format(m[k], f) for k, f in LATENCY_FORMATS.items() if k in m}}
        for name, d in report["dtypes"].items()
        for model, m in d["models"].items()
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default: %(default)s)")
    parser.add_argument("--dtypes", default=None, help="comma-separated, of fp32, bf16, fp16 (default: fp32, and "
                        "bf16 where the CPU has it natively)")  # fmt: skip
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile engines")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds, the table gives their "
                        "median (default: %(default)s)")  # fmt: skip
    parser.add_argument("--iters", type=int, default=3, help="timed passes per model per round (default: "
                        "%(default)s)")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes per model before the "
                        "first round (default: %(default)s)")  # fmt: skip
    parser.add_argument("--latency-iters", type=int, default=3, help="batch-1 passes per model per round "
                        "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's, one per "
                        "core)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results: the run's .md and "
                        ".json, and the .csv history that every run appends to (default: %(default)s)")  # fmt: skip
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtypes = [d.strip() for d in (args.dtypes or ("fp32,bf16" if native_bf16() else "fp32")).split(",")]
    stem = result_stem("peer-vit-b16")
    try:
        history = prepare_history(args.out, stem, HISTORY_COLUMNS)
    except VitzooError as e:
        raise SystemExit(f"error: {e}") from None
    report = run(args.batch_size, dtypes, args.rounds, args.iters, args.warmup, not args.no_compile, args.latency_iters)
    report["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    env = environment("cpu")
    (args.out / f"{stem}.json").write_text(json.dumps({**report, "env": env}, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(report, env))
    append_history(history, HISTORY_COLUMNS, history_rows(report))
    print(markdown(report, env))
    print(f"written: {args.out / stem}.md and .json; run appended to {history}")


if __name__ == "__main__":
    main()
