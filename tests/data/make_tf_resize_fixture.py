"""Make tests/data/tf_resize.npz: vit_jax's evaluation resize (``tf.image.resize``) of a few real photos.

vit_jax evaluates by resizing the decoded uint8 image straight to the crop size with ``tf.image.resize``:
bilinear, half-pixel centres, no antialiasing, float32 output (no rounding back to uint8). This script records
what TensorFlow itself returns, so that tests/test_data.py can check vitzoo's torch implementation against it
without TensorFlow. Run it in a throwaway environment (TensorFlow is not a vitzoo dependency):

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu numpy scikit-image
    /tmp/tfvenv/bin/python tests/data/make_tf_resize_fixture.py

Contents (``np.load(..., allow_pickle=False)``): for each photo NAME, ``NAME`` is the uint8 (H, W, C) input
(C = 3, or 1 for a greyscale photo; a crop or a 2x subsample of a scikit-image photo, to keep the file small)
and ``NAME@SIZE`` the float32 (SIZE, SIZE, C) output of ``tf.image.resize``, kept at every ``stride@SIZE``-th
row and column, starting at row and column 0. ``tf_version`` says which TensorFlow made it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from skimage import data

OUT = Path(__file__).with_name("tf_resize.npz")
SIZES = {224: 4, 384: 6}  # output size -> stride of the rows/columns kept


def photos() -> dict[str, np.ndarray]:
    """uint8 RGB inputs: downscaled 2.3x to 224 (where antialiasing would matter), mixed, and upscaled."""
    return {
        "camera": data.camera()[:, :, None],  # 512 x 512 greyscale (one channel): downscaled 2.3x to 224
        "chelsea": data.chelsea()[::2, ::2],  # 150 x 226: upscaled to both sizes
        "astronaut": data.astronaut()[20:260, 120:440],  # 240 x 320: downscaled to 224, upscaled to 384
    }


def main() -> None:
    arrays: dict[str, np.ndarray] = {"tf_version": np.array(tf.__version__)}
    for name, image in photos().items():
        arrays[name] = image
        for size, stride in SIZES.items():
            out = tf.image.resize(image, [size, size], method="bilinear", antialias=False).numpy()
            assert out.dtype == np.float32 and out.shape == (size, size, image.shape[2])
            arrays[f"{name}@{size}"] = out[::stride, ::stride]
            arrays[f"stride@{size}"] = np.array(stride)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
