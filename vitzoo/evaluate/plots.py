"""The trade-off plot (matplotlib, written to PNG and SVG; no display needed).

Panels: top-1 (on ImageNet-1k, or the set the rows name) vs GMACs per image, vs measured throughput (when the store
has any), and the paper's own view, top-1 vs pre-training exaFLOPs from its Table 6 (Figure 5). One marker shape per
family, log-scaled x, the Pareto frontier drawn (overall in the first two panels, per family in the paper's panel).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vitzoo.evaluate.tradeoff import DATASET_TITLES, TradeoffRow, pareto_front
from vitzoo.zoo.paper import TABLE6, ScalingRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STYLE = {  # family -> (marker, colour, legend label)
    "vit": ("o", "#1f77b4", "ViT"),
    "hybrid": ("^", "#2ca02c", "Hybrid (ResNet + ViT)"),
    "bit": ("s", "#d62728", "BiT ResNet"),
}


def _short(model: str) -> str:
    return model.split(".", 1)[0]


def _label_points(ax, points: list[tuple[float, float, str]], fontsize: float = 7) -> None:
    """Annotate points without overlaps: each label takes the first of eight places around its point where its box
    (measured with the renderer, on the final layout) overlaps no label already placed, no marker and not the frame;
    where every place is taken, the least crowded one. Call once the figure's layout is done (``_finish_layout``)."""
    renderer = ax.figure.canvas.get_renderer()
    centres = [tuple(ax.transData.transform((x, y))) for x, y, _ in points]
    marker = 4.0 * ax.figure.dpi / 72  # half a marker's size, in pixels
    taken = [(cx - marker, cy - marker, cx + marker, cy + marker) for cx, cy in centres]
    frame = tuple(ax.get_window_extent(renderer).extents)
    for x, y, text in sorted(points, key=lambda p: (-p[1], p[0])):  # from the top: labels there are read first
        ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=fontsize, color="#333")
        ann.set_in_layout(False)  # labels follow the layout; they must not change it
        box = ann.get_window_extent(renderer)
        w, h = box.width * 72 / ax.figure.dpi, box.height * 72 / ax.figure.dpi
        best = None
        for dx, dy in ((4, 3), (4, -h - 3), (-w - 4, 3), (-w - 4, -h - 3), (-w / 2, 6), (-w / 2, -h - 7),
                       (8, -h / 2), (-w - 8, -h / 2)):  # fmt: skip
            ann.xyann = (dx, dy)
            b = ann.get_window_extent(renderer)
            overlap = sum(_shared(b, t) for t in taken) + b.width * b.height - _shared(b, frame)  # + area outside
            if best is None or overlap < best[0]:
                best = (overlap, (dx, dy), (b.x0, b.y0, b.x1, b.y1))
            if overlap == 0:
                break
        ann.xyann = best[1]
        taken.append(best[2])


def _shared(box, other: tuple[float, ...]) -> float:
    """The area two boxes (a matplotlib Bbox and an (x0, y0, x1, y1) tuple) have in common."""
    return max(0.0, min(box.x1, other[2]) - max(box.x0, other[0])) * max(
        0.0, min(box.y1, other[3]) - max(box.y0, other[1])
    )


def _log_ticks(ax) -> None:
    """Plain numbers at 1, 2 and 5 times each power of ten on a log x axis, no labels on the minor ticks: the
    default labels minor ticks too ("3x10^1 4x10^1"), which collide on a short range."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.4g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _finish_layout(fig) -> None:
    """Run the constrained layout now, so that labels are placed on the axes as they will be drawn."""
    fig.get_layout_engine().execute(fig)
    fig.canvas.draw()


def _frontier(ax, xs: list[float], ys: list[float], flags: list[bool], *, higher_x_better: bool = False, **kw) -> None:
    """The Pareto staircase: an accuracy holds from its point towards worse x (more cost, or less throughput)."""
    pts = sorted((x, y) for x, y, f in zip(xs, ys, flags, strict=True) if f)
    if len(pts) > 1:
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="pre" if higher_x_better else "post", **kw)


def _scatter(
    ax, rows: Sequence[TradeoffRow], x_of, flags: list[bool], xlabel: str, higher_x_better: bool
) -> list[tuple[float, float, str]]:
    """The points of one panel; returns their labels, placed once the layout is done."""
    for family, (marker, colour, label) in STYLE.items():
        pts = [(x_of(r), r.top1, r) for r in rows if r.family == family]
        if not pts:
            continue
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, c=colour, s=46, label=label, zorder=3,
                   edgecolors=["black" if p[2].top1_kind == "measured" else colour for p in pts])  # fmt: skip
    _frontier(ax, [x_of(r) for r in rows], [r.top1 for r in rows], flags, higher_x_better=higher_x_better,
              color="black", lw=1, ls="--", label="Pareto frontier", zorder=2)  # fmt: skip
    ax.set_xscale("log")
    _log_ticks(ax)
    ax.set_xlabel(xlabel)
    dataset = rows[0].dataset if rows else "imagenet"
    ax.set_ylabel(f"{DATASET_TITLES[dataset]} top-1 (%)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    archs = [_short(r.model) for r in rows]
    labels = [r.model if archs.count(a) > 1 else a for r, a in zip(rows, archs, strict=True)]  # several tags: name them
    return [(x_of(r), r.top1, label) for r, label in zip(rows, labels, strict=True)]


def _paper_panel(ax, table: Sequence[ScalingRow]) -> list[tuple[float, float, str]]:
    for family, (marker, colour, label) in STYLE.items():
        pts = [r for r in table if r.family == family]
        xs, ys = [r.exaflops for r in pts], [r.imagenet for r in pts]
        ax.scatter(xs, ys, marker=marker, c=colour, s=46, label=label, zorder=3)
        _frontier(ax, xs, ys, pareto_front(xs, ys), color=colour, lw=1, ls="--", zorder=2)
    ax.set_xscale("log")
    _log_ticks(ax)
    ax.set_xlabel("pre-training compute (exaFLOPs, JFT-300M)")
    ax.set_ylabel("ImageNet top-1 after fine-tuning (%)")
    ax.set_title("the paper's view: Table 6 / Figure 5 (Dosovitskiy et al., ICLR 2021)", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right")
    return [(r.exaflops, r.imagenet, r.label.replace("R50x1+", "R50+")) for r in table]


def tradeoff_figure(rows: Sequence[TradeoffRow], *, subtitle: str = "") -> Figure:
    """The trade-off figure of ``rows``: a ``matplotlib.figure.Figure`` on its own Agg canvas (no pyplot, no global
    backend, nothing left open), for ``plot_tradeoff`` and ``vitzoo report``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scored = [r for r in rows if r.top1 is not None]
    timed = [r for r in scored if r.throughput is not None]
    panels = 3 if timed else 2
    fig = Figure(figsize=(6.2 * panels, 5.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)
    labels = [_scatter(axes[0], scored, lambda r: r.gmacs, [r.pareto_gmacs for r in scored], "GMACs per image (log)",
                       False)]  # fmt: skip
    axes[0].set_title("inference compute at each checkpoint's resolution", fontsize=10)
    if timed:
        flags = [r.pareto_throughput for r in timed]
        labels.append(_scatter(axes[1], timed, lambda r: r.throughput, flags, "measured throughput (images/s, log)",
                               True))  # fmt: skip
        axes[1].set_title("measured throughput" + (f" ({subtitle})" if subtitle else ""), fontsize=10)
    labels.append(_paper_panel(axes[-1], TABLE6))
    note = "Filled markers: reported top-1; black edge: measured with `vitzoo eval`."
    fig.suptitle(f"Accuracy vs compute — ViT, hybrids and BiT ResNets. {note}", fontsize=11)
    _finish_layout(fig)
    for ax, points in zip(axes, labels, strict=True):
        _label_points(ax, points, fontsize=6.5 if ax is axes[-1] else 7)
    return fig


def plot_tradeoff(rows: Sequence[TradeoffRow], prefix: str | os.PathLike, *, subtitle: str = "") -> list[Path]:
    """Draw the trade-off of ``rows`` (``tradeoff_figure``) and write ``prefix.png`` and ``prefix.svg``; returns the
    paths written. Each file is written atomically (a temporary file beside it, then renamed)."""
    import matplotlib

    from vitzoo.files import atomic_path

    fig = tradeoff_figure(rows, subtitle=subtitle)
    prefix = Path(prefix).expanduser()
    paths = [prefix.with_name(prefix.name + ext) for ext in (".png", ".svg")]
    with atomic_path(paths[0]) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    with matplotlib.rc_context({"svg.hashsalt": "vitzoo"}), atomic_path(paths[1]) as tmp:  # reproducible files
        fig.savefig(tmp, format="svg", metadata={"Date": None})  # no timestamp, fixed ids
    return paths
