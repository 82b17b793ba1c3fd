"""vitzoo.evaluate.tradeoff, vitzoo.zoo.paper, vitzoo.evaluate.plots: the join, Pareto flags, Table 6, the plots."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import vitzoo
from vitzoo.errors import VitzooError
from vitzoo.evaluate.plots import plot_tradeoff
from vitzoo.evaluate.tradeoff import build_tradeoff, measured_accuracy, pareto_front, resolve_names
from vitzoo.measure.store import ResultStore
from vitzoo.zoo.analytic import count_macs, count_params
from vitzoo.zoo.catalog import REGISTRY
from vitzoo.zoo.paper import CITATION, TABLE6

B16 = "vit-b16.orig-in21k-ft-in1k"  # default tag of vit-b16, 224
B16_384 = "vit-b16.orig-in21k-ft-in1k-384"


def test_pareto_front():
    cost = [1.0, 2.0, 3.0, 3.0, 5.0, 4.0]
    acc = [70.0, 69.0, 80.0, 80.0, 79.0, 85.0]
    # (2, 69) is dominated by (1, 70); (5, 79) by (3, 80); the two equal points do not dominate each other
    assert pareto_front(cost, acc) == [True, False, True, True, False, True]
    assert pareto_front([10.0, 20.0, 5.0], [80.0, 80.0, 90.0], higher_cost_better=True) == [False, True, True]
    assert pareto_front([1.0, math.nan], [50.0, 60.0]) == [True, False]


def test_resolve_names():
    defaults = resolve_names([])
    assert "testing.random-10cls" not in defaults and "vit-h14.orig-in21k" not in defaults  # no IN-1k accuracy
    assert len(defaults) == 18 and B16 in defaults and "bit-r50x1.bitm-in21k-ft-in1k" in defaults
    assert resolve_names(["vit-b*"]) == [f"vit-b8.{vitzoo.get_spec('vit-b8').default_tag}", B16,
                                         f"vit-b32.{vitzoo.get_spec('vit-b32').default_tag}"]  # fmt: skip
    assert resolve_names([B16_384, "vit-b16", "vit-b16"]) == [B16_384, B16]
    with pytest.raises(VitzooError, match="no model matches"):
        resolve_names(["nope-*"])
    with pytest.raises(VitzooError, match="unknown model"):
        resolve_names(["vit-b16.nope"])


def test_reported_rows_from_the_registry():
    rows = build_tradeoff()
    assert [r.gmacs for r in rows] == sorted(r.gmacs for r in rows)
    b16 = next(r for r in rows if r.model == B16)
    spec, weights = REGISTRY.resolve(B16)
    assert b16.params == count_params(spec.config_for(weights)) == 86_567_656
    assert b16.gmacs == count_macs(spec.config_for(weights)) / 1e9 and b16.img_size == 224
    assert (b16.top1, b16.top1_kind, b16.top1_source) == (81.2, "reported", weights.accuracy.source)
    assert b16.throughput is None and not b16.pareto_throughput
    assert {r.family for r in rows} == {"vit", "hybrid", "bit"}
    front = [r.model.split(".")[0] for r in rows if r.pareto_gmacs]
    assert front == ["vit-r-ti16", "vit-s32", "vit-r26-s32", "vit-r50-l32"]
    assert build_tradeoff(["testing"])[0].top1 is None  # named explicitly: kept without accuracy


def test_measured_accuracy_and_throughput_from_the_store(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    env = {"host": "test"}
    full = {"imagenet": True, "limit": None, "num_images": 50000, "img_size": 224, "dtype": "fp32"}
    store.add("eval", B16, {**full, "top1": 84.0, "pp_crop_pct": 1.0, "pp_resize": "tf"}, env)
    store.add("eval", B16, {**full, "top1": 99.0, "limit": 10, "num_images": 10}, env)  # --limit: ignored
    store.add("eval", B16, {**full, "top1": 99.0, "imagenet": False, "num_images": 10}, env)  # not IN-1k
    store.add("bench", "vit-b16", {"img_per_s": 50.0, "status": "ok", "device": "cpu", "dtype": "fp32",
                                   "img_size": 224}, env)  # fmt: skip
    store.add("bench", B16, {"img_per_s": 60.0, "status": "ok", "device": "cpu", "dtype": "fp32", "img_size": 224}, env)
    store.add("bench", B16, {"img_per_s": 90.0, "status": "ok", "device": "cpu", "dtype": "fp32", "img_size": 384}, env)
    store.add(
        "bench", B16, {"img_per_s": 95.0, "status": "oom", "device": "cpu", "dtype": "fp32", "img_size": 224}, env
    )
    store.add("bench", B16, {"img_per_s": 70.0, "status": "ok", "device": "cpu", "dtype": "bf16", "img_size": 224}, env)
    store.add("bench", B16, {"img_per_s": 900.0, "status": "ok", "device": "cuda:0", "dtype": "fp32",
                             "img_size": 224}, env)  # fmt: skip
    store.add("bench", "bit-r50x1", {"img_per_s": 30.0, "status": "ok", "device": "cpu", "dtype": "fp32",
                                     "img_size": 448}, env)  # fmt: skip
    rows = {r.model: r for r in build_tradeoff(["vit-b16", "bit-r50x1", "vit-s32"], store=store)}
    b16 = rows[B16]
    assert (b16.top1, b16.top1_kind) == (84.0, "measured") and "50000 images" in b16.top1_source
    assert b16.throughput == 60.0
    assert rows["bit-r50x1.bitm-in21k-ft-in1k"].throughput == 30.0
    assert rows["bit-r50x1.bitm-in21k-ft-in1k"].top1_kind == "reported"
    assert rows[f"vit-s32.{vitzoo.get_spec('vit-s32').default_tag}"].throughput is None
    # b16 (84.0 at 60 img/s) beats bit-r50x1 (80.4 at 30 img/s) on throughput
    assert b16.pareto_throughput and not rows["bit-r50x1.bitm-in21k-ft-in1k"].pareto_throughput
    cuda = {r.model: r for r in build_tradeoff(["vit-b16"], store=store, device="cuda", dtype="fp32")}
    assert cuda[B16].throughput == 900.0
    assert build_tradeoff(["vit-b16"], store=store, dtype="bf16")[0].throughput == 70.0


def test_measured_accuracy_is_the_rows_resolution_crop_and_dtype(tmp_path):
    """A later eval at another resolution, crop, resize or dtype is another measurement: not the row's top-1."""
    store = ResultStore(tmp_path / "r.sqlite")
    full = {"imagenet": True, "limit": None, "num_images": 50000, "img_size": 224, "dtype": "fp32"}
    store.add("eval", B16, {**full, "top1": 81.5, "pp_crop_pct": 1.0, "pp_resize": "tf"}, {})
    store.add("eval", B16, {**full, "top1": 80.1, "img_size": 384}, {})  # --img-size 384
    store.add("eval", B16, {**full, "top1": 80.2, "pp_crop_pct": 0.875, "pp_resize": "shorter"}, {})  # --crop-pct
    store.add("eval", B16, {**full, "top1": 80.3, "pp_resize": "squash"}, {})  # Pillow's resize, not vit_jax's
    store.add("eval", B16, {**full, "top1": 80.4, "dtype": "bf16"}, {})
    store.add("eval", B16_384, {**full, "top1": 83.0, "img_size": 384}, {})
    assert measured_accuracy(store, B16)[0] == 81.5
    assert measured_accuracy(store, B16, "bf16")[0] == 80.4
    assert measured_accuracy(store, B16_384)[0] == 83.0 and measured_accuracy(store, B16_384, "fp16") is None
    rows = {r.model: r for r in build_tradeoff([B16, B16_384], store=store)}
    assert (rows[B16].top1, rows[B16_384].top1) == (81.5, 83.0) and "fp32" in rows[B16].top1_source
    assert build_tradeoff([B16], store=store, dtype="bf16")[0].top1 == 80.4
    assert build_tradeoff([B16], store=store, dtype="fp16")[0].top1_kind == "reported"


def test_paper_table6():
    assert len(TABLE6) == 18 and "Table 6" in CITATION
    by = {r.label: r for r in TABLE6}
    assert by["ViT-H/14 (14 ep)"].imagenet == 88.08 and by["ViT-H/14 (14 ep)"].exaflops == 4262
    assert by["ResNet50x1 (7 ep)"].real == 84.56 and by["ResNet50x1 (7 ep)"].family == "bit"
    assert by["R50x1+ViT-L/16 (14 ep)"].flowers == 99.11 and by["R50x1+ViT-L/16 (14 ep)"].family == "hybrid"
    assert sum(r.family == "vit" for r in TABLE6) == 6 and sum(r.family == "bit" for r in TABLE6) == 7


def test_plot_files(tmp_path):
    rows = build_tradeoff(["vit-b16", "bit-r50x1", "vit-r26-s32", "vit-s32"])
    paths = plot_tradeoff(rows, tmp_path / "out" / "tradeoff")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tradeoff.png", "tradeoff.svg"]  # no temp left
    assert [p.name for p in paths] == ["tradeoff.png", "tradeoff.svg"]
    with Image.open(paths[0]) as im:
        assert im.format == "PNG" and im.width > 1000
    svg = paths[1].read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_plot_leaves_matplotlib_global_state_alone(tmp_path):
    """No pyplot, no backend switch: a user's interactive backend survives `plot_tradeoff` (fresh interpreter)."""
    code = (
        "import sys, matplotlib; matplotlib.use('svg'); from vitzoo.evaluate.plots import plot_tradeoff; "
        "from vitzoo.evaluate.tradeoff import build_tradeoff; "
        f"plot_tradeoff(build_tradeoff(['vit-b16', 'bit-r50x1']), {str(tmp_path / 'p')!r}); "
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend(); "
        "assert 'matplotlib.pyplot' not in sys.modules"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "p.png").stat().st_size > 10_000 and (tmp_path / "p.svg").exists()


def test_tradeoff_on_another_set_measured_else_timms_number(tmp_path):
    """--dataset a: the user's full ImageNet-A eval where there is one, else timm's published A top-1 (by hand from
    results-imagenet-a.csv: resnetv2_50x1_bit.goog_in21k_ft_in1k 27.120, vit_base_patch16_224.orig_in21k_ft_in1k
    31.587); an ImageNet-1k run or a V2 run is not an A measurement."""
    store = ResultStore(tmp_path / "r.sqlite")
    full = {"imagenet": True, "limit": None, "img_size": 224, "dtype": "fp32", "pp_resize": "tf", "pp_crop_pct": 1.0}
    store.add("eval", B16, {**full, "top1": 81.0, "num_images": 50000}, {})  # before protocols were recorded
    store.add("eval", B16, {**full, "top1": 70.5, "protocol": "v2", "num_images": 10000}, {})
    store.add("eval", B16, {**full, "top1": 33.0, "protocol": "a", "num_images": 7500}, {})
    store.add("eval", B16, {**full, "top1": 80.0, "real_top1": 86.0, "real_images": 46837, "protocol": "real",
                            "num_images": 50000}, {})  # fmt: skip
    rows = {r.model: r for r in build_tradeoff(["vit-b16", "bit-r50x1"], store=store, dataset="a")}
    b16, bit = rows[B16], rows["bit-r50x1.bitm-in21k-ft-in1k"]
    assert (b16.top1, b16.top1_kind, b16.dataset) == (33.0, "measured", "a") and "7500 images" in b16.top1_source
    assert (bit.top1, bit.top1_kind, bit.top1_source) == (27.120, "reported", "timm eval (results-imagenet-a.csv)")
    assert build_tradeoff([B16], dataset="a")[0].top1 == 31.587  # no store: timm's number
    assert measured_accuracy(store, B16, dataset="imagenet")[0] == 81.0
    assert measured_accuracy(store, B16, dataset="v2")[0] == 70.5
    assert (
        measured_accuracy(store, B16, dataset="real")[0] == 86.0 and measured_accuracy(store, B16, dataset="r") is None
    )
    assert build_tradeoff(["testing"], dataset="sketch")[0].top1 is None  # named: kept, without a number
    assert build_tradeoff(["vit-b16.augreg-in21k"], dataset="r")[0].top1 is None
    with pytest.raises(VitzooError, match="unknown dataset 'b'"):
        build_tradeoff(dataset="b")


def _overlaps(boxes) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes[:i])
            if a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1]  # fmt: skip


def test_plot_labels_and_log_ticks_do_not_collide():
    """Every panel of the full trade-off (all default checkpoints, a throughput panel, the paper's 21 points):
    no two point labels overlap, and the x tick labels (plain numbers, none on minor ticks) do not either."""
    from dataclasses import replace

    from vitzoo.evaluate.plots import tradeoff_figure

    rows = [replace(r, throughput=1000 / r.gmacs) for r in build_tradeoff(None)]
    fig = tradeoff_figure(rows)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = [t.get_window_extent(renderer) for t in ax.texts]
        assert len(labels) >= 18 and not _overlaps(labels), [ax.texts[i].get_text() for pair in _overlaps(labels)
                                                            for i in pair]  # fmt: skip
        ticks = [t for t in ax.get_xticklabels(which="both") if t.get_visible() and t.get_text()]
        assert ticks and all("times" not in t.get_text() and "^" not in t.get_text() for t in ticks)
        assert not _overlaps([t.get_window_extent(renderer) for t in ticks]), [t.get_text() for t in ticks]


def test_int8_throughput_is_the_fastest_non_degraded_matrix_cell_with_the_fp32_accuracy(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    env = {"host": "test"}
    full = {"imagenet": True, "limit": None, "num_images": 50000, "img_size": 224, "dtype": "fp32", "top1": 84.0,
            "pp_crop_pct": 1.0, "pp_resize": "tf"}  # fmt: skip
    store.add("eval", B16, full, env)
    cell, matrix = {"status": "ok", "dtype": "int8", "img_size": 224, "backend": "torch"}, {**env, "mode": "matrix"}
    store.add("bench", B16, {**cell, "method": "pt2e", "img_per_s": 35.0, "degraded": False}, matrix)
    store.add("bench", B16, {**cell, "method": "torchao", "img_per_s": 50.0, "degraded": True,
                             "degraded_why": "top-1 agreement with fp32 90.0% < 99%"}, matrix)  # fmt: skip
    store.add("bench", B16, {**cell, "backend": "openvino", "method": "nncf", "img_per_s": 33.0, "degraded": False},
              matrix)  # fmt: skip
    (row,) = build_tradeoff(["vit-b16"], store=store, dtype="int8")
    assert row.throughput == 35.0  # the degraded 50 img/s cell is not the model's answers
    assert (row.top1, row.top1_kind) == (84.0, "measured")
    (ov,) = build_tradeoff(["vit-b16"], store=store, dtype="int8", backend="openvino")
    assert ov.throughput == 33.0
