"""The CLI's one output sink: data to stdout (rich table, JSON or CSV), diagnostics to stderr."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

console = Console()  # data
err_console = Console(stderr=True)  # progress, warnings, errors


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line to stderr and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def warn(message: str) -> None:
    """Print one warning line to stderr."""
    err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def info(message: str) -> None:
    """Print one diagnostic line to stderr."""
    err_console.print(message, highlight=False, soft_wrap=True)


def format_options(func: Callable) -> Callable:
    """--table (default) / --json / --csv, stored in the ``fmt`` argument."""
    func = click.option("--csv", "fmt", flag_value="csv", help="Write CSV to stdout.")(func)
    func = click.option("--json", "fmt", flag_value="json", help="Write JSON to stdout.")(func)
    return click.option("--table", "fmt", flag_value="table", default=True, help="Rich table (default).")(func)


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


def render_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, Callable[[Any], str] | None]], title: str = ""
) -> None:
    """A rich table of ``rows``; columns are (key, header, formatter); numbers are right-aligned."""
    table = Table(title=title or None, header_style="bold", title_justify="left")
    for i, (key, header, _) in enumerate(columns):
        value = next((r[key] for r in rows if r.get(key) is not None), None)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        table.add_column(header, justify="right" if numeric else "left", overflow="fold", no_wrap=i == 0)
    for row in rows:
        table.add_row(*((fmt or _default_fmt)(row.get(key)) for key, _, fmt in columns))
    console.print(table)


def _default_fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def millions(value: int | None) -> str:
    """12_345_678 -> '12.35'."""
    return "—" if value is None else f"{value / 1e6:,.2f}"
