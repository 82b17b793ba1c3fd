"""The small image folder and the checkpoint of the README's "Fine-tune" run, made offline.

    python benchmarks/finetune_demo.py DIR
    vitzoo finetune DIR/vit-ti16-random.safetensors --data DIR/colours/train --val DIR/colours/val --img-size 64 ...

DIR/colours/{train,val}/CLASS/*.png: four classes of 48x48 images (noisy red, green and blue, and noisy black-and-white
stripes at a random phase), 40 training and 16 validation images per class. DIR/vit-ti16-random.safetensors: the
ViT-Ti/16 architecture with the original initialisation (a stand-in for a pretrained checkpoint where the Hub cannot
be reached; with one, pass its name instead: the command is the same).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import vitzoo
from vitzoo.weights.checkpoint import save_vitzoo

COLOURS = {"blue": (50, 60, 200), "green": (40, 180, 60), "red": (200, 40, 40)}


def image(kind: str, rng: np.random.Generator, size: int = 48) -> Image.Image:
    if kind == "stripes":
        rows = (np.arange(size)[:, None] + rng.integers(0, 8)) // 4 % 2 * 255
        base = np.repeat(np.broadcast_to(rows, (size, size))[..., None], 3, axis=2).astype(float)
    else:
        base = np.broadcast_to(np.array(COLOURS[kind], dtype=float), (size, size, 3))
    return Image.fromarray(np.clip(base + rng.normal(0, 40, size=(size, size, 3)), 0, 255).astype(np.uint8))


def make_folder(root: Path, per_class: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for kind in [*COLOURS, "stripes"]:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image(kind, rng).save(root / kind / f"{i:03d}.png")
    return root


def main(out: Path) -> None:
    make_folder(out / "colours" / "train", 40, 0)
    make_folder(out / "colours" / "val", 16, 1)
    torch.manual_seed(0)
    model = vitzoo.create("vit-ti16")
    save_vitzoo(out / "vit-ti16-random.safetensors", model.state_dict(), model.config)
    print(f"wrote {out / 'colours'} and {out / 'vit-ti16-random.safetensors'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "finetune-demo"))
