"""A ``Page`` as one self-contained HTML file or as Markdown, through Jinja2 templates (package data).

HTML: autoescaped templates, CSS and the table-sorting script inline, every plot an SVG inside a ``data:`` URI
``<img>``; nothing is fetched when the page is opened. Markdown: the same sections as pipe tables (plots are
left out), for pull requests and READMEs. ``write_report`` writes either atomically.
"""

from __future__ import annotations

import base64
import functools
import os
from pathlib import Path
from typing import Literal

from vitzoo.report.page import Cell, Page

Format = Literal["html", "markdown"]


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("vitzoo.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["svg_uri"] = svg_uri
    env.filters["md"] = md_escape
    env.filters["md_cell"] = md_cell
    env.filters["code"] = code_spans
    return env


def svg_uri(svg: str) -> str:
    """An SVG document as a ``data:`` URI for an ``<img>`` (base64: no characters to escape)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def code_spans(value: str):
    """Prose for HTML: escaped, then each `backquoted` span shown as code."""
    import re

    from markupsafe import Markup, escape

    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(value))))


def md_escape(value: str) -> str:
    """Text for a Markdown table cell: pipes, backslashes, brackets and angle brackets escaped, one line."""
    out = str(value).replace("\\", "\\\\")
    for ch in "|[]<>*_":
        out = out.replace(ch, "\\" + ch)
    return " ".join(out.split())


def md_cell(cell: Cell) -> str:
    """A cell in Markdown: a number linked to its record (``[41.20](#r12)``), anything else as text."""
    shown = md_escape(cell.text)
    return f"[{shown}](#r{cell.record})" if cell.record is not None else shown


def render(page: Page, fmt: Format = "html") -> str:
    """The page as HTML or Markdown text."""
    template = _environment().get_template("report.html" if fmt == "html" else "report.md")
    return template.render(page=page)


def write_report(page: Page, path: str | os.PathLike, fmt: Format = "html") -> Path:
    """Render ``page`` and write it to ``path`` atomically (a temporary file beside it, then renamed)."""
    from vitzoo.weights.checkpoint import atomic_path

    content = render(page, fmt)
    path = Path(path).expanduser()
    with atomic_path(path) as tmp:
        tmp.write_text(content, encoding="utf-8")
    return path
