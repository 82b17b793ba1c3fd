"""Results people look at and share: one self-contained HTML page (or Markdown) of a results database, and the
comparison of two machines or releases.

``build_page`` (``build.py``) reads the records into a ``Page`` (``page.py``: sections of tables and figures,
every number linked to its record); ``speed.py`` and ``accuracy.py`` make the sections, ``history.py`` judges
throughput over time against the rows' own noise, ``charts.py`` draws the plots, ``render.py`` writes HTML or
Markdown through Jinja2 templates (``templates/``). ``compare.py`` is `vitzoo results compare`.
"""

from __future__ import annotations

from vitzoo.lazy import lazy_exports

# Public name -> defining module, imported on first use (as ``vitzoo``'s own names): importing the package
# stays cheap.
_API = {
    "build_page": "vitzoo.report.build",
}
__all__ = sorted([*_API])

__getattr__, __dir__ = lazy_exports(__name__, _API)
