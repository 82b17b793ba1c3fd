"""Evaluating: images prepared as each checkpoint expects, accuracy, few-shot, the compute-vs-accuracy trade-off."""

from __future__ import annotations

from vitzoo.lazy import lazy_exports

# Public name -> defining module, imported on first use (as ``vitzoo``'s own names): importing the package
# stays cheap.
_API = {
    "evaluate": "vitzoo.evaluate.accuracy",
    "RunOptions": "vitzoo.evaluate.accuracy",
    "EvalResult": "vitzoo.evaluate.accuracy",
    "image_folder": "vitzoo.evaluate.data",
    "flat_folder": "vitzoo.evaluate.data",
    "preprocess_image": "vitzoo.evaluate.data",
    "ImageDataset": "vitzoo.evaluate.data",
    "open_dataset": "vitzoo.evaluate.hf_datasets",
    "hf_dataset": "vitzoo.evaluate.hf_datasets",
    "extract_features": "vitzoo.evaluate.fewshot",
    "fewshot_accuracy": "vitzoo.evaluate.fewshot",
    "prepare": "vitzoo.evaluate.protocols",
    "IMAGENET_SYNSETS": "vitzoo.evaluate.imagenet",
}
__all__ = sorted([*_API])

__getattr__, __dir__ = lazy_exports(__name__, _API)
