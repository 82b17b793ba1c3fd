"""Checks a command runs before its work starts: option values, and that every output can be written.

An hours-long `eval` must not end by finding its --db or --plot unusable. These checks create nothing that
the command would not create anyway: a missing output is probed in its nearest existing folder with a
temporary file that is removed at once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from vitzoo.errors import VitzooError
from vitzoo.files import nearest_existing, probe_folder


def _option(param: click.Parameter) -> str:
    return max(getattr(param, "opts", None) or [param.name or "value"], key=len)


def at_least(low: int) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback: an integer option must be >= ``low`` (None passes: the option was not given)."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None and value < low:
            raise VitzooError(f"{_option(param)} must be at least {low}, not {value}")
        return value

    return check


def positive_number(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A click callback: a float option must be finite and > 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise VitzooError(f"{_option(param)} must be a positive number, not {value}")
    return value


def fraction(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A click callback: a float option must be in (0, 1]."""
    if value is not None and not 0 < value <= 1:
        raise VitzooError(f"{_option(param)} must be in (0, 1], not {value}")
    return value


def available_device(ctx: click.Context, param: click.Parameter, device: str) -> str:
    """A click callback: --device names an available device (checked when the options are read, before any data or
    download)."""
    from vitzoo.measure.device import resolve_device

    resolve_device(device)
    return device


def _probe(folder: Path, what: str) -> None:
    """Raise unless a file can be created in the existing ``folder`` (``vitzoo.files.probe_folder``)."""
    if not folder.is_dir():
        raise VitzooError(f"cannot write {what}: {folder} is not a directory")
    if why := probe_folder(folder):
        raise VitzooError(f"cannot write {what}: {folder} is not writable ({why})")


def check_new_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path, once it is sure a file can be written there (it and its folders may not exist yet)."""
    p = Path(path).expanduser()
    if not str(path):
        raise VitzooError(f"{what} needs a path, not ''")
    if p.is_dir():
        raise VitzooError(f"{what} {p} is a directory, not a file")
    _probe(nearest_existing(p.parent), what)
    return p


def check_output_dir(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path, once it is sure the directory can be created (if missing) and written into."""
    p = Path(path).expanduser()
    if not str(path):
        raise VitzooError(f"{what} needs a path, not ''")
    if p.exists() and not p.is_dir():
        raise VitzooError(f"cannot write {what}: {p} exists and is not a directory")
    _probe(nearest_existing(p), what)
    return p


def plot_prefix(prefix: str) -> Path:
    """--plot PREFIX: PREFIX.png and PREFIX.svg will be written (a .png/.svg suffix given is dropped)."""
    if not prefix:
        raise VitzooError("--plot needs a file prefix such as docs/tradeoff, not ''")
    p = Path(prefix).expanduser()
    if p.is_dir() or prefix.endswith(("/", os.sep)):
        raise VitzooError(f"--plot {prefix} is a directory; give a file prefix such as {p / 'tradeoff'}")
    if p.suffix.lower() in (".png", ".svg"):
        p = p.with_suffix("")
    for ext in (".png", ".svg"):
        check_new_file(p.with_name(p.name + ext), "the plot")
    return p


def exclusive(*opts: str) -> Callable[[Callable], Callable]:
    """Decorator (below ``@click.command``): the options ``opts`` cannot be given together.

    Options that share one destination (``--table``/``--json``/``--csv``) are exclusive without it. The CLI group
    checks both before a command parses its options (``check_exclusive``): one ``error:`` line, exit code 2,
    instead of one option silently winning.
    """

    def mark(func: Callable) -> Callable:
        func.vitzoo_exclusive = [*getattr(func, "vitzoo_exclusive", []), tuple(opts)]  # type: ignore[attr-defined]
        return func

    return mark


def check_exclusive(command: click.Command, args: list[str]) -> None:
    """Raise click.UsageError when ``args`` give two options of one exclusive group of ``command``."""
    groups = [tuple(g) for g in getattr(command.callback, "vitzoo_exclusive", [])]
    by_dest: dict[str, list[str]] = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.name:
            by_dest.setdefault(param.name, []).extend(o for o in param.opts if o.startswith("--"))
    groups += [tuple(opts) for opts in by_dest.values() if len(opts) > 1]
    tokens = args[: args.index("--")] if "--" in args else args
    for group in groups:
        given = [o for o in group if any(t == o or t.startswith(f"{o}=") for t in tokens)]
        if len(given) > 1:
            raise click.UsageError(f"{' and '.join(given)} cannot be used together; choose one")


def refuse_unused(names: list[str] | tuple[str, ...], because: str) -> None:
    """Refuse, in one line, options (parameter names) given on the command line that would have no effect
    ``because`` (e.g. "with --peak"): an option is honoured or refused, never silently dropped."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    for param in ctx.command.params:
        if param.name in names and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
            raise VitzooError(f"{_option(param)} has no effect {because}")


def renamed_option(old: str, new: str, why: str, *, is_flag: bool = False) -> Callable[[Callable], Callable]:
    """A hidden option under a spelling that now means something else elsewhere: given, it is refused in one line
    that names the new spelling (``why``: what the old one means now)."""

    def refuse(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value not in (None, False):
            raise VitzooError(f"{old} is now {new} here ({why})")

    return click.option(old, "_renamed_" + old.lstrip("-").replace("-", "_"), is_flag=is_flag, hidden=True,
                        expose_value=False, callback=refuse, help=f"Renamed: use {new}.")  # fmt: skip
