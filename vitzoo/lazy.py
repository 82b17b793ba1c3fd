"""Lazy public names: a package lists ``name -> defining module`` and imports a module only when a name is used, so
that ``import vitzoo.zoo`` (and ``vitzoo list``) stays cheap and torch-free."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, api: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package`` for the names in ``api``.

    >>> __getattr__, __dir__ = lazy_exports(__name__, _API)
    """

    def __getattr__(name: str) -> object:
        if name in api:
            value = getattr(importlib.import_module(api[name]), name)
            setattr(sys.modules[package], name, value)  # imported once: later uses are plain attributes
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *api})

    return __getattr__, __dir__
