"""The paper's figures from the arrays of ``vitzoo.inspection``, as matplotlib ``Figure`` objects.

Built with ``matplotlib.figure.Figure`` directly (no pyplot, no global backend), so this is safe in scripts,
servers and notebooks; save with ``fig.savefig("out.png")``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from vitzoo.inspection.attention import upsample_maps
from vitzoo.inspection.embeddings import FilterComponents


def _mosaic(tiles: np.ndarray, cols: int, fill: float) -> np.ndarray:
    """(n, h, w[, c]) tiles -> one image, ``cols`` tiles per row, 1-pixel ``fill`` separators."""
    n, h, w = tiles.shape[:3]
    rows = -(-n // cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, *tiles.shape[3:]), fill, dtype=np.float64)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = tile
    return out


def plot_filters(components: FilterComponents, title: str = "") -> Figure:
    """Paper Fig. 7 (left): the principal components as RGB patches, 7 per row, first at the top left."""
    rgb = components.rgb()
    cols = min(7, len(rgb))
    rows = -(-len(rgb) // cols)
    fig = Figure(figsize=(1.0 * cols + 0.4, 1.0 * rows + 0.8), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(_mosaic(rgb, cols, fill=1.0), interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"RGB embedding filters\n(first {len(rgb)} principal components)", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_posemb_similarity(similarity: ArrayLike, title: str = "") -> Figure:
    """Paper Fig. 7 (centre): for each patch (r, c), the g x g map of its cosine similarity with all patches."""
    sim = np.asarray(similarity, dtype=np.float64)
    g = sim.shape[0]
    mosaic = _mosaic(sim.reshape(g * g, g, g), g, fill=np.nan)
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(mosaic, cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
    centres = np.arange(g) * (g + 1) + (g - 1) / 2
    step = max(1, g // 7)
    ax.set_xticks(centres[::step], [str(i + 1) for i in range(0, g, step)])
    ax.set_yticks(centres[::step], [str(i + 1) for i in range(0, g, step)])
    ax.set_xlabel("Input patch column")
    ax.set_ylabel("Input patch row")
    ax.tick_params(length=0)
    ax.set_title("Position embedding similarity", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="Cosine similarity")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_attention_distance(distance: ArrayLike, uniform_distance: float | None = None, title: str = "") -> Figure:
    """Paper Fig. 7 (right): mean attention distance of every head against depth.

    ``uniform_distance`` (the mean distance between two patches: what uniform attention gives) is drawn as a
    dashed reference line when given.
    """
    d = np.asarray(distance, dtype=np.float64)  # (L, H)
    layers, heads = d.shape
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    colours = [(0.12, 0.47, 0.71)] * heads if heads > 20 else [f"C{h % 10}" for h in range(heads)]
    for h in range(heads):
        label = f"Head {h + 1}" if heads <= 20 else None
        ax.scatter(np.arange(1, layers + 1), d[:, h], s=14, color=colours[h], alpha=0.85, label=label)
    if uniform_distance is not None:
        ax.axhline(uniform_distance, color="0.5", linestyle="--", linewidth=1, label="uniform attention")
    top = max(float(np.nanmax(d)) if d.size else 0.0, uniform_distance or 0.0)
    ax.set_ylim(0, top * 1.08 + 1e-9)
    ax.set_xlim(0.5, layers + 0.5)
    ax.set_xticks(np.arange(1, layers + 1, max(1, layers // 12)))
    ax.set_xlabel("Network depth (layer)")
    ax.set_ylabel("Mean attention distance (pixels)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=2 if heads > 8 else 1, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_rollout(maps: ArrayLike, pixels: np.ndarray, names: Sequence[str] = (), title: str = "") -> Figure:
    """Paper Fig. 6: for each image, the input, the input masked by its rollout map, and the map as a heatmap.

    ``maps`` are (B, g, g) rollout maps, ``pixels`` the (B, S, S, 3) uint8 images they were computed from.
    """
    masks = upsample_maps(maps, pixels.shape[1])  # (B, S, S) in [0, 1]
    count = len(masks)
    fig = Figure(figsize=(7.2, 2.5 * count + 0.3), layout="constrained")
    axes = fig.subplots(count, 3, squeeze=False)
    for i, (ax_in, ax_mask, ax_heat) in enumerate(axes):
        image = pixels[i].astype(np.float64) / 255.0
        ax_in.imshow(image)
        ax_mask.imshow(image * masks[i][..., None])
        ax_heat.imshow(image.mean(axis=-1), cmap="gray", vmin=0, vmax=1)
        ax_heat.imshow(masks[i], cmap="inferno", alpha=0.6, vmin=0, vmax=1)
        for ax in (ax_in, ax_mask, ax_heat):
            ax.set_axis_off()
        ax_in.set_title(names[i] if i < len(names) else f"image {i + 1}", fontsize=9)
        ax_mask.set_title("attention rollout", fontsize=9)
        ax_heat.set_title("rollout heatmap", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
