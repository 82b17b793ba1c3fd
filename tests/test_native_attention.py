"""vitzoo's native attention kernel: as accurate as SDPA against float64, used where it is preferred, built once and
cached, refusing what it cannot read, and saying why where it does not run."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from vitzoo.measure import native_attention
from vitzoo.measure.bench import BenchOptions, benchmark_model
from vitzoo.measure.fused import attention_kernel, onednn_linear_supports, set_fused_kernels
from vitzoo.models.vit import VisionTransformer
from vitzoo.zoo.configs import ViTConfig


def _runs(dtype: torch.dtype) -> pytest.MarkDecorator:
    why = native_attention.unavailable_reason() or f"this CPU keeps PyTorch's {dtype} attention (AMX or no AVX512-BF16)"
    return pytest.mark.skipif(not native_attention.runs(dtype), reason=f"no native attention here: {why}")


FP32, BF16 = _runs(torch.float32), _runs(torch.bfloat16)
DTYPES = [pytest.param(torch.float32, marks=FP32), pytest.param(torch.bfloat16, marks=BF16)]


def _split(qkv: torch.Tensor, heads: int) -> tuple[torch.Tensor, ...]:
    B, N, _ = qkv.shape
    return qkv.view(B, N, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)  # as Attention.forward splits it


def _merge(out: torch.Tensor) -> torch.Tensor:
    B, H, N, hd = out.shape
    return out.transpose(1, 2).reshape(B, N, H * hd)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("B", "N", "H"), [(1, 1, 1), (2, 17, 3), (3, 197, 2), (1, 577, 1), (2, 50, 12)])
def test_the_kernel_is_as_close_to_float64_as_sdpa(dtype, B, N, H):
    """Every row count: one token, fewer than a 16-lane vector, a partial row block, ViT-B/16 at 224 and 384."""
    gen = torch.Generator().manual_seed(N)
    qkv = (2 * torch.randn(B, N, 3 * H * 64, generator=gen)).to(dtype)  # scores up to ~30: a peaked softmax
    q, k, v = (t.double() for t in _split(qkv, H))
    exact = _merge(torch.softmax(q @ k.transpose(-1, -2) / 8, dim=-1) @ v)  # an independent float64 computation
    with torch.inference_mode():
        ours, sdpa = native_attention.attention(qkv, H), _merge(F.scaled_dot_product_attention(*_split(qkv, H)))
    assert ours.dtype == dtype and ours.shape == (B, N, H * 64) and ours.is_contiguous()
    error, sdpa_error = ((t.double() - exact).abs().max().item() for t in (ours, sdpa))
    slack = 1e-6 if dtype == torch.float32 else 2**-8 * exact.abs().max().item()  # bf16: one rounding of the output
    assert error <= 2 * sdpa_error + slack


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_fused_vit_with_64_wide_heads_attends_natively_and_stays_close_to_float64(dtype, monkeypatch):
    if not onednn_linear_supports(dtype):
        pytest.skip(f"no oneDNN {dtype} linear here: the fused kernels do not run")
    model = VisionTransformer(ViTConfig(8, 128, 2, 2, 256, img_size=32, num_classes=10)).eval()  # head width 64
    torch.nn.init.normal_(model.head.weight, std=0.02)
    x = torch.randn(3, 3, 32, 32)
    fused = set_fused_kernels(copy.deepcopy(model).to(dtype))
    with torch.inference_mode(), torch.profiler.profile() as prof:
        out = fused(x.to(dtype)).double()
    assert not {e.key for e in prof.key_averages()} & {"aten::scaled_dot_product_attention", "aten::bmm"}
    with torch.inference_mode():
        exact, reference = model.double()(x.double()), model.to(dtype)(x.to(dtype)).double()
        monkeypatch.setenv("VITZOO_ATTENTION", "aten")  # PyTorch's attention in the same fused model
        assert attention_kernel(dtype) != "native"
        aten = fused(x.to(dtype)).double()
    assert (out - exact).abs().max() <= 2 * (reference - exact).abs().max() + 1e-6
    assert (aten - exact).abs().max() <= 2 * (reference - exact).abs().max() + 1e-6


def test_other_head_widths_keep_pytorchs_attention():
    assert not native_attention.runs(torch.float32, head_dim=80)  # ViT-H/14
    assert attention_kernel(torch.float32, head_dim=80) == "sdpa"


def test_where_the_kernel_is_preferred():
    avx512 = frozenset({"avx2", "avx512f", "avx512bw", "avx512vl"})
    assert native_attention.prefers(torch.float32, avx512) and not native_attention.prefers(torch.bfloat16, avx512)
    assert native_attention.prefers(torch.bfloat16, avx512 | {"avx512_bf16"})
    assert not native_attention.prefers(torch.float32, avx512 | {"avx512_bf16", "amx_tile", "amx_bf16"})  # AMX: SDPA
    assert not native_attention.prefers(torch.float32, frozenset({"avx2", "fma"}))
    assert not native_attention.prefers(torch.float16, avx512 | {"avx512_bf16"})
    assert not native_attention.prefers(torch.float32, None)


@FP32
def test_what_it_cannot_read_is_refused():
    qkv = torch.randn(2, 5, 3 * 64)
    for bad in (qkv[:, :, :64], qkv.transpose(0, 1), qkv.half(), qkv.double()):
        with pytest.raises(ValueError, match="native attention takes"):
            native_attention.attention(bad, 1)
    with pytest.raises(ValueError, match="native attention takes"):
        native_attention.attention(qkv, 2)  # 2 heads of 64 need a width of 384


@FP32
def test_the_build_is_cached_atomically_and_loads_with_torchs_openmp(tmp_path, monkeypatch):
    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path))
    compiler = native_attention._compiler()
    native_attention._load(compiler)
    (built,) = (tmp_path / "kernels").iterdir()  # the library, and no temporary file left
    assert built.name.startswith("native_attention-") and built.suffix == ".so"
    stamp = built.stat().st_mtime_ns
    native_attention._load(compiler)
    assert list((tmp_path / "kernels").iterdir()) == [built] and built.stat().st_mtime_ns == stamp  # reused
    maps = Path("/proc/self/maps").read_text().splitlines()
    runtimes = {line.split()[-1] for line in maps if "libgomp" in line or "libiomp" in line}
    assert len(runtimes) == 1, runtimes  # the kernel's OpenMP loop runs on torch's own runtime


@FP32
def test_a_cache_that_cannot_be_written_gets_a_build_for_the_process(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr(native_attention, "cache_dir", lambda: tmp_path / "a-file" / "vitzoo")  # no folder there
    lib = native_attention._load(native_attention._compiler())
    qkv, out = torch.randn(1, 3, 3 * 64), torch.empty(1, 3, 64)
    assert lib.vitzoo_attention_f32(qkv.data_ptr(), out.data_ptr(), 1, 3, 1, 1) == 0
    assert torch.allclose(out, native_attention.attention(qkv, 1))


@FP32
def test_it_says_why_it_does_not_run(monkeypatch, tmp_path):
    monkeypatch.setenv("VITZOO_ATTENTION", "aten")
    assert native_attention.unavailable_reason() == "VITZOO_ATTENTION=aten"
    assert not native_attention.runs(torch.float32)
    monkeypatch.delenv("VITZOO_ATTENTION")
    monkeypatch.setenv("VITZOO_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    assert "could not build or load native_attention.c" in native_attention._library.__wrapped__()
    monkeypatch.setenv("CC", "false")  # a compiler that fails
    assert native_attention._library.__wrapped__() == "false could not build native_attention.c: exit status 1"


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_bench_result_says_what_attended(dtype):
    model = VisionTransformer(ViTConfig(8, 128, 1, 2, 256, img_size=32, num_classes=10))
    name = {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
    options = BenchOptions(batch_sizes=(1,), dtype=name, warmup=1, iters=1, rounds=1, gemm_peak=False)
    (fused,) = benchmark_model(model, options, img_size=32)
    (aten,) = benchmark_model(model, dataclasses.replace(options, fused=False), img_size=32)
    assert (fused.status, fused.attention, aten.attention) == ("ok", "native" if fused.fused else "sdpa", "sdpa")


@FP32
def test_the_operator_is_the_kernel_where_it_runs_and_sdpa_elsewhere():
    qkv = torch.randn(2, 9, 3 * 2 * 64)
    with torch.inference_mode():
        assert torch.equal(torch.ops.vitzoo.attention(qkv, 2), native_attention.attention(qkv, 2))
        wide = torch.randn(2, 9, 3 * 2 * 80)  # heads of 80: SDPA
        sdpa = _merge(F.scaled_dot_product_attention(*_split(wide, 2)))
        assert torch.equal(torch.ops.vitzoo.attention(wide, 2), sdpa)
    torch.library.opcheck(torch.ops.vitzoo.attention.default, (qkv, 2))  # the fake kernel agrees with the real one


@FP32
def test_an_int8_graph_calls_the_native_kernel():
    pytest.importorskip("torchao")
    from vitzoo.measure.cpu import native_dtype
    from vitzoo.measure.engines import Cell, build

    model = VisionTransformer(ViTConfig(8, 128, 1, 2, 256, img_size=32, num_classes=10)).eval()
    torch.nn.init.normal_(model.head.weight, std=0.02)
    gen = torch.Generator().manual_seed(0)
    calib, x = torch.randn(4, 3, 32, 32, generator=gen).numpy(), torch.randn(3, 3, 32, 32, generator=gen).numpy()
    mixed = bool(native_dtype("bf16"))
    if not native_attention.runs(torch.bfloat16 if mixed else torch.float32):
        pytest.skip("this CPU keeps PyTorch's bf16 attention: the int8 graph's rest runs in bf16")
    engine = build(Cell("torch", "int8", "pt2e"), model, None, calib, 1, Path("."))
    with torch.profiler.profile() as prof:
        out = engine.run(x)
    assert "vitzoo's native attention" in engine.note
    assert "vitzoo::attention" in {e.key for e in prof.key_averages()}
    with torch.inference_mode():
        reference = model(torch.from_numpy(x)).numpy()
    assert (out.argmax(1) == reference.argmax(1)).all() and abs(out - reference).max() < 0.1
