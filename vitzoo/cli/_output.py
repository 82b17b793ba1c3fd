"""The CLI's one output sink: data to stdout (rich table, JSON or CSV), diagnostics to stderr."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import click
import rich.progress
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

MIN_WIDTH = 40  # a COLUMNS below this (0, 1: a misconfigured terminal or CI) is not a layout anyone can read
DEFAULT_WIDTH = 80  # rich's own width for a pipe


def console_width(stream: Any) -> int | None:
    """The width to lay out for: None (rich's choice: the terminal, else 80) unless ``COLUMNS`` is set to something
    degenerate (0, 1, negative, garbage), which rich would take literally and print nothing or one character per
    line; then the terminal's own width, else 80."""
    text = os.environ.get("COLUMNS")
    if text is None or (text.strip().isdigit() and int(text) >= MIN_WIDTH):
        return None
    try:
        return max(MIN_WIDTH, os.get_terminal_size(stream.fileno()).columns)
    except (OSError, ValueError, AttributeError):
        return DEFAULT_WIDTH


console = Console(width=console_width(sys.stdout))  # data
err_console = Console(stderr=True, width=console_width(sys.stderr))  # progress, warnings, errors


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line to stderr and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def warn(message: str) -> None:
    """Print one warning line to stderr."""
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


@contextmanager
def progress_bar(description: str, show: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar on stderr (``Progress``: off a terminal, a line every few seconds) unless ``show`` is
    False; yields a (done, total) callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn

    bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), console=err_console, transient=True, disable=not show)  # fmt: skip
    task = bar.add_task(description, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)


def info(message: str) -> None:
    """Print one diagnostic line to stderr."""
    err_console.print(message, highlight=False, soft_wrap=True)


PROGRESS_EVERY_S = 5.0  # off a terminal: one progress line per task this often


class Progress(rich.progress.Progress):
    """rich's progress bar on a terminal (stderr); elsewhere (a pipe, a batch job's log) a plain line per task every
    ``PROGRESS_EVERY_S`` seconds, so a long run is not silent until it ends. Every command's progress goes here."""

    def __init__(self, *columns: Any, **kwargs: Any) -> None:
        kwargs.setdefault("console", err_console)
        self._plain = not kwargs["console"].is_terminal and not kwargs.get("disable", False)
        if self._plain:
            kwargs["disable"] = True  # no live display: it would print nothing until the end
        super().__init__(*columns, **kwargs)
        self._last_line: dict[Any, float] = {}

    def update(self, task_id: Any, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        if not self._plain:
            return
        now = time.monotonic()
        last = self._last_line.setdefault(task_id, now)  # the first update starts the clock
        if now - last < PROGRESS_EVERY_S:
            return
        self._last_line[task_id] = now
        task = self._tasks[task_id]
        done = f"{task.completed:,.0f}" + (f"/{task.total:,.0f}" if task.total else "")
        left = task.time_remaining
        eta = f", about {left:,.0f} s left" if left is not None and task.total else ""
        self.console.print(f"{task.description}: {done}{eta}", highlight=False, soft_wrap=True)


class _OneLineUsage:
    """Usage mistakes in a command's own options (``--last 0``, ``--dtype int8``): one ``error:`` line, exit code 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc]
        except click.UsageError as e:
            fail(f"{e.format_message()} (see `{command_name(ctx)} -h`)", code=2)


class Command(_OneLineUsage, click.Command):
    """A click command whose usage mistakes are one ``error:`` line, exit code 2."""


class CommandGroup(_OneLineUsage, click.Group):
    """A group of subcommands whose own usage mistakes are one ``error:`` line, exit code 2, as ``Command``'s."""


def command_name(ctx: click.Context) -> str:
    """The command as the user typed it, e.g. ``vitzoo results compare``, whatever the root is called (``python -m
    vitzoo``, a test's runner)."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["vitzoo", *reversed(names)])


# One wording of the results-database options for every command that stores or reads results.
DB_HELP = "Results database (default: $VITZOO_DB, else results.sqlite in $VITZOO_CACHE, default ~/.cache/vitzoo)."
NO_STORE_HELP = "Do not append the results to the results database."
db_option = click.option("--db", type=click.Path(path_type=str), default=None, metavar="PATH", help=DB_HELP)
no_store_option = click.option("--no-store", is_flag=True, help=NO_STORE_HELP)


def weights_option(default: str) -> Callable[[Callable], Callable]:
    """``--pretrained`` / ``--random-init``: the one way every command that builds a model asks for the checkpoint's
    weights or seeded random ones (the architecture only, offline); ``default`` ("pretrained" or "random") is the
    command's. The two share one parameter, ``weights``, so giving both is refused (``_preflight.check_exclusive``).
    """
    helps = {"pretrained": "The checkpoint's weights (downloaded and converted once).",
             "random": "Seeded random weights of its architecture (vitzoo.create): offline, numbers meaningless."}

    def decorate(func: Callable) -> Callable:
        for value, opt in (("random", "--random-init"), ("pretrained", "--pretrained")):
            mark = {"default": True} if value == default else {}
            suffix = " (default)" if value == default else ""
            func = click.option(opt, "weights", flag_value=value, help=helps[value] + suffix, **mark)(func)
        return func

    return decorate


_wide = False  # --wide: tables at full width (set by the option's callback, for the one command a process runs)


def _set_wide(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    global _wide
    _wide = bool(value)
    return value


def format_options(func: Callable | None = None, *, dest: str = "fmt") -> Callable:
    """--table (default) / --json / --csv, stored in the ``dest`` argument (``fmt``); --wide (tables: every
    column). Every command's output format is chosen by these, and only by these."""
    if func is None:
        return lambda f: format_options(f, dest=dest)
    wide_help = "Table: every column at full width, however narrow the terminal (e.g. for `less -S`)."
    func = click.option("--wide", is_flag=True, expose_value=False, callback=_set_wide, help=wide_help)(func)
    func = click.option("--csv", dest, flag_value="csv", help="Write CSV to stdout.")(func)
    func = click.option("--json", dest, flag_value="json", help="Write JSON to stdout.")(func)
    return click.option("--table", dest, flag_value="table", default=True, help="Rich table (default).")(func)


def emit_summary(summary: dict[str, Any], fmt: str, title: str = "") -> None:
    """What a command wrote, as its output: a JSON object, one CSV row, or a field/value table (stdout)."""
    if fmt == "json":
        emit_json(summary)
    elif fmt == "csv":
        emit_csv([summary])
    else:
        rows = [{"field": k, "value": v if isinstance(v, str) else json.dumps(v, default=str)}
                for k, v in summary.items()]  # fmt: skip
        render_table(rows, [("field", "field", None, KEY), ("value", "value", None, KEY)], title=title)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def emit_json(data: Any) -> None:
    """JSON to stdout (NaN/inf become null, so the output is valid JSON)."""
    if isinstance(data, list):
        data = [{k: _plain(v) for k, v in row.items()} if isinstance(row, dict) else row for row in data]
    click.echo(json.dumps(data, indent=2, default=str))


def emit_csv(rows: Sequence[dict[str, Any]]) -> None:
    """Rows as CSV to stdout; nested values are written as JSON."""
    if not rows:
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})


def emit(rows: Sequence[dict[str, Any]], fmt: str, columns: Sequence, title: str = "") -> None:
    """Rows as JSON, CSV or a rich table (``fmt`` from ``format_options``)."""
    if fmt == "json":
        emit_json(list(rows))
    elif fmt == "csv":
        emit_csv(rows)
    else:
        render_table(rows, columns, title=title)


WRAP_WIDTH = 20  # narrowest a column of several-word cells gets (unless its longest cell is shorter)
FOLD_WIDTH = 12  # narrowest a key column of names gets before the table is stacked instead
KEY = -1  # the priority of a key column: what the table is read for, kept at any width
Column = tuple  # (key, header, formatter or None[, priority]): a lower priority number stays longer when narrow


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], title: str = "") -> None:
    """A rich table of ``rows`` that fits the console width, keeping its key columns.

    Columns are ``(key, header, formatter)`` or ``(key, header, formatter, priority)``; numbers are right-aligned.
    A column whose cells hold no space (names, tags, numbers) is not wrapped; one with spaces wraps between
    words; one holding file paths folds. When the columns do not fit (a pipe or an 80-column terminal), the
    lowest-priority ones (by default: the rightmost) are left out and named in a footnote, but never a key column
    (priority ``KEY``) nor the first: names in a key column fold instead and, where even that does not fit, each
    row is printed as a stack of ``header: value`` lines. ``--wide`` shows every column at full width; --json and
    --csv always have every column.
    """
    cols = [_ColumnLayout(i, c, rows) for i, c in enumerate(columns)]
    width = console.width
    if _wide:
        for c in cols:
            c.width = c.natural
        shown, hidden, width = cols, [], max(width, sum(c.natural + 3 for c in cols) + 1)
    else:
        fitted = _fit(cols, width)
        if fitted is None:
            return _stacked(rows, cols, title)
        shown, hidden = fitted
    if title:  # above the table, as wide as the console: a title inside rich's table wraps to the table's width
        console.print(title, style="table.title", highlight=False)
    table = Table(header_style="bold")
    for c in shown:
        table.add_column(c.header, justify=c.justify, width=c.width, overflow="fold")  # cells fit: width >= words
    for r in range(len(rows)):
        table.add_row(*(c.cells[r] for c in shown))
    out = console if width <= console.width else Console(width=width, quiet=console.quiet)  # --wide: past the edge
    out.print(table)
    if hidden:
        names = ", ".join(c.header for c in hidden)
        console.print(f"[dim]not shown at {console.width} columns: {names} (--wide shows them; --json and --csv "
                      "have every column)[/]", highlight=False)  # fmt: skip


def _stacked(rows: Sequence[dict[str, Any]], cols: list[_ColumnLayout], title: str) -> None:
    """Each row as ``header: value`` lines (every column), rows apart: for a console too narrow for the key columns."""
    if title:
        console.print(title, style="table.title", highlight=False)
    pad = max(cell_len(c.header) for c in cols)
    for r in range(len(rows)):
        if r:
            console.print()
        for c in cols:
            console.print(f"{c.header:>{pad}}: {c.cells[r]}", highlight=False)


class _ColumnLayout:
    """One column's formatted cells and the widths it needs: ``minimum`` (longest unbreakable word) and
    ``natural`` (everything on one line)."""

    def __init__(self, index: int, column: Column, rows: Sequence[dict[str, Any]]) -> None:
        key, self.header, fmt = column[:3]
        self.priority = column[3] if len(column) > 3 else index
        self.index = index
        self.cells = [(fmt or _default_fmt)(row.get(key)) for row in rows]
        value = next((r[key] for r in rows if r.get(key) is not None), None)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        self.justify = "right" if numeric else "left"
        self.wraps = any(" " in cell.strip() for cell in self.cells)
        words = [w for cell in self.cells for w in (cell.split() if self.wraps else [cell])]
        header_words = self.header.split() or [""]
        self.minimum = max([cell_len(w) for w in words + header_words] or [1])
        self.natural = max([cell_len(x) for x in [*self.cells, self.header]] or [1])
        if self.wraps:  # prose: a readable column of about 20 cells before a word-wide sliver
            self.minimum = min(self.natural, max(self.minimum, WRAP_WIDTH))
        elif any("/" in cell for cell in self.cells):  # file paths may fold (at any character); names never do
            self.minimum = max([cell_len(w) for w in header_words] + [min(self.natural, WRAP_WIDTH)])
        self.width = self.minimum


def _fit(cols: list[_ColumnLayout], width: int) -> tuple[list[_ColumnLayout], list[_ColumnLayout]] | None:
    """Columns to show (in their order, widths set) within ``width`` cells, and the ones left out; None when even
    the key columns cannot fit (the caller stacks the rows).

    Key columns (and the first by priority) are always taken; where they are too wide together, their name columns
    fold, widest first, down to ``FOLD_WIDTH``. The other columns are then taken by priority while their minimum
    width fits; the room left widens them, by priority, towards one line per cell. A box table costs 3 cells per
    column plus 1.
    """
    by_priority = sorted(cols, key=lambda c: (c.priority != KEY, c.priority))
    keys = [c for c in by_priority if c.priority == KEY] or by_priority[:1]
    room = width - 1 - sum(c.minimum + 3 for c in keys)
    for c in sorted(keys, key=lambda c: -c.minimum):
        if room < 0 and c.justify == "left" and c.minimum > FOLD_WIDTH:
            give = min(c.minimum - FOLD_WIDTH, -room)
            c.minimum, room = c.minimum - give, room + give
    if room < 0:
        return None
    shown = list(keys)
    for c in by_priority:
        if c not in shown and c.minimum + 3 <= room:
            shown.append(c)
            room -= c.minimum + 3
    for c in sorted(shown, key=lambda c: (c.priority != KEY, c.priority)):
        grow = max(0, min(c.natural - c.minimum, room))
        c.width, room = c.minimum + grow, room - grow
    hidden = sorted((c for c in cols if c not in shown), key=lambda c: c.index)
    return sorted(shown, key=lambda c: c.index), hidden


def _default_fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def number(digits: int) -> Callable[[Any], str]:
    """A table cell formatter: ``number(1)(1234.56)`` -> '1,234.6'; None and NaN -> '—'."""
    return lambda v: "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.{digits}f}"


def millions(value: int | None) -> str:
    """12_345_678 -> '12.35'."""
    return "—" if value is None else f"{value / 1e6:,.2f}"
