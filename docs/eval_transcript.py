"""Makes the README's `vitzoo eval` / `vitzoo fewshot` transcript from a real run, so that it cannot drift.

A randomly initialised ViT-Ti/16 (its head re-initialised with a fixed seed: a zero head gives constant logits,
which `vitzoo eval` refuses) is saved to a file, two small folders of synthetic images are written, and the two
commands of the README run in a temporary directory, their output printed as the README shows it (run with
COLUMNS=200)::

    COLUMNS=200 python docs/eval_transcript.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import vitzoo
from vitzoo.weights.checkpoint import save_vitzoo

COMMANDS = [
    ["eval", "vit-ti16-random.safetensors", "--data", "val"],
    ["fewshot", "vit-ti16-random.safetensors", "--data", "fs", "--shots", "1,2,5", "--img-size", "224"],
]


def _image(path: Path, colour: tuple[int, int, int], rng: np.random.Generator) -> None:
    pixels = np.clip(np.array(colour) + rng.normal(0, 40, (96, 128, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def make_files(root: Path) -> None:
    """The model file, val/ (two ImageNet synset folders, four images and a text file) and fs/ (three classes of
    eight images each)."""
    torch.manual_seed(0)
    model = vitzoo.create("vit-ti16")
    torch.nn.init.normal_(model.head.weight, std=0.02)
    save_vitzoo(root / "vit-ti16-random.safetensors", model.state_dict(), model.config)
    rng = np.random.default_rng(0)
    for synset, colour in (("n01440764", (200, 60, 60)), ("n07920052", (60, 60, 200))):
        (root / "val" / synset).mkdir(parents=True)
        for i in range(2):
            _image(root / "val" / synset / f"{synset}_{i}.png", colour, rng)
    (root / "val" / "n07920052" / "notes.txt").write_text("not an image\n")
    for name, colour in (("red", (220, 40, 40)), ("green", (40, 220, 40)), ("blue", (40, 40, 220))):
        (root / "fs" / name).mkdir(parents=True)
        for i in range(8):
            _image(root / "fs" / name / f"{i}.png", colour, rng)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_files(root)
        env = {**os.environ, "VITZOO_DB": str(root / "results.sqlite")}
        for args in COMMANDS:
            print("$ vitzoo " + " ".join(args), flush=True)
            run = subprocess.run([sys.executable, "-m", "vitzoo", *args], cwd=root, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
            print(run.stdout.replace(str(root / "results.sqlite"), "results.sqlite"), end="", flush=True)


if __name__ == "__main__":
    main()
