"""Every program output the README shows, made by running the real thing, so that it cannot drift.

Each transcript below is one declaration: the inputs it needs (made offline, with fixed seeds, in a temporary
folder: `docs/transcript_inputs.py`) and the commands it runs, typed as the README prints them
(`docs/transcript_run.py` runs them). A transcript marked ``python`` runs the README's own ```python block that
comes right before its block. In README.md each generated block follows a marker ``<!-- transcript: NAME -->``
(the rule for which blocks need one: `docs/readme_blocks.py`; `tests/test_readme.py` checks it)::

    python docs/transcripts.py --list                 # the transcripts, fast or slow, exact or volatile
    python docs/transcripts.py --write [NAME ...]     # rewrite those README blocks (all without NAME)
    python docs/transcripts.py --check [NAME ...]     # exit 1, with a diff, where a block drifted (--fast: the quick)

A ``volatile`` transcript shows timings or other numbers of the machine and the moment (img/s, ms, dates, the CPU,
the GEMM peak, versions): `--check` compares it by its words with the numbers masked (`readme_blocks.shape`); the
others must match exactly. ``fast`` ones run in the default test run; ``after`` continues in the folder another
transcript left (its files and results database). After ``--write``, reread the prose around a rewritten volatile
block: it may quote that run's numbers, which no check compares.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import readme_blocks as blocks
import transcript_inputs as inputs
from transcript_run import ROOT, Work

README = ROOT / "README.md"


@dataclass(frozen=True)
class Transcript:
    """One README block: how it is made and how it is compared."""

    name: str
    make: Callable[[Work], str]
    volatile: bool = False
    fast: bool = False
    after: str | None = None
    python: bool = False


REGISTRY: dict[str, Transcript] = {}


def transcript(name: str, **how: object) -> Callable[[Callable[[Work], str]], Callable[[Work], str]]:
    """Register the decorated function as the transcript ``name`` (``how``: the `Transcript` fields)."""

    def register(make: Callable[[Work], str]) -> Callable[[Work], str]:
        REGISTRY[name] = Transcript(name, make, **how)  # type: ignore[arg-type]
        return make

    return register


def _snippet(w: Work) -> str:
    """What the README's Python snippet before the block prints."""
    return w.python(w.readme_code)


@transcript("list", fast=True)
def _list(w: Work) -> str:
    return w.sh("vitzoo list")


@transcript("predict")
def _predict(w: Work) -> str:
    w.input("ViT-S_16-gap.npz", inputs.s16_gap_npz)
    w.input("photos", inputs.predict_photos)
    return (w.sh("vitzoo convert ViT-S_16-gap.npz s16.safetensors")
            + w.sh("vitzoo predict s16.safetensors photos/ --top-k 3") + w.sh('echo "not a jpeg" > photos/notes.jpg')
            + w.sh('vitzoo predict s16.safetensors photos/ --top-k 1 --csv; echo "exit code $?"'))  # fmt: skip


@transcript("onnx-metadata", after="predict")
def _onnx_metadata(w: Work) -> str:
    """The `metadata_props` of the exported file, one per line, sorted; a long list (the class names) is cut."""
    import onnx

    w.sh("vitzoo export s16.safetensors s16.onnx --format onnx")
    props = {p.key: p.value for p in onnx.load(w.dir / "s16.onnx", load_external_data=False).metadata_props}
    return "".join(f"{key:<14} {_cut(props[key])}\n" for key in sorted(props))


def _cut(value: str) -> str:
    """A JSON list of more than eight items as its first four, how many are left out, and its last two."""
    items = json.loads(value) if value.startswith("[") else []
    if len(items) <= 8:
        return value
    return f"{json.dumps(items[:4])[:-1]}, ... {len(items) - 6} more ..., {json.dumps(items[-2:])[1:]}"


transcript("forward-intermediates", python=True)(_snippet)


@transcript("fewshot-layer")
def _fewshot_layer(w: Work) -> str:
    w.input("vit-ti16-random.safetensors", inputs.vit_ti16_random)
    w.input("fs", inputs.photo_crops)
    command = "vitzoo fewshot vit-ti16-random.safetensors --data fs --shots {} --layer {} --no-store"
    return w.sh(command.format("1,2,5", 5)) + w.sh(command.format(1, 12), fails=True)


@transcript("any-resolution", python=True, fast=True)
def _any_resolution(w: Work) -> str:
    w.input("vit-ti16-random.safetensors", inputs.vit_ti16_random)
    return _snippet(w)


@transcript("export-dynamic", volatile=True)
def _export_dynamic(w: Work) -> str:
    w.input("vit-ti16-random.safetensors", inputs.vit_ti16_random)
    return w.sh("vitzoo export vit-ti16-random.safetensors vit-ti16-any-size.onnx --format onnx --dynamic-size")


transcript("onnx-dynamic-python", python=True, volatile=True, after="export-dynamic")(_snippet)


@transcript("bench", volatile=True)
def _bench(w: Work) -> str:
    return w.sh("vitzoo bench vit-b16 --dtype bf16 -b 1,16")


@transcript("flops", fast=True)
def _flops(w: Work) -> str:
    return w.sh("vitzoo flops vit-b16 vit-l16 bit-r50x1") + w.sh("vitzoo flops vit-b16 --img-size 384")


@transcript("results", volatile=True, after="bench")
def _results(w: Work) -> str:
    return w.sh("vitzoo results --kind bench --models 'vit-b*'")


transcript("store-python", python=True, volatile=True, fast=True)(_snippet)


@transcript("eval", volatile=True)
def _eval(w: Work) -> str:
    w.input("vit-ti16-random.safetensors", inputs.vit_ti16_random)
    w.input("val", inputs.colour_val)
    w.input("fs", inputs.colour_fs)
    return (w.sh("vitzoo eval vit-ti16-random.safetensors --data val")
            + w.sh("vitzoo fewshot vit-ti16-random.safetensors --data fs --shots 1,2,5"))  # fmt: skip


@transcript("suite")
def _suite(w: Work) -> str:
    model = w.input("testing-random.safetensors", inputs.testing_random)
    w.input("suite", lambda path: inputs.suite(path, model))
    return w.sh("vitzoo eval testing-random.safetensors --suite suite --db results.sqlite")


@transcript("tradeoff", fast=True)
def _tradeoff(w: Work) -> str:
    (w.dir / "docs").mkdir()
    return w.sh("vitzoo tradeoff --reported-only --plot docs/tradeoff")


@transcript("results-compare", volatile=True)
def _results_compare(w: Work) -> str:
    for threads in (1, 2):
        w.sh(f"vitzoo bench testing -b 1,8 --threads {threads} --db lab.sqlite")
    return w.sh("vitzoo results compare threads=1 threads=2 --db lab.sqlite")


@transcript("finetune", volatile=True)
def _finetune(w: Work) -> str:
    w.input("benchmarks/finetune_demo.py", lambda path: shutil.copyfile(ROOT / "benchmarks/finetune_demo.py", path))
    return (w.sh("python benchmarks/finetune_demo.py .")
            + w.sh("vitzoo finetune vit-ti16-random.safetensors --data colours/train --val colours/val --img-size 64 "
                   "--steps 15 \\\n    -b 32 --accum 2 --lr 0.01 -o colours-ti16.safetensors"))  # fmt: skip


@transcript("finetune-eval", volatile=True, after="finetune")
def _finetune_eval(w: Work) -> str:
    return w.sh("vitzoo eval colours-ti16.safetensors --data colours/val --no-store")


@transcript("bench-train", volatile=True)
def _bench_train(w: Work) -> str:
    common = "-b 4,16 --img-size 112 --threads 1 --warmup 1 --iters 2 --rounds 2"
    return (w.sh(f"vitzoo bench vit-ti16 vit-s16 --mode train {common}")
            + w.sh(f"vitzoo bench vit-ti16 vit-s16 --mode train --grad-checkpointing {common}")
            + w.sh(f"vitzoo bench vit-s16 --mode train --dtype bf16 {common.replace('4,16', '16')}"))  # fmt: skip


class Session:
    """Transcripts run in one temporary folder: each in a folder of its own (or its ``after``'s), inputs made once."""

    def __init__(self, root: Path, readme: str) -> None:
        self.root, self.readme = root, readme
        self.made: dict[str, str] = {}
        self.folders: dict[str, Path] = {}

    def make(self, name: str) -> str:
        """The text of transcript ``name`` (run once per session)."""
        if name not in self.made:
            t = REGISTRY[name]
            if t.after:
                self.make(t.after)
                self.folders[name] = self.folders[t.after]
            else:
                self.folders[name] = self.root / name
                self.folders[name].mkdir()
            code = blocks.code_before(self.readme, name) if t.python else ""
            self.made[name] = t.make(Work(self.folders[name], self.root / "_inputs", code))
        return self.made[name]

    def drift(self, name: str) -> str:
        """How the README's block ``name`` differs from a new run (empty: it does not)."""
        return blocks.drift(name, blocks.find(self.readme, name).body, self.make(name), REGISTRY[name].volatile)


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically (a sibling file renamed over it)."""
    staged = path.with_name(f".{path.name}.transcripts")
    staged.write_text(text, encoding="utf-8")
    os.replace(staged, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    for flag in ("--list", "--write", "--check"):
        action.add_argument(flag, action="store_true")
    parser.add_argument("--fast", action="store_true", help="only the transcripts the default test run checks")
    parser.add_argument("names", nargs="*", metavar="NAME")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in REGISTRY]
    if unknown:
        print(f"error: no transcript named {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    names = args.names or [n for n, t in REGISTRY.items() if t.fast or not args.fast]
    if args.list:
        for n in names:
            t = REGISTRY[n]
            how = ["fast" if t.fast else "slow", "volatile" if t.volatile else "exact"]
            how += (["python"] if t.python else []) + ([f"after {t.after}"] if t.after else [])
            print(f"{n:<22} {' '.join(how)}")
        return 0
    drifted = []
    with tempfile.TemporaryDirectory(prefix="vitzoo-transcripts-") as tmp:
        session = Session(Path(tmp), README.read_text(encoding="utf-8"))
        for n in names:
            start = time.monotonic()
            if args.write:
                text = blocks.replace(session.readme, n, session.make(n))
                state = "unchanged" if text == session.readme else "rewritten"
                if text != session.readme:
                    _write(README, text)
                    session.readme = text
            else:
                diff = session.drift(n)
                state = "drifted" if diff else "ok"
                if diff:
                    drifted.append(n)
                    print(diff)
            print(f"{n}: {state} ({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)
    if drifted:
        print(
            f"drifted from README.md: {', '.join(drifted)} (python docs/transcripts.py --write NAME ...)",
            file=sys.stderr,
        )
    return 1 if drifted else 0


if __name__ == "__main__":
    sys.exit(main())
