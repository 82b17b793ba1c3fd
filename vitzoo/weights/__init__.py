"""Getting weights: reading files safely, converting every known layout, the Hub and URLs, lock files, ``load``."""

from __future__ import annotations

from vitzoo.lazy import lazy_exports

# Public name -> defining module, imported on first use (as ``vitzoo``'s own names): importing the package
# stays cheap.
_API = {
    "load": "vitzoo.weights.loading",
    "save_vitzoo": "vitzoo.weights.checkpoint",
    "ZeroHeadWarning": "vitzoo.weights.loading",
}
__all__ = sorted([*_API])

__getattr__, __dir__ = lazy_exports(__name__, _API)
