"""Scale-out: shards, the exchange codec, and real gloo process groups of 2 and 3 ranks on the CPU.

`vitzoo eval`, `fewshot` and `bench` are started under torchrun (`python -m torch.distributed.run --standalone`)
and with `--nproc N`, on a folder of real photos, generated images and corrupt files (tests/test_evaluate.py's),
and their output and stored record are compared with the single-process run: equal except the timing. Faults
are injected into one rank from outside (a sitecustomize module on the workers' path) to check that every rank
stops, one line names the rank and the cause, and nothing is stored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_evaluate import build_folder, colour_model, photo, solid

from vitzoo.cli import main
from vitzoo.errors import VitzooError
from vitzoo.measure.store import ResultStore
from vitzoo.parallel.distributed import (
    Launch,
    agree,
    gather,
    launch_info,
    rank_device,
    resolve_timeout,
    shard_dataset,
    shard_range,
)
from vitzoo.parallel.sharded import _shard_progress
from vitzoo.parallel.wire import decode, encode
from vitzoo.weights.checkpoint import save_vitzoo

ROOT = Path(__file__).resolve().parents[1]
TIMING = {"seconds", "images_per_s"}  # the only metrics allowed to differ from the single-process run
PER_PROCESS_ENV = {"world_size", "local_world_size", "threads"}
INJECT = """
import os
if os.environ.get("FAIL_RANK") is not None and os.environ.get("RANK") == os.environ["FAIL_RANK"]:
    import vitzoo.parallel.sharded

    def count_hits(*args, **kwargs):
        if os.environ.get("FAIL_HOW") == "exit":
            os._exit(9)
        if os.environ.get("FAIL_HOW") == "hang":
            import time

            time.sleep(3600)
        raise RuntimeError("injected failure")

    vitzoo.parallel.sharded.count_hits = count_hits
if os.environ.get("FAKE_GEMM_PEAK"):  # measuring the real roofline takes many seconds on a busy CPU
    import vitzoo.measure.bench
    from vitzoo.measure.roofline import GemmPeak

    fake = float(os.environ["FAKE_GEMM_PEAK"])
    vitzoo.measure.bench.gemm_peak = lambda device, dtype: GemmPeak("cpu", "fp32", 1, fake, ())
"""


@pytest.mark.parametrize("n", [0, 1, 7, 16, 17])
@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("align", [1, 3, 5])
def test_shards_are_contiguous_whole_batches_covering_every_item_once(n, world, align):
    shards = [shard_range(n, r, world, align) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))  # disjoint, in rank order, no padding
    assert all(s.start % align == 0 for s in shards if len(s))  # a single process's batches, unchanged
    blocks = [-(-len(s) // align) for s in shards]
    assert max(blocks) - min(blocks) <= 1 and blocks == sorted(blocks, reverse=True)
    with pytest.raises(ValueError):
        shard_range(n, world, world, align)


def test_codec_round_trip_is_exact_and_pickle_free():
    x = np.random.default_rng(0).normal(size=(5, 3))
    obj = {"x": x, "labels": np.arange(5), "failures": [("a", "OSError: x")], "n": 3, "f": 0.1, "none": None}
    back = decode(encode(obj))
    assert np.array_equal(back["x"], x) and back["x"].dtype == np.float64 and back["labels"].tolist() == [0, 1, 2, 3, 4]
    assert back["failures"] == [["a", "OSError: x"]] and (back["n"], back["f"], back["none"]) == (3, 0.1, None)
    assert decode(encode({"empty": np.zeros((0, 0))}))["empty"].shape == (0, 0)
    with pytest.raises(TypeError):
        encode({"o": np.array([object()])})


def test_launch_environment_timeout_and_device():
    assert launch_info({}) == Launch() and not Launch().is_distributed and Launch().is_main
    env = {"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}
    assert launch_info(env) == Launch(2, 4, 0, 2) and not launch_info(env).is_main
    for bad in ({"WORLD_SIZE": "x"}, {"WORLD_SIZE": "2", "RANK": "2"}):
        with pytest.raises(VitzooError):
            launch_info(bad)
    assert resolve_timeout(5) == 5.0
    with pytest.raises(VitzooError, match="> 0"):
        resolve_timeout(0)
    assert rank_device("cpu", Launch(1, 2, 1, 2)) == "cpu" and rank_device("cuda", Launch()) == "cuda"


def test_rank0_progress_is_its_share_scaled_to_the_dataset():
    calls = []
    report = _shard_progress(lambda done, total: calls.append((done, total)), Launch(0, 3), 10, 16)
    report(5, 10)
    report(10, 10)
    _shard_progress(lambda done, total: calls.append((done, total)), Launch(1, 3), 5, 16)(5, 5)  # others: silent
    assert calls == [(8, 16), (16, 16)]


def test_one_process_needs_no_process_group(tmp_path):
    assert gather(lambda: {"a": 1}, "x") == [{"a": 1}] and agree(lambda: 7, "x") == 7
    build_folder(tmp_path)
    from vitzoo.evaluate.data import image_folder

    data = image_folder(tmp_path)
    parts = [shard_dataset(data, Launch(r, 3), 5) for r in range(3)]
    assert [len(p) for p in parts] == [10, 5, 1] and [k for p in parts for k in p.keys] == data.keys


# -- real process groups ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A model file, the colour ImageFolder (14 images, 2 unreadable), a few-shot folder, a fault injector."""
    root = tmp_path_factory.mktemp("dist")
    build_folder(root / "data")
    for k in range(3):
        (root / "fs" / f"c{k}").mkdir(parents=True)
        for j in range(6):
            solid(k, size=(30 + j, 24)).save(root / "fs" / f"c{k}" / f"{j}.png")
    photo("coffee").save(root / "fs" / "c2" / "coffee.png")
    (root / "fs" / "c1" / "bad.jpg").write_text("not an image")
    model = colour_model()
    save_vitzoo(root / "colour.safetensors", model.state_dict(), model.config)
    (root / "inject").mkdir()
    (root / "inject" / "sitecustomize.py").write_text(INJECT)
    return root


def _launch(root: Path, args: list, *, torchrun: int | None = None, **env: str) -> subprocess.CompletedProcess:
    """`vitzoo ARGS` in a fresh process (under torchrun with that many ranks), with 1 thread per process."""
    prefix = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={torchrun}"] if torchrun else []
    environ = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    environ |= {"PYTHONPATH": os.pathsep.join([str(ROOT), str(root / "inject")]), "OMP_NUM_THREADS": "1",
                "VITZOO_DIST_TIMEOUT": "120", "XDG_CACHE_HOME": str(root / "cache"), **env}  # fmt: skip
    cmd = [sys.executable, *prefix, "-m", "vitzoo", *map(str, args)]
    return subprocess.run(cmd, cwd=root, env=environ, capture_output=True, text=True, timeout=600)


def _single(args: list):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def _same_record(db_one: Path, db_many: Path, kind: str, world: int) -> None:
    (one,), (many,) = ResultStore(db_one).records(kind=kind), ResultStore(db_many).records(kind=kind)
    drop = lambda d, keys: {k: v for k, v in d.items() if k not in keys}  # noqa: E731
    assert drop(many["metrics"], TIMING) == drop(one["metrics"], TIMING) and one["model"] == many["model"]
    assert drop(many["env"], PER_PROCESS_ENV) == drop(one["env"], PER_PROCESS_ENV)
    assert (one["env"]["world_size"], many["env"]["world_size"]) == (1, world)


@pytest.mark.parametrize(("ranks", "how", "batch"), [(2, "torchrun", 3), (3, "nproc", 5)])
def test_eval_across_ranks_equals_one_process(workdir, tmp_path, ranks, how, batch):
    args = ["eval", workdir / "colour.safetensors", "--data", workdir / "data", "-j", "0", "-b", batch, "--json"]
    one = _single([*args, "--db", tmp_path / "one.sqlite"])
    extra = ["--nproc", ranks] if how == "nproc" else []
    many = _launch(
        workdir, [*args, "--db", tmp_path / "many.sqlite", *extra], torchrun=ranks if how == "torchrun" else None
    )
    assert many.returncode == 0, many.stderr
    (row_one,), (row_many,) = json.loads(one.stdout), json.loads(many.stdout)  # rank 0 alone printed
    assert {k: v for k, v in row_many.items() if k not in TIMING} == {
        k: v for k, v in row_one.items() if k not in TIMING
    }
    assert (row_many["num_images"], row_many["skipped"]) == (14, 2)
    assert many.stderr.count("2 file(s) could not be read") == 1 and many.stderr.count("recorded as eval") == 1
    assert many.stderr.index("readme:") < many.stderr.index("truncated:")  # skipped files in dataset order
    _same_record(tmp_path / "one.sqlite", tmp_path / "many.sqlite", "eval", ranks)


def test_fewshot_across_three_ranks_equals_one_process(workdir, tmp_path):
    args = ["fewshot", workdir / "colour.safetensors", "--data", workdir / "fs", "--shots", "1,2,4", "-j", "0", "-b",
            "4", "--seed", "3", "--json"]  # fmt: skip
    one = _single([*args, "--db", tmp_path / "one.sqlite"])
    many = _launch(workdir, [*args, "--db", tmp_path / "many.sqlite", "--nproc", 3])
    assert many.returncode == 0, many.stderr
    rows = json.loads(many.stdout)
    assert rows == json.loads(one.stdout) and [r["test_images"] for r in rows] == [7, 7, 7]
    assert many.stderr.count("1 file(s) could not be read") == 1
    _same_record(tmp_path / "one.sqlite", tmp_path / "many.sqlite", "fewshot", 3)


@pytest.mark.parametrize("how", ["raise", "exit", "hang", "everywhere"])
def test_a_failing_rank_stops_every_rank_and_stores_nothing(workdir, tmp_path, how):
    db = tmp_path / "r.sqlite"
    args = ["eval", workdir / "colour.safetensors", "--data", workdir / "data", "-j", "0", "-b", "2", "--db", db]
    start = time.monotonic()
    if how == "raise":  # a Python error on rank 1, under torchrun: rank 0 names it
        result = _launch(workdir, args, torchrun=2, FAIL_RANK="1", FAIL_HOW="raise")
        expected = "error: rank 1: RuntimeError: injected failure"
    elif how == "exit":  # rank 1 dies without a word, under --nproc: rank 0 names it, or if the launcher stopped
        result = _launch(workdir, [*args, "--nproc", 2], FAIL_RANK="1", FAIL_HOW="exit")  # rank 0 first, --nproc does
        said = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert said and ("exited with code 9" in said[0] or "stopped answering" in said[0]), result.stderr
        expected = "error: rank 1"
    elif how == "everywhere":  # the same user mistake on every rank: the single-process message, once
        args[args.index("--data") + 1] = workdir / "nowhere"
        result = _launch(workdir, [*args, "--nproc", 2])
        expected = f"error: {workdir / 'nowhere'}: no such directory"
    else:  # rank 1 hangs: rank 0 gives up after --dist-timeout and names it
        result = _launch(workdir, [*args, "--nproc", 2, "--dist-timeout", 5], FAIL_RANK="1", FAIL_HOW="hang")
        expected = "error: rank 1: stopped answering while evaluating"
    assert result.returncode != 0 and time.monotonic() - start < 120
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(expected), result.stderr
    assert not db.exists() or len(ResultStore(db)) == 0


def test_inspect_attention_across_ranks_equals_one_process(workdir, tmp_path):
    images = sorted((workdir / "data").glob("*/*.png"))[:9]  # 9 images: ranks share whole batches of 8 (8 + 1)
    args = ["inspect", "testing", "--random-init", "--img-size", "64", "-a", "attention-distance,rollout", "--json"]
    args += [a for p in images for a in ("-i", p)]
    one = json.loads(_single([*args, "--out", tmp_path / "one"]).stdout)
    many = _launch(workdir, [*args, "--out", tmp_path / "many", "--nproc", 2])
    assert many.returncode == 0, many.stderr
    many_summary = json.loads(many.stdout)
    drop = lambda d: {k: v for k, v in d.items() if k not in ("out", "files")}  # noqa: E731
    assert drop(many_summary) == drop(one) and len(one["rollout"]) == 9
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_a_command_that_exits_on_every_rank_says_so_once(workdir):
    result = _launch(workdir, ["bench", "--nproc", 2])  # `fail()` (SystemExit) on every rank, before any exchange
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(errors) == 1 and "name at least one model" in errors[0], result.stderr


def test_bench_data_parallel_and_sweep(workdir, tmp_path):
    common = ["--img-size", "32", "--warmup", "1", "--iters", "2", "--rounds", "1", "--json"]
    db = tmp_path / "r.sqlite"
    par = _launch(workdir, ["bench", "testing", "-b", "2,3", *common, "--db", db, "--nproc", 2], FAKE_GEMM_PEAK="0.5")
    assert par.returncode == 0, par.stderr
    rows = json.loads(par.stdout)
    expected = [("testing", 2, 2, "ok"), ("testing", 3, 2, "ok")]
    assert [(r["model"], r["batch_size"], r["ranks"], r["status"]) for r in rows] == expected
    for r in rows:
        assert [p["rank"] for p in r["per_rank"]] == [0, 1] and r["rank_img_per_s"] == [
            p["img_per_s"] for p in r["per_rank"]
        ]
        assert r["img_per_s"] == pytest.approx(sum(r["rank_img_per_s"]))
        assert r["pct_peak"] == pytest.approx(100 * r["tflops"] / (2 * 0.5))
    stored = ResultStore(db).records(kind="bench")
    assert len(stored) == 2 and {s["env"]["world_size"] for s in stored} == {2}
    args = ["bench", "testing", "-b", "1,2,3", *common, "--no-store", "--sweep"]
    sweep = _launch(workdir, args, torchrun=2, FAKE_GEMM_PEAK="0.5")
    assert sweep.returncode == 0, sweep.stderr
    rows = json.loads(sweep.stdout)
    assert [(r["batch_size"], r["rank"], r["status"]) for r in rows] == [(1, 0, "ok"), (2, 1, "ok"), (3, 0, "ok")]
    assert all(r["env"]["world_size"] == 2 for r in rows)


def test_scale_out_options_are_checked_before_anything_starts(tmp_path, monkeypatch):
    build_folder(tmp_path / "data")
    base = ["eval", "nowhere.safetensors", "--data", tmp_path / "data", "--no-store"]
    cases = [(["--nproc", "0"], "--nproc must be >= 1"), (["--dist-timeout", "0"], "timeout must be > 0 seconds")]
    for extra, message in cases:
        result = CliRunner().invoke(main, [str(a) for a in [*base, *extra]])
        assert result.exit_code == 1 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun
    monkeypatch.setenv("RANK", "0")
    result = CliRunner().invoke(main, [str(a) for a in [*base, "--nproc", "2"]])
    assert result.exit_code == 1 and "under torchrun leave it out" in result.stderr
    assert "--nproc N" in CliRunner().invoke(main, ["fewshot", "--help"]).stdout


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.skipif(_gpus() < 2, reason="needs 2 CUDA devices (NCCL ranks on cuda:0 and cuda:1)")
def test_eval_and_bench_on_two_gpus(workdir, tmp_path):
    args = ["eval", workdir / "colour.safetensors", "--data", workdir / "data", "-j", "0", "-b", "3", "--json",
            "--device", "cuda", "--no-store"]  # fmt: skip
    (one,) = json.loads(_single(args).stdout)
    many = _launch(workdir, [*args, "--nproc", 2])
    assert many.returncode == 0, many.stderr
    (row,) = json.loads(many.stdout)
    assert {k: v for k, v in row.items() if k not in TIMING} == {k: v for k, v in one.items() if k not in TIMING}
    bench = _launch(workdir, ["bench", "testing", "-b", "8", "--device", "cuda", "--iters", "3", "--rounds", "1",
                              "--json", "--no-store", "--nproc", 2])  # fmt: skip
    assert bench.returncode == 0, bench.stderr
    (agg,) = json.loads(bench.stdout)
    assert [p["device"] for p in agg["per_rank"]] == ["cuda:0", "cuda:1"] and agg["status"] == "ok"


@pytest.mark.skipif(_gpus() < 1, reason="needs a CUDA device")
def test_more_ranks_than_gpus_is_one_clear_line(workdir):
    args = ["eval", workdir / "colour.safetensors", "--data", workdir / "data", "-j", "0", "--device", "cuda",
            "--no-store", "--nproc", _gpus() + 1]  # fmt: skip
    result = _launch(workdir, args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(errors) == 1 and "has no GPU" in errors[0], result.stderr
