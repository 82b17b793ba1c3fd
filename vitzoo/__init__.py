"""vitzoo: Vision Transformers and their ResNet baselines, faithful to the original checkpoints.

>>> import vitzoo
>>> vitzoo.list_models("vit-b*")
['vit-b8', 'vit-b16', 'vit-b32']
>>> model = vitzoo.create("vit-b16")  # random weights, the architecture of vit-b16's default checkpoint
>>> model = vitzoo.load("vit-b16")  # its pretrained weights (downloaded from the Hub, converted once, cached)
"""

from importlib.metadata import PackageNotFoundError, version

from vitzoo.factory import create, describe, get_spec, list_models
from vitzoo.loading import load
from vitzoo.registry import UnknownModelError

try:
    __version__ = version("vitzoo")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["UnknownModelError", "__version__", "create", "describe", "get_spec", "list_models", "load"]
