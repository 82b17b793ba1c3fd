"""`vitzoo bench` on CPU with freed memory reused (the default) against glibc's own heap, interleaved.

Each round runs `vitzoo bench MODEL --no-store --json` twice as fresh processes, once with `VITZOO_HEAP=system`
(glibc maps big blocks afresh and trims, so every pass page-faults its activations in) and once as shipped
(`vitzoo.machine.reuse_freed_memory`), the order alternating between rounds. It records each run's throughput (the
bench's median over its rounds) and the minor page faults and system CPU time of the whole process. Then, per
variant, one more process runs `--passes` forward passes of the fused model and records each pass's page faults and
the RSS after it. The tables go under results/, named with the machine's ISA.

    python benchmarks/heap_reuse.py                       # vit-b16, batch 16, 6 rounds
    python benchmarks/heap_reuse.py --model vit-s16 --rounds 4 --batch-size 64
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
WARMUP, ROUNDS, ITERS = 2, 5, 3  # of each `vitzoo bench` process
VARIANTS = {"system": "glibc defaults (`VITZOO_HEAP=system`)", "reuse": "freed memory reused (default)"}


def bench_once(model: str, batch: int, heap: str) -> dict:
    """One `vitzoo bench` process: its result row, plus its minor faults and system seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-m", "vitzoo", "bench", model, "-b", str(batch), "--no-store", "--json",
         "--rounds", str(ROUNDS), "--iters", str(ITERS), "--warmup", str(WARMUP)],
        env={**os.environ, "VITZOO_HEAP": heap}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    row = json.loads(out)[0]
    assert row["env_heap"] == heap, (row["env_heap"], heap)
    return {"img_per_s": row["img_per_s"], "minor_faults": after.ru_minflt - before.ru_minflt,
            "sys_s": after.ru_stime - before.ru_stime, "passes": 1 + WARMUP + ROUNDS * ITERS, "env": row}  # fmt: skip


PASSES_CHILD = """
import resource, sys, torch, vitzoo
from vitzoo.machine import current_rss, reuse_freed_memory
from vitzoo.measure.fused import set_fused_kernels
reuse_freed_memory()
model = set_fused_kernels(vitzoo.create(sys.argv[1]).eval(), True)
x = torch.randn(int(sys.argv[2]), 3, model.config.img_size, model.config.img_size)
with torch.inference_mode():
    for _ in range(int(sys.argv[3])):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        model(x)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, current_rss() // 2**20)
"""


def passes(model: str, batch: int, heap: str, n: int) -> list[tuple[int, int]]:
    """(minor faults, RSS MiB after it) of each of ``n`` passes in one process."""
    out = subprocess.run([sys.executable, "-c", PASSES_CHILD, model, str(batch), str(n)], check=True,
                         env={**os.environ, "VITZOO_HEAP": heap}, capture_output=True, text=True).stdout  # fmt: skip
    return [(int(f), int(r)) for f, r in (line.split() for line in out.splitlines())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--model", default="vit-b16", help="registry name, as for `vitzoo bench`")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved pairs of `vitzoo bench` processes")
    parser.add_argument("--passes", type=int, default=12, help="passes of the per-pass fault count")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the .md and .json results")
    args = parser.parse_args()
    load_start = os.getloadavg()
    runs: dict[str, list[dict]] = {k: [] for k in VARIANTS}
    for r in range(args.rounds):
        for heap in VARIANTS if r % 2 == 0 else reversed(VARIANTS):
            runs[heap].append(bench_once(args.model, args.batch_size, heap))
            print(f"round {r + 1}/{args.rounds} {heap}: {runs[heap][-1]['img_per_s']:.2f} img/s", file=sys.stderr)
    per_pass = {heap: passes(args.model, args.batch_size, heap, args.passes) for heap in VARIANTS}
    env = runs["reuse"][-1]["env"]
    ratios = [b["img_per_s"] / a["img_per_s"] for a, b in zip(runs["system"], runs["reuse"], strict=True)]
    lines = [
        f"# `vitzoo bench {args.model} -b {args.batch_size}`: freed memory reused vs glibc's heap",
        "",
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `benchmarks/heap_reuse.py` on "
        f"{env['env_cpu']} ({env['env_cpu_capability']}, {env['env_cpu_count']} cores), {env['env_threads']} "
        f"threads, torch {env['env_torch']}, {env['kernels']} kernels; {args.rounds} rounds, each one fresh "
        f"process per variant (order alternating), each process {ROUNDS} timed rounds of {ITERS} passes. Load average "
        f"{load_start[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end. Faults and system time are the "
        f"whole process's (import, build and {runs['reuse'][0]['passes']} passes).",
        "",
        "| heap | img/s median | best | minor faults per process, median | system s per process, median |",
        "|---|---:|---:|---:|---:|",
    ]
    for heap, label in VARIANTS.items():
        rates = [x["img_per_s"] for x in runs[heap]]
        lines.append(f"| {label} | {statistics.median(rates):.2f} | {max(rates):.2f} | "
                     f"{statistics.median(x['minor_faults'] for x in runs[heap]):,.0f} | "
                     f"{statistics.median(x['sys_s'] for x in runs[heap]):.2f} |")  # fmt: skip
    lines += ["", f"Reused / glibc, per round: {', '.join(f'{x:.3f}' for x in ratios)}; "
              f"median {statistics.median(ratios):.3f}.", "",
              f"Each pass of one process ({args.passes} passes, fused kernels): minor page faults / RSS MiB after it.",
              "", "| heap | " + " | ".join(f"pass {i + 1}" for i in range(args.passes)) + " |",
              "|---|" + "---:|" * args.passes]  # fmt: skip
    lines += [f"| {VARIANTS[h]} | " + " | ".join(f"{f:,} / {r:,}" for f, r in per_pass[h]) + " |" for h in VARIANTS]
    lines.append("")
    text = "\n".join(lines)
    isa = env["env_cpu_capability"].lower()
    stem = f"heap-reuse-{args.model}-cpu-{isa}-{env['env_cpu_count']}core-pt{'.'.join(env['env_torch'].split('.')[:2])}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.md").write_text(text)
    rows = {k: [{key: v for key, v in x.items() if key != "env"} for x in xs] for k, xs in runs.items()}
    record = {"runs": rows, "ratios": ratios, "faults_rss_per_pass": per_pass, "env": env}
    (args.out / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(text)
    print(f"written: {args.out / stem}.md and .json")


if __name__ == "__main__":
    main()
