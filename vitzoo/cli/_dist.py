"""Commands that run as the ranks of a torch.distributed launch: `--nproc N`, `--dist-timeout`, rank 0 speaks.

``@scale_out`` (innermost decorator of a command) adds the two options and wraps the command:

* one process, no launcher: the command as before;
* ``--nproc N`` without a launcher: starts N workers of the same command line through torchrun's launcher
  and exits with their status (a worker that dies is named in one line);
* inside a launch (torchrun, srun + torchrun, or the workers above): joins the process group, turns
  ``--device cuda`` into ``cuda:LOCAL_RANK``, silences the consoles of every rank but 0, runs the command,
  then a last exchange so that nobody exits before rank 0 has written its output. A rank that fails makes
  every rank exit 1 and rank 0 print one line naming the rank and the cause.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.markup import escape

from vitzoo.cli._output import console, err_console, fail
from vitzoo.errors import VitzooError


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that prints and writes to the results store."""
    from vitzoo.parallel.distributed import current

    return current().is_main


def scale_out(func: Callable) -> Callable:
    """Decorator: the command runs as one process, or as every rank of a launch (see the module docstring)."""

    @functools.wraps(func)
    def wrapper(*args: Any, nproc: int | None, dist_timeout: float | None, **kwargs: Any) -> Any:
        from vitzoo.parallel.distributed import launch_info, resolve_timeout
        from vitzoo.parallel.spawn import SPAWNED

        launch = launch_info()
        if dist_timeout is not None:
            resolve_timeout(dist_timeout)  # a bad value is a one-line error before anything starts
        if nproc is not None and nproc < 1:
            raise VitzooError(f"--nproc must be >= 1, not {nproc}")
        if nproc and launch.is_distributed and os.environ.get(SPAWNED) != "1":
            raise VitzooError("--nproc starts the processes itself; under torchrun leave it out")
        if nproc and nproc > 1 and not launch.is_distributed:
            return _spawn(nproc, dist_timeout)
        if not launch.is_distributed:
            return func(*args, **kwargs)
        return _as_rank(func, args, kwargs, dist_timeout)

    timeout_help = "How long a rank waits for the others, in seconds (default: $VITZOO_DIST_TIMEOUT or 1800)."
    wrapper = click.option("--dist-timeout", type=float, metavar="SECONDS", help=timeout_help)(wrapper)
    nproc_help = "Run as N processes on this machine (as torchrun --nproc-per-node N would)."
    return click.option("--nproc", type=int, metavar="N", help=nproc_help)(wrapper)


def _spawn(nproc: int, timeout: float | None) -> None:
    from vitzoo.parallel.spawn import SPOKE, spawn

    args = click.get_current_context().meta.get("vitzoo.args")
    if args is None:
        raise VitzooError("--nproc needs the `vitzoo` command line; use torchrun to launch other programs")
    with tempfile.TemporaryDirectory(prefix="vitzoo-nproc-") as tmp:
        spoke = Path(tmp) / "spoke"
        os.environ[SPOKE] = str(spoke)
        failures = spawn(nproc, ["-m", "vitzoo", *args], timeout)
        if not failures:
            return
        if spoke.exists():  # rank 0 has said why; the launcher may have stopped it (or not) afterwards
            sys.exit(1)
    fail(f"{failures[0].describe()}; the other ranks were stopped")


def _as_rank(func: Callable, args: tuple, kwargs: dict[str, Any], timeout: float | None) -> NoReturn:
    from vitzoo.parallel.distributed import (
        agree,
        finish_together,
        launch_info,
        process_group,
        rank_device,
        report_failure,
    )

    launch = launch_info()
    if not launch.is_main:
        console.quiet = err_console.quiet = True
    with process_group(kwargs.get("device") or "cpu", timeout):
        try:
            if isinstance(kwargs.get("device"), str):
                kwargs["device"] = rank_device(kwargs["device"], launch)
            func(*args, **kwargs)
            agree(lambda: None, "finishing")
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt) or (isinstance(e, SystemExit) and e.code in (0, None)):
                raise
            if launch.is_main and isinstance(e, SystemExit):
                _said_why()  # `fail` printed it already
            error = report_failure(e, "finishing")
            spoke = isinstance(e, SystemExit) and error.rank in (None, launch.rank)
            if launch.is_main and not spoke:
                with contextlib.suppress(SystemExit):
                    fail(escape(str(error)))  # torch's messages hold [brackets] that rich would read as markup
                _said_why()
            finish_together(main_first=launch.is_main)
            _leave(1)
        _leave(0)


def _leave(code: int) -> NoReturn:
    """End this rank now: flush, then ``os._exit``, inside the process group.

    A normal exit tears gloo and the c10d store down in C++ destructors, which has been seen to abort a rank
    ("terminate called without an active exception", SIGABRT) after its work was done and recorded, turning a
    good run into a failed one. Everything the command writes is written and flushed by now.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _said_why() -> None:
    """Rank 0 has printed why the run failed: the ``--nproc`` parent (``SPOKE`` file) then adds nothing."""
    from vitzoo.parallel.spawn import SPOKE

    if os.environ.get(SPOKE):
        Path(os.environ[SPOKE]).touch()
