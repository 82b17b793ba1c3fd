"""What a report page is made of, as plain frozen data: sections holding tables of cells and figures.

Every number on the page is a ``Cell`` that names the record it came from (``Cell.record``: the store's row
id); the renderers turn it into a link to that record's line in the page's *Records* section (its id, date
and weights sha256). The same structure renders to HTML and to Markdown (``vitzoo.report.render``).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, the value a column sorts by, and the record it was read from (or None)."""

    text: str
    sort: float | str | None = None
    record: int | None = None


@dataclass(frozen=True)
class Table:
    """A table: header, rows of cells, an optional caption. ``anchor_column``: a column whose cells give their
    row an HTML id (the records table: ``r<ID>``)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: str = ""
    anchor_column: int | None = None


@dataclass(frozen=True)
class Figure:
    """A plot and what it shows; ``svg`` (the SVG document) is drawn when first asked for, so a Markdown report,
    which has no plots, never draws one."""

    title: str
    draw: Callable[[], str]
    alt: str

    @functools.cached_property
    def svg(self) -> str:
        return self.draw()


@dataclass(frozen=True)
class Section:
    """One section of the page. ``empty``: what the page says when there is nothing to show."""

    id: str
    title: str
    intro: str = ""
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()
    notes: tuple[str, ...] = ()
    empty: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.tables or self.figures)


@dataclass(frozen=True)
class RecordRef:
    """Where a number came from: the store row, its date and the weights file it measured."""

    id: int
    created: str
    kind: str
    model: str
    weights_sha256: str | None
    environment: str  # the environment's label on the page, e.g. "E1"

    @property
    def title(self) -> str:
        sha = f", weights sha256 {self.weights_sha256[:12]}…" if self.weights_sha256 else ", no weights file"
        when = self.created[:19].replace("T", " ")
        return f"record #{self.id} ({self.kind}, {self.model}, {self.environment}), {when} UTC{sha}"


@dataclass(frozen=True)
class Page:
    """The whole report: a title, where it came from, its sections and the records its numbers link to."""

    title: str
    source: str  # the database
    generated: str  # UTC
    sections: tuple[Section, ...]
    records: dict[int, RecordRef] = field(default_factory=dict)
    empty: bool = False
    pattern: str | None = None  # the --models pattern the records were selected by


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def num(value: Any, digits: int = 2, record: int | None = None, *, suffix: str = "") -> Cell:
    """A number cell (``—`` when missing), linked to ``record``."""
    if not is_number(value):
        return Cell("—", None, None)
    return Cell(f"{value:,.{digits}f}{suffix}", float(value), record)


def text(value: Any, record: int | None = None) -> Cell:
    """A text cell; None is ``—``; bools are yes/no."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Cell("—", None, record)
    if isinstance(value, bool):
        return Cell("yes" if value else "no", int(value), record)
    return Cell(str(value), value if isinstance(value, (int, float)) else str(value), record)


def interval(low: float, high: float, record: int | None = None) -> Cell:
    """A 95% confidence interval as `vitzoo eval` records it (``top1_ci_low``, ``top1_ci_high``), sorted by its low
    end."""
    return Cell(f"[{low:.2f}, {high:.2f}]", float(low), record)


def describe(value: Any) -> str:
    """A nested value (a protocol description, a dict of settings) as one readable line."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={describe(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def table(columns: Sequence[str], rows: Sequence[Sequence[Cell]], caption: str = "") -> Table:
    return Table(tuple(columns), tuple(tuple(r) for r in rows), caption)
