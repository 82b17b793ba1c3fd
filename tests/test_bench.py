"""The timing harness on the `testing` model (CPU), simulated OOM and CUDA timing, the GEMM roofline, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

import vitzoo
import vitzoo.measure.bench as bench
from vitzoo.cli import main
from vitzoo.errors import ConfigError, VitzooError
from vitzoo.measure import roofline, runner, timing
from vitzoo.measure.bench import BenchOptions, bench_models, benchmark_model, parse_batch_sizes
from vitzoo.measure.device import resolve_device
from vitzoo.measure.fused import onednn_linear_supports, set_fused_kernels
from vitzoo.measure.memory import CudaMemoryMeter, is_oom
from vitzoo.measure.roofline import GemmPeak, measure_gemm_peak
from vitzoo.measure.store import ResultStore
from vitzoo.measure.timing import CudaTimer
from vitzoo.zoo.analytic import count_macs
from vitzoo.zoo.lookup import resolve_config

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
    if onednn_linear_supports(torch.bfloat16):  # AVX-512 / AMX: vitzoo's fused bf16 kernels ran
        assert (r.kernels, r.fused, r.kernels_note) == ("fused", True, None)
    else:  # AVX2: aten, and the result says why
        assert r.kernels == "aten" and not r.fused and "bf16" in r.kernels_note
    (r,) = bench_models(["testing"], BenchOptions(batch_sizes=(2,), dtype="bf16", precision="autocast", **TINY))
    assert r.status == "ok" and r.precision == "autocast" and r.kernels == "aten" and "autocast" in r.kernels_note
    (r,) = bench_models(["testing"], BenchOptions(batch_sizes=(2,), channels_last=True, img_size=32, **TINY))
    assert r.status == "ok" and r.img_size == 32 and r.channels_last


def test_fp16_runs_on_every_cpu():
    (r,) = bench_models(["testing"], BenchOptions(batch_sizes=(1,), dtype="fp16", img_size=32, **TINY))
    assert r.status == "ok" and r.kernels == "aten" and "fp16" in r.kernels_note


def test_results_record_contention():
    (r,) = bench_models(["testing"], BenchOptions(batch_sizes=(1,), img_size=32, **TINY))
    assert isinstance(r.contended, bool) and r.load_start is not None and r.load_end is not None
    assert r.other_cpu is None or r.other_cpu >= 0
    assert {"load_start", "load_end", "other_cpu", "contended", "kernels", "kernels_note"} <= set(r.as_dict())


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
    assert runner.search_batch(lambda b: tried.append(b) or b <= limit, max_batch) == expected
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
        assert timing.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_cli_bench_flops_results_round_trip(tmp_path, monkeypatch):
    db = str(tmp_path / "r.sqlite")
    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path / "cache"))  # the stubbed roofline must not reach a real cache
    monkeypatch.setattr(roofline, "measure_gemm_peak", lambda *a, **k: GemmPeak("cpu", "fp32", 2, 0.25, ()))
    roofline._cached_peak.cache_clear()  # measured once per process: forget any real measurement
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
    roofline._cached_peak.cache_clear()


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


NO_BF16_ONEDNN = "this CPU's oneDNN has no bf16 linear (needs AVX-512 BW/VL, AVX-NE-CONVERT or AMX)"


def test_fused_kernels_are_off_by_default_and_close_when_on():
    if not onednn_linear_supports(torch.float32):
        pytest.skip("no oneDNN fp32 linear in this torch build (mkldnn unavailable)")
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


@pytest.mark.parametrize("epilogue", ["separate", "postop"])
def test_both_gelu_epilogues_compute_the_mlp_of_the_aten_path(epilogue, monkeypatch):
    """The fused fp32 MLP with the GELU as oneDNN's post-op or as its own in-place pass: the same numbers."""
    from vitzoo.measure import fused as layers

    if not onednn_linear_supports(torch.float32):
        pytest.skip("no oneDNN fp32 linear in this torch build (mkldnn unavailable)")
    monkeypatch.setenv("VITZOO_GELU_EPILOGUE", epilogue)
    layers.separate_gelu.cache_clear()
    try:
        assert layers.separate_gelu() == (epilogue == "separate")
        model = vitzoo.create("vit-ti16", img_size=32, num_classes=10).eval()
        x = torch.randn(3, 3, 32, 32)
        with torch.inference_mode():
            reference = model(x)
            fused = set_fused_kernels(model, True)(x)
        torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-5)
    finally:
        layers.separate_gelu.cache_clear()


def test_the_sigmoid_form_of_the_tanh_gelu_is_the_tanh_gelu():
    from vitzoo.measure.fused import gelu_tanh_

    x = torch.cat([torch.linspace(-30, 30, 200_001), torch.randn(10_000, generator=torch.Generator().manual_seed(0))])
    exact = F.gelu(x.double(), approximate="tanh")
    out = x.clone()
    assert gelu_tanh_(out) is out  # in place
    torch.testing.assert_close(out.double(), exact, rtol=2e-7, atol=1e-6)
    assert (out.double() - exact).abs().max() <= 2 * (F.gelu(x, approximate="tanh").double() - exact).abs().max()


def test_the_gelu_epilogue_follows_the_cpu(monkeypatch):
    from vitzoo.measure import fused as layers

    monkeypatch.delenv("VITZOO_GELU_EPILOGUE", raising=False)
    for flags, separate in [({"avx2", "fma"}, True), ({"avx2", "avx512f", "avx512bw"}, False), (None, False)]:
        monkeypatch.setattr(layers, "cpu_flags", lambda flags=flags: None if flags is None else frozenset(flags))
        layers.separate_gelu.cache_clear()
        assert layers.separate_gelu() is separate, flags
    layers.separate_gelu.cache_clear()


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


def test_fused_bf16_matches_aten_bf16():
    if not onednn_linear_supports(torch.bfloat16):
        pytest.skip(NO_BF16_ONEDNN)
    model = vitzoo.create("testing", num_classes=0).eval().to(torch.bfloat16)
    x = torch.randn(2, 3, 224, 224).bfloat16()
    with torch.inference_mode():
        aten = model(x).float()
        fused = set_fused_kernels(model, True)(x).float()
    torch.testing.assert_close(fused, aten, rtol=0.1, atol=0.1)


def test_fused_flag_falls_back_to_aten_where_onednn_lacks_the_dtype(monkeypatch):
    """What an AVX2 CPU does in bf16, simulated for every dtype on any CPU: the fused flag computes aten's result."""
    import vitzoo.measure.cpu
    import vitzoo.measure.fused as layers

    monkeypatch.setattr(layers, "onednn_linear_supports", lambda dtype: False)
    monkeypatch.setattr(vitzoo.measure.cpu, "onednn_linear_supports", lambda dtype: False)
    model = vitzoo.create("testing", num_classes=0).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        reference = model(x)
        assert torch.equal(set_fused_kernels(model, True)(x), reference)
    assert not any("_packed" in m.__dict__ for m in model.modules())  # the oneDNN path was never taken
    fused, why = vitzoo.measure.cpu.fused_kernels(True, device="cpu", dtype="bf16")
    assert not fused and "AVX-512" in why


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"requested": False}, "--aten"),
        ({"device": "cuda"}, "CPU-only"),
        ({"compile": True}, "torch.compile"),
        ({"precision": "autocast", "dtype": "bf16"}, "autocast"),
        ({"dtype": "fp16"}, "fp32 and bf16 only"),
    ],
)
def test_why_the_fused_kernels_do_not_run(kwargs, reason):
    from vitzoo.measure.cpu import fused_kernels

    args = {"requested": True, "device": "cpu", "dtype": "fp32", **kwargs}
    requested = args.pop("requested")
    fused, why = fused_kernels(requested, **args)
    assert not fused and reason in why


@pytest.mark.parametrize(
    ("flags", "onednn", "expected"),
    [
        ({"avx2", "fma"}, False, "emulated on this CPU (no AVX512_BF16/AMX): expect several times slower"),
        ({"avx512f", "avx512bw", "avx512vl"}, True, "no native instructions"),
        ({"avx512f", "avx512bw", "avx512_bf16"}, True, None),
        ({"amx_tile", "amx_bf16"}, True, None),
        ({"fp", "asimd", "bf16"}, False, None),  # Arm with BF16
    ],
)
def test_low_precision_warning_follows_the_isa(monkeypatch, flags, onednn, expected):
    import vitzoo.measure.cpu as cpu

    monkeypatch.setattr(cpu, "onednn_linear_supports", lambda dtype: onednn)
    warning = cpu.low_precision_warning("bf16", "cpu", flags=frozenset(flags))
    assert warning is None if expected is None else expected in warning
    assert cpu.low_precision_warning("fp32", "cpu", flags=frozenset(flags)) is None
    assert cpu.low_precision_warning("bf16", "cuda", flags=frozenset(flags)) is None


def test_this_cpus_flags_are_read():
    from vitzoo.machine import cpu_flags
    from vitzoo.measure.cpu import native_dtype

    flags = cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo on this system: ISA flags unknown")
    assert flags and native_dtype("fp32") is True
    assert native_dtype("bf16") == any(f in flags for f in ("avx512_bf16", "amx_bf16", "bf16"))


HEAP_CHILD = """
import resource
import torch
from vitzoo.machine import current_rss, reuse_freed_memory
print(reuse_freed_memory())
base = current_rss()
for _ in range(12):  # warm passes: 64 MiB written and freed, as a forward pass's activations are
    torch.empty(2**24).fill_(1.0)
print((current_rss() - base) // 2**20)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    torch.empty(2**24).fill_(1.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="reuse_freed_memory sets glibc's malloc: no glibc here")
@pytest.mark.parametrize("heap", ["reuse", "system"])
def test_freed_memory_is_kept_and_reused_unless_told_not_to(heap):
    env = {**os.environ, "VITZOO_HEAP": heap}
    done = subprocess.run([sys.executable, "-c", HEAP_CHILD], env=env, capture_output=True, text=True, check=True)
    applied, kept_mib, faults = done.stdout.split()
    if heap == "reuse":  # freed blocks stay mapped, and warm passes land on them: no page faults
        assert (applied, 60 <= int(kept_mib) <= 64 * 12, int(faults) < 500) == ("True", True, True)
    else:  # glibc unmaps a block that big when it is freed
        assert (applied, int(kept_mib) < 8) == ("False", True)
    assert bench.bench_environment(BenchOptions())["heap"] in ("reuse", "system")


QUERY_CHILD = """
import torch
from vitzoo.machine import current_rss
from vitzoo.measure.bench import BenchOptions, bench_environment, prepare_process
print(bench_environment(BenchOptions())["heap"])
base = current_rss()
for _ in range(4):
    torch.empty(2**24).fill_(1.0)
print((current_rss() - base) // 2**20)
prepare_process(BenchOptions())
print(bench_environment(BenchOptions())["heap"])
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="reuse_freed_memory sets glibc's malloc: no glibc here")
def test_the_environment_query_leaves_the_heap_alone_and_reports_what_the_run_set():
    env = {**os.environ, "VITZOO_HEAP": "reuse"}
    done = subprocess.run([sys.executable, "-c", QUERY_CHILD], env=env, capture_output=True, text=True, check=True)
    before, kept_mib, after = done.stdout.split()
    assert (before, int(kept_mib) < 8, after) == ("system", True, "reuse")  # glibc still unmapped the freed 64 MiB


class FakeClocks:
    """Stands in for ``time`` in vitzoo.measure.cpu: wall and own-CPU clocks the test moves."""

    def __init__(self) -> None:
        self.wall = self.own = 0.0

    def perf_counter(self) -> float:
        return self.wall

    def process_time(self) -> float:
        return self.own


@pytest.mark.parametrize(
    ("threads", "own", "others", "contended"),
    [(2, 2.0, 0.0, False), (2, 2.0, 0.3, False), (2, 1.0, 1.0, True), (8, 8.0, 1.5, False), (8, 6.0, 2.0, True)],
)
def test_contention_is_other_processes_cpu_time(monkeypatch, threads, own, others, contended):
    import vitzoo.measure.cpu as cpu

    clocks = FakeClocks()
    busy = iter([100.0, 100.0 + own + others])
    monkeypatch.setattr(cpu, "time", clocks)
    monkeypatch.setattr(cpu, "busy_seconds", lambda cpus: next(busy))
    monkeypatch.setattr(cpu, "_loadavg", lambda: 1.5)
    with cpu.ContentionMeter(threads) as meter:
        clocks.wall, clocks.own = 1.0, own  # a one-second run
    r = meter.result
    assert r.other_cpu == pytest.approx(others) and r.contended is contended and r.load_start == 1.5


def test_short_runs_fall_back_to_the_load_average(monkeypatch):
    import vitzoo.measure.cpu as cpu

    monkeypatch.setattr(cpu, "_allowed_cpus", lambda: {0, 1})
    assert cpu.is_contended(5.0, 2, load=1.0, seconds=0.01) is False  # 10 ms: /proc/stat ticks cannot tell
    assert cpu.is_contended(None, 2, load=4.0, seconds=3.0) is True  # no /proc/stat: oversubscribed before
    assert cpu.is_contended(None, 2, load=None, seconds=3.0) is False


def test_gemm_peak_says_so_when_no_kernel_runs(monkeypatch):
    def broken(x, w, b):
        raise RuntimeError("could not create a primitive descriptor")

    monkeypatch.setattr(roofline, "_kernels", lambda device: {"aten": broken, "onednn": broken})
    with pytest.raises(ConfigError, match=r"no matmul kernel runs in bf16.*could not create"):
        measure_gemm_peak("cpu", torch.bfloat16, shapes=[(8, 8, 8)], seconds=0.01)


def test_gemm_peak_keeps_the_kernels_that_run():
    result = measure_gemm_peak("cpu", torch.bfloat16, shapes=[(32, 16, 24)], seconds=0.01)
    kernels = {r[0] for r in result.results}
    assert "aten" in kernels and result.tflops > 0
    if onednn_linear_supports(torch.bfloat16):
        assert "onednn" in kernels


def _snapshot(model: nn.Module) -> tuple:
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        [(type(m).__name__, m.training, m.__dict__.get("fused"), "_packed" in m.__dict__) for m in model.modules()],
    )


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_benchmark_model_leaves_the_callers_model_as_it_was(dtype):
    model = vitzoo.create("testing", img_size=32).train()
    state, flags = _snapshot(model)
    (r,) = benchmark_model(model, BenchOptions(batch_sizes=(1,), dtype=dtype, **TINY), name="t", img_size=32)
    assert r.status == "ok"
    after_state, after_flags = _snapshot(model)
    assert after_flags == flags and all(torch.equal(after_state[k], v) for k, v in state.items())
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_auto_batch_stops_growing_when_a_pass_is_too_slow(monkeypatch):
    import time

    monkeypatch.setattr(bench, "free_memory", lambda device: None)

    class Slow(FakeOOM):
        def forward(self, x):
            time.sleep(0.004 * x.shape[0])  # 4 ms per image: batch 8 takes 32 ms
            return super().forward(x)

    model = Slow(1000)
    opts = BenchOptions(batch_sizes="auto", max_batch=1024, auto_max_pass_s=0.025, **TINY)
    (r,) = benchmark_model(model, opts, name="slow", img_size=8, macs_per_image=0)
    assert r.status == "ok" and r.batch_size <= 6 and "too slow" in r.note
    assert max(model.seen) <= 8  # never ran the batches predicted to take longer


def test_seconds_bounds_the_warmup():
    import time

    class Slow(FakeOOM):
        def forward(self, x):
            time.sleep(0.03)
            return super().forward(x)

    model = Slow(10)
    opts = BenchOptions(batch_sizes=(1,), warmup=50, seconds=0.05, rounds=1, gemm_peak=False)
    (r,) = benchmark_model(model, opts, name="slow", img_size=8, macs_per_image=0)
    assert r.status == "ok" and len(model.seen) < 10  # not 50 warm-up passes


def test_iter_bench_yields_each_model_before_building_the_next(monkeypatch):
    built = []
    real_build = bench._build
    monkeypatch.setattr(bench, "_build", lambda name, options: built.append(name) or real_build(name, options))
    results = bench.iter_bench(["testing", "testing.random-10cls"], BenchOptions(batch_sizes=(1,), img_size=32, **TINY))
    first = next(results)
    assert first.model == "testing" and built == ["testing"]
    assert [r.model for r in results] == ["testing.random-10cls"]


def test_weight_files_are_benchmarked_and_checked(tmp_path):
    from vitzoo.weights.checkpoint import save_vitzoo

    model = vitzoo.create("testing")
    path = save_vitzoo(tmp_path / "ti.safetensors", model.state_dict(), model.config)
    (r,) = bench_models([str(path)], BenchOptions(batch_sizes=(1,), img_size=32, **TINY))
    assert r.status == "ok" and r.model == str(path) and r.img_size == 32 and r.params > 0
    assert r.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()  # the file's, as eval records it
    (random,) = bench_models(["testing"], BenchOptions(batch_sizes=(1,), img_size=32, **TINY))
    assert random.weights_sha256 is None  # random weights come from no file
    (tmp_path / "dir.safetensors").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        bench_models([str(tmp_path / "dir.safetensors")], BenchOptions(**TINY))
    with pytest.raises(ConfigError, match="no such weight file"):
        bench_models(["ti16.safetensors"], BenchOptions(**TINY))


def test_a_copy_that_does_not_fit_is_an_oom_result():
    class Huge(FakeOOM):
        def __deepcopy__(self, memo):
            raise MemoryError("no room for a second copy")

    opts = BenchOptions(batch_sizes=(1,), dtype="bf16", **TINY)  # casting the caller's model needs a copy
    (r,) = benchmark_model(Huge(4), opts, name="huge", img_size=8, macs_per_image=0)
    assert (r.status, r.batch_size) == ("oom", 0) and "MemoryError" in r.error


# -- --mode train ----------------------------------------------------------------------------------------------


def test_train_mode_times_whole_training_steps():
    from vitzoo.measure.flops import counted_train_macs

    (r,) = bench_models(["testing"], BenchOptions(batch_sizes=(2,), img_size=32, mode="train", threads=1, **TINY))
    assert r.status == "ok" and r.mode == "train" and not r.grad_checkpointing and r.img_per_s > 0
    assert r.kernels == "aten" and "training" in r.kernels_note and r.memory_mib is not None
    assert r.gflops == pytest.approx(2 * counted_train_macs(resolve_config("testing", img_size=32)[2]) / 1e9)
    assert json.loads(json.dumps(r.as_dict()))["mode"] == "train"


def test_train_mode_on_vit_ti_with_grad_checkpointing_and_bf16_autocast():
    opts = BenchOptions(batch_sizes=(2,), img_size=32, mode="train", grad_checkpointing=True, dtype="bf16",
                        precision="autocast", threads=1, **TINY)  # fmt: skip
    (r,) = bench_models(["vit-ti16"], opts)
    assert r.status == "ok" and r.grad_checkpointing and r.dtype == "bf16" and r.precision == "autocast", r.error
    from vitzoo.zoo.analytic import count_params

    assert r.params == count_params(resolve_config("vit-ti16", img_size=32)[2])


def test_a_training_pass_is_one_clipped_sgd_step(monkeypatch):
    """The runner's pass: cross-entropy, backward, clipping at global norm 1, then torch's SGD with momentum."""
    import copy

    from vitzoo.measure.training import TrainRunner

    torch.manual_seed(0)
    model = vitzoo.create("testing", img_size=32)
    plain = copy.deepcopy(model)
    opts = BenchOptions(batch_sizes=(3,), mode="train", gemm_peak=False)
    run = TrainRunner(model, opts, 32, torch.device("cpu"), 1)
    x = run.inputs(3)
    run.forward(x.clone())
    loss = F.cross_entropy(plain(x), run.labels)
    loss.backward()
    norm = torch.cat([p.grad.flatten() for p in plain.parameters()]).norm()
    scale = min(1.0, 1.0 / (float(norm) + 1e-6))  # torch's clip_grad_norm_: max_norm / (norm + 1e-6)
    for (name, p), q in zip(model.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad * scale, rtol=1e-4, atol=1e-8, msg=name)
        assert run.optimizer.state[p]["momentum_buffer"] is not None
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_train_mode_never_changes_the_callers_model():
    model = vitzoo.create("testing", img_size=32).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    (r,) = benchmark_model(
        model, BenchOptions(batch_sizes=(2,), mode="train", threads=1, **TINY), name="m", img_size=32
    )
    assert r.status == "ok" and not model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "train", "backend": "onnxruntime"}, "only runs inference"),
        ({"mode": "train", "dtype": "bf16"}, "autocast"),
        ({"grad_checkpointing": True}, "only applies to --mode train"),
        ({"mode": "eval"}, "mode must be"),
    ],
)
def test_train_mode_options_are_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BenchOptions(**kwargs)


def test_the_gemm_peak_is_kept_per_environment_and_measured_again_on_request(tmp_path, monkeypatch):
    """The first bench measures the roofline and keeps it in the cache; the next run in the same environment
    reuses it and says so in one line; `bench --peak` measures again and replaces it; another environment (here:
    another torch version) does not see it."""
    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path))
    calls = []

    def fake(device, dtype, **kwargs):
        calls.append(dtype)
        return GemmPeak(str(device), "fp32", torch.get_num_threads(), 0.25 * len(calls), (("aten", 8, 8, 8, 0.1),))

    monkeypatch.setattr(roofline, "measure_gemm_peak", fake)
    roofline._cached_peak.cache_clear()
    first = roofline.gemm_peak("cpu", torch.float32)
    assert (first.tflops, first.measured_at, len(calls)) == (0.25, None, 1)
    roofline._cached_peak.cache_clear()  # a new process
    again = roofline.gemm_peak("cpu", torch.float32)
    assert (again.tflops, len(calls)) == (0.25, 1) and again.measured_at.endswith("UTC")
    assert again.results == (("aten", 8, 8, 8, 0.1),)
    roofline._cached_peak.cache_clear()
    args = ["bench", "testing", "-b", "1", "--warmup", "0", "--iters", "1", "--rounds", "1", "--no-store"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "GEMM peak 0.250 TFLOP/s from the cache (measured" in result.stderr and "bench --peak" in result.stderr
    peak = CliRunner().invoke(main, ["bench", "--peak", "--no-store", "--json"])
    assert peak.exit_code == 0, peak.output
    roofline._cached_peak.cache_clear()
    assert roofline.gemm_peak("cpu", torch.float32).tflops == 0.5 and len(calls) == 2  # replaced, not measured
    monkeypatch.setattr(torch, "__version__", "9.9.9")  # another environment
    roofline._cached_peak.cache_clear()
    assert roofline.gemm_peak("cpu", torch.float32).measured_at is None and len(calls) == 3
    roofline._cached_peak.cache_clear()
