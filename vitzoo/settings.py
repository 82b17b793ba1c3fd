"""vitzoo's own environment variables: the one table of them, each read and checked here (no torch).

A value vitzoo cannot use is refused with one line naming the variable, never silently replaced by the default:
``VITZOO_HEAP=sytem`` would otherwise measure with a heap other than the one asked for. An empty value counts as
unset. The CLI checks every variable before a command starts (``check_environment``), so a bad one is an error
before any work, on every command, even the ones that would not read it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from vitzoo.errors import ConfigError

# name -> what it holds (the choices of a choice variable are the words between the bars)
VARIABLES = {
    "VITZOO_CACHE": "vitzoo's folder: converted checkpoints, downloads, the results database (a folder)",
    "VITZOO_DB": "the results database (a file)",
    "VITZOO_LOCK": "a lock file whose checkpoints are the only ones accepted (a file)",
    "VITZOO_DIST_TIMEOUT": "seconds a rank waits for the others (a number > 0)",
    "VITZOO_HEAP": "reuse|system",
    "VITZOO_GELU_EPILOGUE": "separate|postop",
    "VITZOO_ATTENTION": "native|aten",
}
INTERNAL = ("VITZOO_SPAWNED", "VITZOO_SPOKE_FILE")  # set by vitzoo for the workers it starts


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value and value.strip() else None


def choice(name: str, default: str | None = None) -> str | None:
    """The value of a choice variable (lower-cased), ``default`` when unset; ConfigError for any other word."""
    choices = VARIABLES[name].split("|")
    value = _raw(name)
    if value is None:
        return default
    if value.strip().lower() not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}; unset it for the default")
    return value.strip().lower()


def seconds(name: str, default: float) -> float:
    """A positive, finite number of seconds, ``default`` when unset; ConfigError otherwise."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(f"{name} must be a number of seconds > 0, not {value!r}")
    return number


def path(name: str) -> Path | None:
    """A path variable, expanded (``~``), None when unset; ConfigError for one that names no possible path."""
    value = _raw(name)
    if value is None:
        return None
    if value != value.strip() or "\n" in value:
        raise ConfigError(f"{name}={value!r} has leading or trailing spaces; give a path")
    return Path(value).expanduser()


def check_environment() -> list[str]:
    """Check every vitzoo variable that is set (ConfigError for the first bad one); the names of ``VITZOO_*``
    variables vitzoo does not know (a typo leaves the intended setting unused), for a warning."""
    for name, what in VARIABLES.items():
        if "|" in what:
            choice(name)
        elif name == "VITZOO_DIST_TIMEOUT":
            seconds(name, 1.0)
        else:
            path(name)
    return sorted(n for n in os.environ if n.startswith("VITZOO_") and n not in VARIABLES and n not in INTERNAL)
