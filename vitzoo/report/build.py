"""A results database -> the report's ``Page``: every section, and the records its numbers link to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vitzoo.report.accuracy import accuracy_section, fewshot_section, tradeoff_section
from vitzoo.report.history import series_of
from vitzoo.report.page import Cell, Page, RecordRef, Section, Table, now_utc, text
from vitzoo.report.speed import Environments, benchmarks_section, environments_section, history_section

if TYPE_CHECKING:
    from vitzoo.measure.store import ResultStore

SECTION_TITLES = ("Environments", "Benchmarks", "Accuracy", "Few-shot", "Compute vs accuracy", "History", "Records")


def build_page(store: ResultStore, models: str | None = None) -> Page:
    """The report of ``store`` (only models matching the shell pattern ``models``, if given).

    An empty selection still gives every section, each saying there is nothing to show; the trade-off then shows
    the reported accuracies of the zoo and the paper's Table 6, and the page says it holds no results.
    """
    records = store.records(model=models)
    where = str(store.path) + (f", models matching {models!r}" if models else "")
    return page_of(records, where, pattern=models)


def page_of(records: Sequence[dict[str, Any]], source: str, *, pattern: str | None = None) -> Page:
    """The report of already-read store ``records`` (dicts as ``ResultStore.records`` returns them)."""
    envs = Environments(records)
    sections = (
        environments_section(envs),
        benchmarks_section(records, envs),
        accuracy_section(records),
        fewshot_section(records),
        tradeoff_section(records),
        history_section(series_of(records)),
        records_section(records, envs),
    )
    refs = {r["id"]: RecordRef(r["id"], r["created"], r["kind"], r["model"], r["metrics"].get("weights_sha256"),
                               envs.label(r)) for r in records}  # fmt: skip
    return Page("vitzoo results", source, now_utc(), sections, refs, empty=not records, pattern=pattern)


def records_section(records: Sequence[dict[str, Any]], envs: Environments) -> Section:
    """One line per record: the anchor every number links to, with its id, date, kind, model, environment and the
    sha256 of the weights it measured."""
    if not records:
        return Section("records", "Records", empty="The database holds no results.")
    rows = [
        [Cell(f"#{r['id']}", r["id"]), Cell(r["created"].replace("T", " ")[:19], r["created"]), text(r["kind"]),
         text(r["model"]), text(envs.label(r)), text(r["metrics"].get("weights_sha256"))]
        for r in records
    ]  # fmt: skip
    return Section("records", "Records",
                   "Every number above links here, to the record it was read from. weights sha256: the file the "
                   "result measured (— for random weights, or a result that needs none).",
                   tables=(Table(("id", "created (UTC)", "kind", "model", "env", "weights sha256"),
                                 tuple(tuple(r) for r in rows), anchor_column=0),))  # fmt: skip
