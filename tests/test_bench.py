"""The timing harness on the `testing` model (CPU), simulated OOM and CUDA timing, the GEMM roofline, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import vitzoo
import vitzoo.bench as bench
import vitzoo.peak as peak
from vitzoo.analytic import count_macs
from vitzoo.bench import BenchOptions, bench_models, benchmark_model, parse_batch_sizes
from vitzoo.cli import main
from vitzoo.errors import ConfigError, VitzooError
from vitzoo.factory import resolve_config
from vitzoo.peak import CudaMemoryMeter, CudaTimer, GemmPeak, is_oom, measure_gemm_peak, resolve_device
from vitzoo.store import ResultStore

TINY = {"warmup": 1, "iters": 2, "rounds": 2, "gemm_peak": False}


def test_harness_on_testing_model():
    results = bench_models(["testing"], BenchOptions(batch_sizes=(1, 3), **TINY))
    assert [(r.model, r.batch_size, r.status) for r in results] == [("testing", 1, "ok"), ("testing", 3, "ok")]
    macs = count_macs(resolve_config("testing")[2])
    for r in results:
        assert r.img_per_s > 0 and r.iters == 2 and r.rounds == 2 and len(r.round_img_per_s) == 2
        assert r.img_per_s == pytest.approx(float(np.median(r.round_img_per_s)))
        assert 0 < r.latency_ms <= r.latency_p90_ms <= r.latency_p99_ms
        assert r.gflops == pytest.approx(2 * macs / 1e9)
        assert r.tflops == pytest.approx(r.gflops * r.img_per_s / 1e3)
        assert r.params == 10_500 and r.img_size == 224 and r.device == "cpu" and r.dtype == "fp32"
        assert r.memory_kind == "cpu_rss_delta" and r.peak_tflops is None and r.pct_peak is None
        json.dumps(r.as_dict())  # plain data


def test_seconds_threads_and_low_precision():
    before = torch.get_num_threads()
    opts = BenchOptions(batch_sizes=(2,), dtype="bf16", threads=1, seconds=0.05, warmup=1, rounds=2, gemm_peak=False)
    (r,) = bench_models(["testing"], opts)
    assert r.status == "ok" and r.threads == 1 and r.dtype == "bf16" and r.iters >= 1
    assert torch.get_num_threads() == before  # restored
    (r,) = bench_models(["testing"], BenchOptions(batch_sizes=(2,), dtype="bf16", precision="autocast", **TINY))
    assert r.status == "ok" and r.precision == "autocast"
    (r,) = bench_models(["testing"], BenchOptions(batch_sizes=(2,), channels_last=True, img_size=32, **TINY))
    assert r.status == "ok" and r.img_size == 32 and r.channels_last


def test_pct_of_gemm_peak(monkeypatch):
    monkeypatch.setattr(bench, "gemm_peak", lambda device, dtype: GemmPeak("cpu", "fp32", 2, 0.5, ()))
    (r,) = bench_models(["testing"], BenchOptions(batch_sizes=(2,), **{**TINY, "gemm_peak": True}))
    assert r.peak_tflops == 0.5 and r.pct_peak == pytest.approx(100 * r.tflops / 0.5)


class FakeOOM(nn.Module):
    """Runs up to ``limit`` images per batch; above, raises what CUDA raises when memory runs out."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.scale = nn.Parameter(torch.ones(1))
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {x.shape[0]} GiB")
        return x.mean(dim=(1, 2, 3)) * self.scale


def test_oom_is_recorded_and_the_run_goes_on(monkeypatch):
    freed = []
    monkeypatch.setattr(bench, "free_memory", lambda device: freed.append(device))
    results = benchmark_model(FakeOOM(4), BenchOptions(batch_sizes=(2, 8, 4), **TINY), name="fake", img_size=8)
    assert [(r.batch_size, r.status) for r in results] == [(2, "ok"), (8, "oom"), (4, "ok")]
    assert "out of memory" in results[1].error and results[1].img_per_s is None
    assert len(freed) == 1


def test_auto_batch_backs_off_to_the_largest_that_fits(monkeypatch):
    monkeypatch.setattr(bench, "free_memory", lambda device: None)
    model = FakeOOM(6)
    (r,) = benchmark_model(model, BenchOptions(batch_sizes="auto", max_batch=64, **TINY), name="fake", img_size=8)
    assert (r.batch_size, r.status) == (6, "ok")
    assert "7" in r.note and "8" in r.note
    (r,) = benchmark_model(FakeOOM(0), BenchOptions(batch_sizes="auto", **TINY), name="fake", img_size=8)
    assert r.status == "oom"


class OOMWhenWarm(FakeOOM):
    """Every probe fits; the longer timed run at more than ``limit`` images runs out of memory."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.shape[0])
        if x.shape[0] > self.limit and self.seen.count(x.shape[0]) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (fragmentation)")
        return x.mean(dim=(1, 2, 3)) * self.scale


def test_auto_batch_backs_off_when_the_timed_run_does_not_fit(monkeypatch):
    monkeypatch.setattr(bench, "free_memory", lambda device: None)
    opts = BenchOptions(batch_sizes="auto", max_batch=8, **TINY)
    results = benchmark_model(OOMWhenWarm(4), opts, name="fake", img_size=8, macs_per_image=0)
    assert [(r.batch_size, r.status) for r in results] == [(8, "oom"), (4, "ok")]
    assert "backed off from 8" in results[-1].note


@pytest.mark.parametrize(("limit", "max_batch", "expected"), [(6, 64, 6), (1, 64, 1), (0, 8, None), (100, 64, 64),
                                                              (100, 48, 48), (33, 48, 33)])  # fmt: skip
def test_batch_search(limit, max_batch, expected):
    tried = []
    assert peak.search_batch(lambda b: tried.append(b) or b <= limit, max_batch) == expected
    assert max(tried) <= max_batch


class Broken(nn.Module):
    def forward(self, x):
        raise ValueError("shapes do not match")


def test_a_failing_model_gives_an_error_result_and_the_others_still_run(monkeypatch):
    real_build = bench._build

    def build(name, options):
        if name == "vit-ti16":
            return Broken(), 224, 1
        if name == "vit-s16":
            raise RuntimeError("checkpoint download failed")
        return real_build(name, options)

    monkeypatch.setattr(bench, "_build", build)
    results = bench_models(["vit-ti16", "vit-s16", "testing"], BenchOptions(batch_sizes=(1, 2), **TINY))
    assert [(r.model, r.status) for r in results] == [
        ("vit-ti16", "error"),
        ("vit-s16", "error"),
        ("testing", "ok"),
        ("testing", "ok"),
    ]
    assert "shapes do not match" in results[0].error and "download failed" in results[1].error


def test_user_mistakes_raise_before_anything_runs():
    with pytest.raises(VitzooError, match="unknown model"):
        bench_models(["testing", "vit-b17"], BenchOptions(**TINY))
    with pytest.raises(ConfigError, match="dtype"):
        BenchOptions(dtype="int8")
    with pytest.raises(ConfigError, match="batch sizes"):
        BenchOptions(batch_sizes=(0,))
    with pytest.raises(ConfigError, match="iters"):
        BenchOptions(iters=0)
    for bad in ("", "1,,2", "-1", "big", "1,0"):
        with pytest.raises(ConfigError):
            parse_batch_sizes(bad)
    assert parse_batch_sizes("16") == (16,) and parse_batch_sizes("1, 8,8,64") == (1, 8, 64)
    assert parse_batch_sizes("AUTO") == "auto"


def test_device_checks(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="cpu, cuda, cuda:N or mps"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="not available"):
        resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="1 GPU"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="mps"):
        resolve_device("mps")


def test_is_oom():
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_oom(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"))
    assert is_oom(MemoryError())
    assert not is_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


class FakeClock:
    now = 0.0


class FakeEvent:
    """Stands in for torch.cuda.Event: records the fake clock, elapsed_time in ms."""

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.t = None

    def record(self) -> None:
        self.t = FakeClock.now

    def elapsed_time(self, end: FakeEvent) -> float:
        assert FakeClock.synced, "elapsed_time before synchronize"
        return (end.t - self.t) * 1e3


def test_cuda_timer_uses_events_and_synchronises_once_per_round(monkeypatch):
    syncs = []
    FakeClock.now, FakeClock.synced = 0.0, False

    def synchronize(device=None):
        syncs.append(device)
        FakeClock.synced = True

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    durations = iter([0.010, 0.020, 0.030])

    def work():
        FakeClock.synced = False
        FakeClock.now += next(durations)

    per, total = CudaTimer(torch.device("cuda:0")).time(work, 3)
    assert per == pytest.approx([0.010, 0.020, 0.030]) and total == pytest.approx(0.060)
    assert len(syncs) == 2  # before the first pass and after the last: none in between


def test_cuda_memory_meter(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d=None: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d=None: 3 * 2**20)
    with CudaMemoryMeter(torch.device("cuda")) as meter:
        pass
    assert calls == ["sync", "reset"] and meter.peak_bytes == 3 * 2**20


def test_gemm_peak_measures_each_kernel():
    result = measure_gemm_peak("cpu", torch.float32, shapes=[(64, 32, 48)], seconds=0.01)
    kernels = {r[0] for r in result.results}
    assert "aten" in kernels and result.tflops == max(r[-1] for r in result.results) > 0
    assert result.as_dict()["results"][0]["M"] == 64


def test_percentile_matches_numpy():
    values = list(np.random.default_rng(0).random(37))
    for q in (0, 50, 90, 99, 100):
        assert peak.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_cli_bench_flops_results_round_trip(tmp_path, monkeypatch):
    db = str(tmp_path / "r.sqlite")
    monkeypatch.setattr(peak, "measure_gemm_peak", lambda *a, **k: GemmPeak("cpu", "fp32", 2, 0.25, ()))
    peak._cached_peak.cache_clear()  # measured once per process: forget any real measurement
    runner = CliRunner()
    args = ["bench", "testing", "-b", "1,2", "--warmup", "1", "--iters", "2", "--rounds", "1", "--db", db, "--json"]
    out = runner.invoke(main, args)
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert [r["batch_size"] for r in rows] == [1, 2] and rows[0]["env_torch"] == torch.__version__
    assert rows[0]["peak_tflops"] == 0.25
    out = runner.invoke(main, ["flops", "vit-b16", "testing", "--db", db, "--csv"])
    assert out.exit_code == 0 and "17.563828224" in out.stdout
    df = ResultStore(db).query()
    assert df["kind"].tolist() == ["bench", "bench", "flops", "flops"]
    out = runner.invoke(main, ["results", "--db", db, "--kind", "bench", "--json"])
    assert [r["batch_size"] for r in json.loads(out.stdout)] == [1, 2]
    out = runner.invoke(main, ["results", "--db", db])
    assert out.exit_code == 0 and "img/s" in out.stdout and "GMACs" in out.stdout
    out = runner.invoke(main, ["bench", "--peak", "--dtype", "bf16", "--db", db, "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout)["peak_tflops"] == 0.25
    assert ResultStore(db).query(model="gemm-peak")["peak_tflops"].tolist() == [0.25]
    peak._cached_peak.cache_clear()


def test_cli_user_errors_are_one_line(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("my notes\n")
    runner = CliRunner()
    for args in (
        ["bench", "testing", "--db", str(bad)],
        ["results", "--db", str(bad)],
        ["bench", "vit-b17", "--no-store"],
        ["bench", "testing", "--device", "cuda", "--no-store"],
        ["bench", "testing", "-b", "1,x", "--no-store"],
        ["bench", "--no-store"],
    ):
        out = runner.invoke(main, args)
        assert out.exit_code == 1, (args, out.output)
        assert out.stderr.strip().startswith("error:") and len(out.stderr.strip().splitlines()) == 1
        assert "Traceback" not in out.output
    assert bad.read_text() == "my notes\n"


# -- the fast paths keep the numerics ------------------------------------------------------------------------


def test_fused_kernels_are_off_by_default_and_close_when_on():
    from vitzoo.models.layers import set_fused_kernels

    model = vitzoo.create("testing", num_classes=0).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.enable_grad():
        reference = model(x)  # the aten path (gradients needed)
    with torch.inference_mode():
        assert torch.equal(model(x), reference)  # default: bit for bit what aten computes
        fused = set_fused_kernels(model, True)(x)
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-5)
    with torch.enable_grad():
        assert torch.equal(model(x), reference)  # with gradients, the fused path is never taken
        assert model(x).requires_grad
    with torch.inference_mode():
        bf16 = model.to(torch.bfloat16)(x.bfloat16()).float()
    torch.testing.assert_close(bf16, reference, rtol=0.1, atol=0.1)


def test_stdconv_kernel_cache_is_exact_and_invalidated():
    model = vitzoo.create("bit-r50x1", img_size=32, num_classes=0).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.enable_grad():
        reference = model(x)
    with torch.inference_mode():
        assert torch.equal(model(x), reference) and torch.equal(model(x), reference)  # cached: same bits
    assert not any("cached" in k for k in model.state_dict())
    with torch.no_grad():
        model.stem.conv.weight.mul_(2.0)  # an in-place update bumps the version: the cache must follow
    with torch.enable_grad():
        changed = model(x)
    with torch.inference_mode():
        assert torch.equal(model(x), changed)
    other = vitzoo.create("bit-r50x1", img_size=32, num_classes=0).eval()
    with torch.inference_mode():
        other(x)
    other.load_state_dict(model.state_dict())
    with torch.inference_mode():
        assert torch.equal(other(x), changed)
