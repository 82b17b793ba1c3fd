"""The report's plots, drawn with matplotlib on their own Agg canvas and kept as SVG text (no files, no pyplot).

Bar chart of throughput, few-shot curves, throughput history; the trade-off figure is
``vitzoo.evaluate.plots.tradeoff_figure``, the same one `vitzoo tradeoff --plot` writes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BACKEND_COLOURS = {"torch": "#1f77b4", "onnxruntime": "#ff7f0e", "openvino": "#2ca02c"}
MAX_BARS = 40  # the bar chart keeps the fastest ones


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_svg(fig: Figure) -> str:
    """The figure as an SVG document, reproducible (fixed ids, no date)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "vitzoo", "svg.fonttype": "path"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def throughput_bars(labels: Sequence[str], values: Sequence[float], backends: Sequence[str]) -> str:
    """Horizontal bars of images/s, one per benchmark setting, coloured by backend, fastest on top."""
    order = sorted(range(len(values)), key=lambda i: values[i], reverse=True)[:MAX_BARS]
    order.reverse()  # barh draws bottom-up
    fig = new_figure(9.0, 1.2 + 0.32 * len(order))
    ax = fig.subplots()
    colours = [BACKEND_COLOURS.get(backends[i], "#7f7f7f") for i in order]
    ax.barh(range(len(order)), [values[i] for i in order], color=colours)
    ax.set_yticks(range(len(order)), [labels[i] for i in order], fontsize=8)
    for y, i in enumerate(order):
        ax.annotate(f"{values[i]:,.1f}", (values[i], y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7)  # fmt: skip
    ax.set_xlabel("images/s (latest run of each setting)")
    ax.margins(x=0.12)
    ax.grid(True, axis="x", alpha=0.25)
    from matplotlib.patches import Patch

    shown = [Patch(color=colour, label=name) for name, colour in BACKEND_COLOURS.items() if name in backends]
    ax.legend(handles=shown, fontsize=8, loc="lower right")
    return to_svg(fig)


def fewshot_curves(curves: Sequence[tuple[str, Sequence[int], Sequence[float]]]) -> str:
    """Few-shot accuracy against images per class (log x), one line per (model, dataset)."""
    fig = new_figure(7.0, 4.2)
    ax = fig.subplots()
    for label, shots, acc in curves:
        ax.plot(shots, acc, marker="o", label=label)
    ax.set_xscale("log")
    shots = sorted({k for _, ks, _ in curves for k in ks})
    ax.set_xticks(shots, [str(k) for k in shots])  # the shot counts measured, not powers of ten
    ax.minorticks_off()
    ax.set_xlabel("images per class (log)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="best")
    return to_svg(fig)


def history_lines(series: Sequence[tuple[str, Sequence, Sequence[float], Sequence[bool], Sequence[bool]]]) -> str:
    """Throughput over time, one line per (machine, setting): hollow markers for contended runs, a red cross on
    runs flagged as a regression. Each series is (label, dates, img/s, contended flags, regression flags)."""
    fig = new_figure(9.0, 4.6)
    ax = fig.subplots()
    for label, dates, values, busy, regressed in series:
        (line,) = ax.plot(dates, values, marker="o", label=label)
        hollow = [(d, v) for d, v, b in zip(dates, values, busy, strict=True) if b]
        if hollow:
            ax.scatter(*zip(*hollow, strict=True), s=60, facecolors="white", edgecolors=line.get_color(), zorder=3)
        bad = [(d, v) for d, v, r in zip(dates, values, regressed, strict=True) if r]
        if bad:
            ax.scatter(*zip(*bad, strict=True), s=90, marker="x", c="#d62728", zorder=4)
    ax.set_ylabel("images/s")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=7, loc="best")
    fig.autofmt_xdate()
    return to_svg(fig)
