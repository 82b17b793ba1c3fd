"""vitzoo: Vision Transformers and their BiT ResNet baselines, faithful to the original checkpoints.

>>> import vitzoo
>>> vitzoo.list_models("vit-b*")
['vit-b8', 'vit-b16', 'vit-b32']
>>> model = vitzoo.create("vit-b16")  # random weights, the architecture of vit-b16's default checkpoint
>>> model = vitzoo.load("vit-b16")  # its pretrained weights (downloaded from the Hub, converted once, cached)
>>> model.checkpoint.name, [c.name for c in vitzoo.resolve("vit-b*")]  # one Checkpoint value per name
>>> vitzoo.predict(model, "cat.jpg")[0].top[0].name  # top-5 classes, named, with the checkpoint's preprocessing
>>> vitzoo.export("vit-b16", "vit-b16.onnx", "onnx")  # to ONNX, transformers or timm, checked before it is kept
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from vitzoo.lazy import lazy_exports

try:
    __version__ = version("vitzoo")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

# Public name -> defining module. Imported on first use, so `import vitzoo.errors` (and `vitzoo --help`)
# does not pay for torch.
_API = {
    "Checkpoint": "vitzoo.zoo.checkpoint",
    "create": "vitzoo.models.factory",
    "describe": "vitzoo.zoo.describe",
    "export": "vitzoo.exporting",
    "get_spec": "vitzoo.zoo.lookup",
    "list_models": "vitzoo.zoo.lookup",
    "load": "vitzoo.weights.loading",
    "predict": "vitzoo.evaluate.predict",
    "resolve": "vitzoo.zoo.lookup",
    "UnknownModelError": "vitzoo.zoo.registry",
}
__all__ = [
    "Checkpoint", "UnknownModelError", "__version__", "create", "describe", "export", "get_spec", "list_models", "load",
    "predict", "resolve",
]  # fmt: skip

if TYPE_CHECKING:
    from vitzoo.evaluate.predict import predict
    from vitzoo.exporting import export
    from vitzoo.models.factory import create
    from vitzoo.weights.loading import load
    from vitzoo.zoo.checkpoint import Checkpoint
    from vitzoo.zoo.describe import describe
    from vitzoo.zoo.lookup import get_spec, list_models, resolve
    from vitzoo.zoo.registry import UnknownModelError

__getattr__, __dir__ = lazy_exports(__name__, _API)
