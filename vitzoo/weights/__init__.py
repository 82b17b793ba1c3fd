"""Getting weights: reading files safely, converting every known layout, the Hub and URLs, lock files, ``load``."""

from __future__ import annotations

import importlib

# Public name -> defining module, imported on first use (as ``vitzoo``'s own names): importing the package
# stays cheap.
_API = {
    "load": "vitzoo.weights.loading",
    "save_vitzoo": "vitzoo.weights.checkpoint",
    "ZeroHeadWarning": "vitzoo.weights.loading",
}
__all__ = sorted([*_API])


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
