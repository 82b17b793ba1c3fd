"""`vitzoo bench` from two source trees (before / after a change), interleaved on the same machine.

Each round runs `vitzoo bench MODEL -b BATCH --no-store --json` once per tree as a fresh process with that tree first
on PYTHONPATH, the order alternating between rounds, so drift and other processes' load fall on both sides alike.
Prints each run's throughput (the bench's median over its own rounds), the per-round after/before ratio, their
median, and the load average at the start and end; `--out FILE.md` also writes that as a Markdown table.

    python benchmarks/before_after.py --before /path/to/main --after .            # vit-b16, batch 16, 3 rounds
    python benchmarks/before_after.py --before ../main --after . --model vit-s16 --rounds 5 --out results/x.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path


def bench_once(tree: Path, model: str, batch: int, bench_args: list[str]) -> dict:
    """One `vitzoo bench` process run from ``tree``: its result row."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(
        [sys.executable, "-m", "vitzoo", "bench", model, "-b", str(batch), "--no-store", "--json", *bench_args],
        env=env, capture_output=True, text=True, check=True, cwd=tree,
    ).stdout  # fmt: skip
    (row,) = json.loads(out)
    if row["status"] != "ok":
        raise SystemExit(f"{tree}: {row['status']}: {row.get('error')}")
    return row


def _row(side: str, tree: Path, rates: list[float]) -> str:
    return f"| {side} (`{tree}`) | {', '.join(f'{v:.3f}' for v in rates)} | {statistics.median(rates):.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="source tree of the baseline (holds vitzoo/)")
    parser.add_argument("--after", type=Path, required=True, help="source tree of the change")
    parser.add_argument("--model", default="vit-b16")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (one process per tree each)")
    parser.add_argument("--bench-args", default="", help="passed on to `vitzoo bench`, e.g. '--rounds 3 --iters 2'")
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    load_start, started = os.getloadavg(), dt.datetime.now(dt.timezone.utc)
    runs: dict[str, list[float]] = {"before": [], "after": []}
    env_row = None
    for r in range(args.rounds):
        for side in trees if r % 2 == 0 else reversed(trees):
            row = bench_once(trees[side], args.model, args.batch_size, args.bench_args.split())
            runs[side].append(row["img_per_s"])
            env_row = row
            print(f"round {r + 1}/{args.rounds} {side}: {row['img_per_s']:.3f} img/s ({row['kernels']} kernels, "
                  f"load {os.getloadavg()[0]:.2f})", file=sys.stderr)  # fmt: skip
    load_end = os.getloadavg()
    ratios = [a / b for a, b in zip(runs["after"], runs["before"], strict=True)]
    lines = [
        f"# `vitzoo bench {args.model} -b {args.batch_size}`: before / after, interleaved",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC by `benchmarks/before_after.py` ({args.rounds} rounds, one fresh "
        f"process per tree and round, order alternating; bench arguments `{args.bench_args or 'defaults'}`) on "
        f"{env_row.get('env_cpu', '?')}, {env_row.get('threads')} threads, torch {env_row.get('env_torch', '?')}; "
        f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end.",
        "",
        "| tree | img/s per round | median |",
        "|---|---|---:|",
        *(_row(side, trees[side], runs[side]) for side in trees),
        "",
        f"After / before per round: {', '.join(f'{x:.3f}' for x in ratios)}; median {statistics.median(ratios):.3f}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
