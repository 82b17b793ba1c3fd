"""Hugging Face ``datasets`` as an ``ImageDataset``: a folder saved with ``save_to_disk``, or a dataset name; and
``open_dataset``, which opens whichever of those or a folder (``vitzoo.evaluate.data``) the options name.

Offline (``HF_HUB_OFFLINE``, or the Hub unreachable: one short probe) only the datasets cache is asked, so a
dataset that is not there is one line at once instead of half a minute of retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from vitzoo.errors import VitzooError
from vitzoo.evaluate.data import IMAGENET_CLASSES, Classes, ImageDataset, flat_folder, image_folder
from vitzoo.evaluate.imagenet import NUM_IMAGENET_CLASSES


@dataclass(frozen=True)
class _HFReader:
    """Reads row ``i``'s image from a Hugging Face dataset (picklable, for loader workers)."""

    dataset: Any
    column: str

    def __call__(self, i: int) -> Image.Image:
        image = self.dataset[i][self.column]
        if not isinstance(image, Image.Image):
            raise ValueError(f"column {self.column!r} holds {type(image).__name__}, not an image")
        return image


def hf_dataset(name_or_path: str, split: str) -> ImageDataset:
    """A Hugging Face ``datasets`` split: a directory saved with ``save_to_disk``, or a dataset name.

    The image column is the one of type ``Image``, the label column the ``ClassLabel`` one; ImageNet-1k is
    recognised by its 1000 classes. Needs the optional ``datasets`` package.
    """
    try:
        import datasets
    except ImportError:
        raise VitzooError("--hf-dataset needs the `datasets` package: pip install datasets") from None
    try:
        if Path(name_or_path).expanduser().is_dir():
            loaded = datasets.load_from_disk(str(Path(name_or_path).expanduser()))
            ds = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        else:
            ds = _load_from_hub(datasets, name_or_path, split)
    except VitzooError:
        raise
    except KeyError:
        raise VitzooError(f"{name_or_path}: no split {split!r}") from None
    except Exception as e:  # datasets raises many types (hub, file, config errors)
        raise VitzooError(f"cannot open Hugging Face dataset {name_or_path!r}: {e}".splitlines()[0]) from None
    features = ds.features
    image_cols = [k for k, v in features.items() if isinstance(v, datasets.Image)]
    label_cols = [k for k, v in features.items() if isinstance(v, datasets.ClassLabel)]
    if not image_cols or not label_cols:
        raise VitzooError(f"{name_or_path}: needs an Image column and a ClassLabel column, has {dict(features)}")
    names = tuple(features[label_cols[0]].names)
    classes = IMAGENET_CLASSES if len(names) == NUM_IMAGENET_CLASSES else Classes(names)
    labels = [int(v) for v in ds[label_cols[0]]]
    if any(y < 0 for y in labels):
        raise VitzooError(f"{name_or_path} [{split}] has unlabelled rows (label -1); evaluate a labelled split")
    keys = [f"{split}[{i}]" for i in range(len(ds))]
    reader = _HFReader(ds, image_cols[0])
    return ImageDataset(range(len(ds)), keys, labels, classes, f"{name_or_path} [{split}]", reader)


def _load_from_hub(datasets: Any, name: str, split: str) -> Any:
    """``datasets.load_dataset``; offline (HF_HUB_OFFLINE, or the Hub unreachable: one short probe) only its cache
    is asked, so a missing dataset is one line at once instead of half a minute of retries."""
    import huggingface_hub.constants as hf

    from vitzoo.weights.hub import reachable

    if not hf.is_offline_mode() and reachable(hf.ENDPOINT):
        return datasets.load_dataset(name, split=split)
    saved = hf.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    hf.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        return datasets.load_dataset(name, split=split)
    except Exception:
        why = "HF_HUB_OFFLINE is set" if saved[0] else f"the Hub ({hf.ENDPOINT}) is unreachable"
        raise VitzooError(
            f"Hugging Face dataset {name!r} is not in the datasets cache ({datasets.config.HF_DATASETS_CACHE}) and "
            f"{why}; fetch it where the Hub is reachable, or pass a folder saved with save_to_disk to --hf-dataset "
            "(README: Offline and air-gapped use)"
        ) from None
    finally:
        hf.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


def open_dataset(
    path: str | None = None, *, labels_file: str | None = None, hf: str | None = None, split: str = "validation"
) -> ImageDataset:
    """The dataset the CLI options describe: ``hf`` name/path, a flat folder + label file, or an ImageFolder."""
    if hf is not None:
        if path is not None:
            raise VitzooError("give either --data or --hf-dataset, not both")
        return hf_dataset(hf, split)
    if path is None:
        raise VitzooError("no data: give --data PATH or --hf-dataset NAME")
    return flat_folder(path, labels_file) if labels_file else image_folder(path)
