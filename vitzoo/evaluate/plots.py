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
    """Annotate points, moving a label to another side of its point when it would overlap one already placed."""
    ax.autoscale_view()
    placed: list[tuple[float, float, float, float]] = []
    char_w, h = 0.6 * fontsize, fontsize + 1  # label box in points, roughly
    to_pt = 72.0 / ax.figure.dpi
    for x, y, text in sorted(points, key=lambda p: (p[1], p[0]), reverse=True):
        px, py = (v * to_pt for v in ax.transData.transform((x, y)))
        w = char_w * len(text)
        for dx, dy in ((4, 3), (4, -h - 1), (-w - 4, 3), (-w - 4, -h - 1), (4, h + 4), (4, -2 * h - 3)):
            box = (px + dx, py + dy, px + dx + w, py + dy + h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize, color="#333")


def _frontier(ax, xs: list[float], ys: list[float], flags: list[bool], *, higher_x_better: bool = False, **kw) -> None:
    """The Pareto staircase: an accuracy holds from its point towards worse x (more cost, or less throughput)."""
    pts = sorted((x, y) for x, y, f in zip(xs, ys, flags, strict=True) if f)
    if len(pts) > 1:
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="pre" if higher_x_better else "post", **kw)


def _scatter(ax, rows: Sequence[TradeoffRow], x_of, flags: list[bool], xlabel: str, higher_x_better: bool) -> None:
    for family, (marker, colour, label) in STYLE.items():
        pts = [(x_of(r), r.top1, r) for r in rows if r.family == family]
        if not pts:
            continue
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, c=colour, s=46, label=label, zorder=3,
                   edgecolors=["black" if p[2].top1_kind == "measured" else colour for p in pts])  # fmt: skip
    _frontier(ax, [x_of(r) for r in rows], [r.top1 for r in rows], flags, higher_x_better=higher_x_better,
              color="black", lw=1, ls="--", label="Pareto frontier", zorder=2)  # fmt: skip
    ax.set_xscale("log")
    archs = [_short(r.model) for r in rows]
    labels = [r.model if archs.count(a) > 1 else a for r, a in zip(rows, archs, strict=True)]  # several tags: name them
    _label_points(ax, [(x_of(r), r.top1, label) for r, label in zip(rows, labels, strict=True)])
    ax.set_xlabel(xlabel)
    dataset = rows[0].dataset if rows else "imagenet"
    ax.set_ylabel(f"{DATASET_TITLES[dataset]} top-1 (%)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best")


def _paper_panel(ax, table: Sequence[ScalingRow]) -> None:
    for family, (marker, colour, label) in STYLE.items():
        pts = [r for r in table if r.family == family]
        xs, ys = [r.exaflops for r in pts], [r.imagenet for r in pts]
        ax.scatter(xs, ys, marker=marker, c=colour, s=46, label=label, zorder=3)
        _frontier(ax, xs, ys, pareto_front(xs, ys), color=colour, lw=1, ls="--", zorder=2)
    ax.set_xscale("log")
    _label_points(ax, [(r.exaflops, r.imagenet, r.label.replace("R50x1+", "R50+")) for r in table], fontsize=6.5)
    ax.set_xlabel("pre-training compute (exaFLOPs, JFT-300M)")
    ax.set_ylabel("ImageNet top-1 after fine-tuning (%)")
    ax.set_title("the paper's view: Table 6 / Figure 5 (Dosovitskiy et al., ICLR 2021)", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right")


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
    _scatter(axes[0], scored, lambda r: r.gmacs, [r.pareto_gmacs for r in scored], "GMACs per image (log)", False)
    axes[0].set_title("inference compute at each checkpoint's resolution", fontsize=10)
    if timed:
        flags = [r.pareto_throughput for r in timed]
        _scatter(axes[1], timed, lambda r: r.throughput, flags, "measured throughput (images/s, log)", True)
        axes[1].set_title("measured throughput" + (f" ({subtitle})" if subtitle else ""), fontsize=10)
    _paper_panel(axes[-1], TABLE6)
    note = "Filled markers: reported top-1; black edge: measured with `vitzoo eval`."
    fig.suptitle(f"Accuracy vs compute — ViT, hybrids and BiT ResNets. {note}", fontsize=11)
    return fig


def plot_tradeoff(rows: Sequence[TradeoffRow], prefix: str | os.PathLike, *, subtitle: str = "") -> list[Path]:
    """Draw the trade-off of ``rows`` and write ``prefix.png`` and ``prefix.svg``; returns the paths written.

    Each file is written atomically (a temporary file beside it, then renamed).
    """
    import matplotlib

    from vitzoo.weights.checkpoint import atomic_path

    fig = tradeoff_figure(rows, subtitle=subtitle)
    prefix = Path(prefix).expanduser()
    paths = [prefix.with_name(prefix.name + ext) for ext in (".png", ".svg")]
    with atomic_path(paths[0]) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    with matplotlib.rc_context({"svg.hashsalt": "vitzoo"}), atomic_path(paths[1]) as tmp:  # reproducible files
        fig.savefig(tmp, format="svg", metadata={"Date": None})  # no timestamp, fixed ids
    return paths
