"""`vitzoo report`: the results database as one self-contained HTML page (or Markdown) to share."""

from __future__ import annotations

import click

from vitzoo.cli._output import Command, db_option, info

DEFAULT_OUTPUT = {"html": "report.html", "markdown": "report.md"}


@click.command("report", cls=Command)
@db_option
@click.option("--models", "pattern", default=None, metavar="PATTERN",
              help="Only results of models matching this shell pattern, e.g. 'vit-b*'.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["html", "markdown"]), default="html", show_default=True,
              help="html: one self-contained page (plots inline, no network); markdown: the same sections as "
                   "tables, for pull requests and READMEs.")  # fmt: skip
@click.option(
    "-o",
    "--output",
    default=None,
    metavar="FILE",
    help="Where to write (default: report.html or report.md; '-': standard output). Written atomically.",
)
def report_cmd(db: str | None, pattern: str | None, fmt: str, output: str | None) -> None:
    """Write a report of the results database: one HTML file to open offline, attach or publish.

    Sections: environments (CPU ISA, GPU, torch, threads, heap, kernels, GEMM peak), benchmarks (table, bar
    chart, deployment matrix), accuracy (with confidence intervals where recorded), few-shot curves, compute vs
    accuracy (Pareto front, BiT baselines, the paper's Table 6), history (throughput over time per machine, a
    regression beyond the runs' own noise flagged) and the records every number links to (id, date, weights
    sha256). Tables sort by clicking a header. Reading never changes the database.

    \b
    Examples:
      vitzoo report -o report.html
      vitzoo report --models 'vit-b*' --db lab.sqlite -o vit-b.html
      vitzoo report --format markdown -o - >> PR.md
    """
    from vitzoo.cli._preflight import check_new_file
    from vitzoo.measure.store import ResultStore
    from vitzoo.report.build import build_page
    from vitzoo.report.render import render, write_report

    target = output if output is not None else DEFAULT_OUTPUT[fmt]
    path = None if target == "-" else check_new_file(target, "the report")
    store = ResultStore(db, readonly=True)
    page = build_page(store, pattern)
    if path is None:
        click.echo(render(page, fmt), nl=False)
        return
    write_report(page, path, fmt)
    what = "no results" if page.empty else f"{len(page.records)} record(s)"
    info(f"wrote {path} ({what} from {store.path})")
