"""What exists: the architectures, their checkpoints and sources, closed-form sizes, the paper's numbers (no torch)."""

from __future__ import annotations

from vitzoo.lazy import lazy_exports

# Public name -> defining module, imported on first use (as ``vitzoo``'s own names): importing the package
# stays cheap.
_API = {
    "list_models": "vitzoo.zoo.lookup",
    "get_spec": "vitzoo.zoo.lookup",
    "class_names": "vitzoo.zoo.labels",
    "TABLE6": "vitzoo.zoo.paper",
    "count_macs": "vitzoo.zoo.analytic",
    "count_params": "vitzoo.zoo.analytic",
    "Preprocess": "vitzoo.zoo.preprocess",
    "resolve_preprocess": "vitzoo.zoo.preprocess",
    "UnknownModelError": "vitzoo.zoo.registry",
    "ViTConfig": "vitzoo.zoo.configs",
    "BiTConfig": "vitzoo.zoo.configs",
    "HybridConfig": "vitzoo.zoo.configs",
}
__all__ = sorted([*_API])

__getattr__, __dir__ = lazy_exports(__name__, _API)
