"""CUDA-only checks: they run wherever a CUDA GPU is visible and skip, saying so, everywhere else."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import CASES, inputs, logits, write_npz

import vitzoo
from vitzoo.measure.bench import BenchOptions, bench_models, benchmark_model
from vitzoo.measure.timing import CudaTimer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to this torch")

# max |logits - fp32 logits| / max |fp32 logits| on the reference photos, per dtype (half-precision rounding of
# 12 residual blocks; the argmax must not change).
LOW_PRECISION_TOLERANCE = {"fp16": 1e-2, "bf16": 5e-2}
FP32_TOLERANCE = {"ti16_opt_10cls_224": 1e-5, "s16_gap_224": 1e-5, "r26_s32_augreg_224": 3e-5}


@pytest.fixture
def no_tf32():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("case", CASES)
def test_reference_logits_on_the_gpu(case, tmp_path, no_tf32):
    model = vitzoo.load(write_npz(case, tmp_path / f"{case}.npz"), device="cuda")
    x = torch.from_numpy(inputs()).cuda()
    with torch.inference_mode():
        got = model(x).float().cpu().numpy()
    ref = logits(case)
    assert np.abs(got - ref).max() / np.abs(ref).max() <= FP32_TOLERANCE[case]
    for dtype, tolerance in LOW_PRECISION_TOLERANCE.items():
        low = vitzoo.load(write_npz(case, tmp_path / f"{case}.npz"), device="cuda", dtype=dtype)
        with torch.inference_mode():
            out = low(x.to(vitzoo.dtypes.to_torch(dtype))).float().cpu().numpy()
        assert np.abs(out - ref).max() / np.abs(ref).max() <= tolerance, dtype
        np.testing.assert_array_equal(out.argmax(1), ref.argmax(1))


def test_cuda_event_timer_agrees_with_the_wall_clock():
    a = torch.randn(2048, 2048, device="cuda")
    per, total = CudaTimer(torch.device("cuda")).time(lambda: a @ a, 20)
    assert len(per) == 20 and all(t > 0 for t in per)
    assert sum(per) <= total * 1.05  # events bracket each pass; the total spans them all


@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_bench_on_cuda_reports_max_allocated_memory(dtype):
    (result,) = bench_models(["vit-s16"], BenchOptions(device="cuda", dtype=dtype, batch_sizes=(8,), iters=3))
    assert result.status == "ok", result.error
    assert result.memory_kind == "cuda_max_allocated"
    weight_bytes = result.params * (4 if dtype == "fp32" else 2)
    assert result.memory_mib * 2**20 >= weight_bytes
    assert result.img_per_s > 0 and result.latency_ms > 0


def test_auto_batch_records_oom_and_backs_off():
    """With the allocator capped at 2 GiB, ViT-B/16 cannot run batch 1024: auto must find a smaller batch."""
    torch.cuda.set_per_process_memory_fraction(2 * 2**30 / torch.cuda.get_device_properties(0).total_memory)
    try:
        model = vitzoo.create("vit-b16")
        options = BenchOptions(device="cuda", dtype="fp16", batch_sizes="auto", max_batch=1024, iters=2, rounds=1)
        results = benchmark_model(model, options, name="vit-b16", img_size=224)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    ok = [r for r in results if r.status == "ok"]
    assert ok and 1 <= ok[-1].batch_size < 1024
    assert "did not fit" in ok[-1].note


def test_compiled_model_matches_eager_on_cuda(no_tf32):
    model = vitzoo.create("testing", img_size=32).cuda().eval()
    x = torch.randn(4, 3, 32, 32, device="cuda")
    with torch.inference_mode():
        eager = model(x)
        compiled = torch.compile(model)(x)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    (result,) = benchmark_model(
        model, BenchOptions(device="cuda", compile=True, batch_sizes=(4,), iters=2), name="testing", img_size=32
    )
    assert result.status == "ok" and result.compile_s is not None and result.compile_s > 0
