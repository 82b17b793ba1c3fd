"""Image folders with symbolic links: followed, but a link cycle is walked once instead of forever."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vitzoo.evaluate.data import image_folder


def _image(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(path)


def test_symlink_cycles_end_and_linked_folders_are_followed(tmp_path):
    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    _image(root / "cats" / "a.png")
    _image(root / "cats" / "sub" / "b.png")
    (root / "cats" / "sub" / "loop").symlink_to("..", target_is_directory=True)  # cats/sub/loop -> cats
    (root / "cats" / "self").symlink_to(".", target_is_directory=True)
    _image(elsewhere / "c.png")
    (root / "dogs").symlink_to(elsewhere, target_is_directory=True)  # a linked class folder is followed
    (root / "dogs-again").mkdir()
    (root / "dogs-again" / "alias").symlink_to(elsewhere, target_is_directory=True)
    ds = image_folder(root)
    assert ds.classes.names == ("cats", "dogs", "dogs-again")
    assert sorted(zip(ds.keys, ds.labels, strict=True)) == [("a", 0), ("b", 0), ("c", 1), ("c", 2)]
