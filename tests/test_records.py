"""Typed records of the results store: what the library returns is what the CLI stores, a database written the way
the previous release wrote it still reads (typed, and in `vitzoo results`, `tradeoff` and `report`), and the CLI
options that say the same thing are spelled the same way in every command."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner
from test_evaluate import colour_model, solid

from vitzoo.cli import COMMANDS, main
from vitzoo.measure.records import PEAK_MODEL, RECORD_SCHEMA, EvalMetrics, FewShotMetrics, Record, record
from vitzoo.measure.results import BenchResult, FlopCount, GemmPeak, MatrixResult
from vitzoo.measure.store import ResultStore

B16 = "vit-b16.orig-in21k-ft-in1k"
ENV = {"host": "old-box", "device_name": "Old CPU", "torch": "2.12.0", "threads": 2}
BENCH_ROW = {  # the keys `vitzoo bench` of the previous release stored (BenchResult.as_dict() without model)
    "batch_size": 16, "img_size": 224, "status": "ok", "device": "cpu", "dtype": "fp32", "precision": "cast",
    "compile": False, "channels_last": False, "threads": 2, "fused": True, "kernels": "fused", "kernels_note": None,
    "backend": "torch", "params": 86_567_656, "gflops": 35.1, "img_per_s": 41.5, "latency_ms": 385.5,
    "latency_p90_ms": 390.1, "latency_p99_ms": 391.0, "tflops": 1.46, "peak_tflops": 2.9, "pct_peak": 50.3,
    "memory_mib": 512.0, "memory_kind": "cpu_rss_delta", "compile_s": None, "iters": 10, "rounds": 3,
    "round_img_per_s": [41.0, 41.5, 42.0], "error": None, "note": None, "load_start": 0.1, "load_end": 0.2,
    "other_cpu": 0.0, "contended": False, "weights_sha256": None, "mode": "inference", "grad_checkpointing": False,
}  # fmt: skip


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def old_database(path) -> ResultStore:
    """A database written with the previous release's calls (``store.add(kind, model, dict, env)``, its keys)."""
    store = ResultStore(path)
    store.add("bench", "vit-b16", BENCH_ROW, ENV)
    store.add("bench", "vit-b16", {**BENCH_ROW, "img_per_s": 400.0, "ranks": 2, "mode": "data-parallel",
                                   "rank_img_per_s": [200.0, 200.0], "per_rank": []}, ENV)  # fmt: skip
    store.add("bench", "vit-b16", {**BENCH_ROW, "img_per_s": 9.0, "mode": "train", "batch_size": 8}, ENV)
    store.add("bench", "vit-b16", {"backend": "onnxruntime", "dtype": "int8", "method": "static", "status": "ok",
                                   "img_per_s": 80.0, "batch_size": 16, "img_size": 224, "top1_agreement": 0.99,
                                   "round_img_per_s": [80.0]}, {**ENV, "mode": "matrix"})  # fmt: skip
    store.add("bench", "bit-r50x1", {"throughput": 30.0, "batch_size": 16}, ENV)  # the first releases' key
    store.add("bench", PEAK_MODEL, {"device": "cpu", "dtype": "fp32", "threads": 2, "peak_tflops": 2.9,
                                    "results": [{"kernel": "aten", "M": 3152, "K": 768, "N": 768, "tflops": 2.9}]},
              ENV)  # fmt: skip
    store.add("flops", "vit-b16", {"img_size": 224, "params": 86_567_656, "gmacs": 17.56, "gflops": 35.12,
                                   "macs": 17_560_000_000, "macs_closed_form": 17_560_000_000, "agree": True,
                                   "by_op": {"addmm": 1}, "gmacs_closed_form": 17.56}, ENV)  # fmt: skip
    store.add("eval", B16, {"top1": 81.5, "top5": 96.0, "num_images": 50000, "skipped": 0, "img_size": 224,
                            "dataset": "ImageFolder val", "protocol": "imagenet", "imagenet": True, "limit": None,
                            "dtype": "fp32", "pp_resize": "tf", "pp_crop_pct": 1.0, "pp_interpolation": "bilinear",
                            "pp_mean": [0.5, 0.5, 0.5], "set": "val", "device": "cpu"}, ENV)  # fmt: skip
    store.add("fewshot", "vit-b16.orig-in21k", {"dataset": "pets", "shots": {"1": 40.0, "5": 70.0}, "seed": 0,
                                                "l2_reg": 1024.0, "classes": 37, "layer": None}, ENV)  # fmt: skip
    return store


def test_old_database_reads_typed(tmp_path):
    store = old_database(tmp_path / "old.sqlite")
    records = store.load()
    assert [r.kind for r in records] == ["bench"] * 5 + ["peak", "flops", "eval", "fewshot"]
    assert {r.schema for r in records} == {1}  # written before typed records
    plain, parallel, train, cell, legacy, peak, flops, ev, fs = records
    assert isinstance(plain.metrics, BenchResult) and plain.metrics == BenchResult(model="vit-b16", **{
        k: tuple(v) if isinstance(v, list) else v for k, v in BENCH_ROW.items()})  # fmt: skip
    assert plain.extra == {} and plain.ranks == 1 and plain.env == ENV and plain.created.endswith("Z")
    assert parallel.ranks == 2 and parallel.extra["rank_img_per_s"] == [200.0, 200.0]
    assert train.metrics.mode == "train"
    assert isinstance(cell.metrics, MatrixResult) and cell.metrics.method == "static" and cell.metrics.threads == 0
    assert legacy.metrics.img_per_s is None and legacy.extra == {"throughput": 30.0} and legacy.metrics.status is None
    assert isinstance(peak.metrics, GemmPeak) and peak.metrics.tflops == 2.9 and peak.model == PEAK_MODEL
    assert peak.metrics.results == (("aten", 3152, 768, 768, 2.9),)
    assert isinstance(flops.metrics, FlopCount) and flops.metrics.agree and flops.metrics.gmacs == 17.56
    assert isinstance(ev.metrics, EvalMetrics) and ev.metrics.full_run and ev.metrics.top1_on("imagenet") == 81.5
    assert ev.metrics.pp_mean == (0.5, 0.5, 0.5) and ev.metrics.top1_on("v2") is None
    assert isinstance(fs.metrics, FewShotMetrics) and fs.metrics.shots == {"1": 40.0, "5": 70.0}
    assert [r.model for r in store.load(kind="peak")] == [PEAK_MODEL]
    assert len(store.load(kind="bench", model="vit-*")) == 4  # the peak is not a bench record any more


def test_records_round_trip_as_the_previous_release_wrote_them(tmp_path):
    """A typed record saves the row the previous release's dicts made (plus schema and defaults), read back equal."""
    old, new = old_database(tmp_path / "old.sqlite"), ResultStore(tmp_path / "new.sqlite")
    for r in old.load():
        new.save(r)
    for a, b in zip(old.records(), new.records(), strict=True):
        assert (a["kind"], a["model"], a["env"]) == (b["kind"], b["model"], b["env"])
        assert b["metrics"].pop("schema") == RECORD_SCHEMA
        assert all(b["metrics"][k] == v for k, v in a["metrics"].items())  # typed defaults may fill more fields
    for a, b in zip(old.load(), new.load(), strict=True):
        assert (a.kind, a.model, a.metrics, a.extra) == (b.kind, b.model, b.metrics, b.extra)


def test_old_database_in_results_tradeoff_and_report(tmp_path):
    db = tmp_path / "old.sqlite"
    old_database(db)
    shown = run("results", "--db", db, "--wide")
    assert shown.exit_code == 0, shown.output
    assert "fp32 GEMM peak 2.900 TFLOP/s" in shown.stdout and "41.50 img/s" in shown.stdout
    rows = json.loads(run("results", "--db", db, "--kind", "bench", "--models", "bit-*", "--json").stdout)
    assert [r["throughput"] for r in rows] == [30.0]
    trade = run("tradeoff", "vit-b16", "bit-r50x1", "--db", db, "--json")
    assert trade.exit_code == 0, trade.output
    by = {r["model"]: r for r in json.loads(trade.stdout)}
    assert (by[B16]["top1"], by[B16]["top1_kind"]) == (81.5, "measured")
    assert by[B16]["throughput"] == 41.5  # not the 2-rank aggregate (400), nor a training step
    assert by["bit-r50x1.bitm-in21k-ft-in1k"]["throughput"] == 30.0  # the legacy "throughput" key
    page = run("report", "--db", db, "-o", tmp_path / "r.html")
    assert page.exit_code == 0, page.output
    html = (tmp_path / "r.html").read_text()
    assert "vit-b16" in html and "81.5" in html


def test_python_bench_and_evaluate_stored_show_in_results_and_tradeoff(tmp_path):
    """What a Python user gets from ``bench_models`` and ``evaluate`` is a record the store keeps, as the CLI's."""
    import vitzoo
    from vitzoo.evaluate.accuracy import RunOptions, evaluate
    from vitzoo.evaluate.data import image_folder
    from vitzoo.evaluate.imagenet import IMAGENET_SYNSETS
    from vitzoo.measure.bench import BenchOptions, bench_models

    (result,) = bench_models(["testing"], BenchOptions(batch_sizes=(2,), warmup=1, iters=2, rounds=2, gemm_peak=False))
    for k in range(4):  # the colour model stands in for vit-b16 (no Hub): class 3's image is predicted as 2
        (tmp_path / "in1k" / IMAGENET_SYNSETS[k]).mkdir(parents=True)
        solid(min(k, 2)).save(tmp_path / "in1k" / IMAGENET_SYNSETS[k] / "x.png")
    pp = vitzoo.get_spec("vit-b16").get_weights().preprocess
    accuracy = evaluate(colour_model(1000, img_size=224), pp, image_folder(tmp_path / "in1k"), options=RunOptions(2, 0))
    store = ResultStore(tmp_path / "r.sqlite")
    ids = [store.save(record(result)), store.save(accuracy.record(B16, device="cpu", dtype="fp32"))]
    assert ids == [1, 2]
    bench, ev = store.load()
    assert bench.metrics == result and bench.env["torch"] and ev.metrics.top1 == accuracy.top1 == 75.0
    shown = run("results", "--db", store.path, "--wide")
    assert shown.exit_code == 0 and f"{result.img_per_s:.2f} img/s" in shown.stdout and B16 in shown.stdout
    rows = {r["model"]: r for r in json.loads(run("tradeoff", "vit-b16", "testing", "--db", store.path,
                                                  "--json").stdout)}  # fmt: skip
    assert (rows[B16]["top1"], rows[B16]["top1_kind"]) == (75.0, "measured")
    (testing,) = [r for m, r in rows.items() if m.startswith("testing.")]
    assert testing["throughput"] == pytest.approx(result.img_per_s)


def test_record_refuses_what_is_not_a_result():
    with pytest.raises(Exception, match="needs model="):
        record(EvalMetrics(top1=1.0))
    with pytest.raises(Exception, match="not a vitzoo result"):
        record({"img_per_s": 1.0})
    with pytest.raises(Exception, match="result kind"):
        Record("speed", "x", EvalMetrics())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tradeoff", "--no-store"], "--no-store is now --reported-only"),
        (["results", "--model", "vit-*"], "--model is now --models PATTERN"),
        (["results", "compare", "a", "b", "--model", "vit-*"], "--model is now --models PATTERN"),
        (["convert", "a.npz", "b.safetensors", "--model", "vit-b16"], "--model is now --expect NAME[.TAG]"),
    ],
)
def test_old_spellings_are_refused_in_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_commands_help_ends_with_an_example():
    for name in COMMANDS:
        cmd = main.get_command(None, name)
        commands = [cmd, *getattr(cmd, "commands", {}).values()]
        for c in commands:
            text = run(name, *([c.name] if c is not cmd else []), "--help").stdout
            assert "Example" in text, name
            epilogue = text[text.rindex("Example") :].splitlines()[1:]
            assert any(line.strip().startswith("vitzoo ") for line in epilogue), (name, c.name)
            after = text[text.rindex("Example") :]
            assert "Options:" not in after or after.index("vitzoo ") < after.index("Options:"), (name, c.name)


def test_json_is_the_output_of_convert_and_export(tmp_path):
    """`--json`/`--csv` choose the output format in every command: convert and export print what they wrote."""
    from vitzoo.weights.checkpoint import save_vitzoo

    model = colour_model()
    src = save_vitzoo(tmp_path / "m.safetensors", model.state_dict(), model.config)
    done = run("convert", src, tmp_path / "c.safetensors", "--json")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["dst"] == str(tmp_path / "c.safetensors") and "read vitzoo checkpoint" in done.stderr
    csv = run("convert", src, tmp_path / "d.safetensors", "--csv")
    assert csv.exit_code == 0 and csv.stdout.splitlines()[0].startswith("src,dst,")
    table = run("convert", src, tmp_path / "e.safetensors")
    assert table.exit_code == 0 and "tensors" in table.stdout and str(summary["tensors"]) in table.stdout
    both = run("export", src, tmp_path / "x.onnx", "--json", "--csv")
    assert both.exit_code != 0 and both.stderr.startswith("error:") and not (tmp_path / "x.onnx").exists()


def test_backend_choices_come_from_one_table():
    from vitzoo.zoo.formats import BACKENDS

    tradeoff = main.get_command(None, "tradeoff")
    (backend,) = [p for p in tradeoff.params if p.name == "backend"]
    assert isinstance(backend.type, click.Choice) and tuple(backend.type.choices) == BACKENDS
    bench_help = run("bench", "--help").stdout
    assert "|".join(BACKENDS) in bench_help
