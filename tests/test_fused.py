"""The fused CPU kernels are a transformation of the reference model: applied, undone, and invisible to its state."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vitzoo
from vitzoo.exporting import deployable
from vitzoo.measure.bench import BenchOptions, benchmark_model
from vitzoo.measure.fused import (
    FusedAttention,
    FusedBlock,
    FusedLinear,
    FusedPatchEmbed,
    bf16_attention_as_gemms,
    fused_kernels_set,
    fused_modules,
    matmul_attention,
    onednn_linear_supports,
    set_fused_kernels,
    unfuse,
)
from vitzoo.models.vit import Block, Mlp, PatchEmbed

ONEDNN = pytest.mark.skipif(not onednn_linear_supports(torch.float32), reason="no oneDNN fp32 linear in this torch")
BF16 = pytest.mark.skipif(not onednn_linear_supports(torch.bfloat16),
                          reason="this CPU's oneDNN has no bf16 linear (it needs AVX-512 BW/VL, AVX-NE-CONVERT or AMX)")


def _block_linears(model: nn.Module) -> list[nn.Module]:
    return [m for b in model.blocks for m in (b.attn.qkv, b.attn.proj, b.mlp.fc1, b.mlp.fc2)]


def test_the_reference_model_holds_plain_linears():
    model = vitzoo.create("testing")
    assert all(type(m) is nn.Linear for m in _block_linears(model))
    assert not fused_modules(model)


@ONEDNN
@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.bfloat16, marks=BF16)])
def test_the_patch_embedding_runs_as_one_gemm_where_it_is_exactly_the_convolution(dtype):
    model = vitzoo.create("testing", img_size=64).eval().to(dtype)  # patch 16
    reference = copy.deepcopy(model.patch_embed)
    fused = set_fused_kernels(model).patch_embed
    assert type(fused) is FusedPatchEmbed
    exact = copy.deepcopy(reference).double()
    for x in (torch.randn(3, 3, 64, 48), torch.randn(2, 3, 70, 64)):  # whole patches; a remainder (the conv's)
        with torch.inference_mode(), torch.profiler.profile() as prof:
            out = fused(x.to(dtype))
        gemm = "aten::mkldnn_convolution" not in {e.key for e in prof.key_averages()}
        assert gemm == (x.shape[-2] % 16 == 0)
        with torch.inference_mode():
            ref, truth = reference(x.to(dtype)).double(), exact(x.to(dtype).double())
        assert out.shape == ref.shape and (out.double() - truth).abs().max() <= 2 * (ref - truth).abs().max() + 1e-6
    with torch.inference_mode():  # channels_last: the convolution, unchanged
        x = torch.randn(2, 3, 64, 64).to(dtype).contiguous(memory_format=torch.channels_last)
        assert torch.equal(fused(x), reference(x))
    hybrid = set_fused_kernels(vitzoo.create("vit-r26-s32", img_size=64).eval())
    assert type(hybrid.patch_embed) is PatchEmbed  # a ResNet's features: the convolution stays


@ONEDNN
def test_a_model_made_under_inference_mode_runs_fused():
    reference = vitzoo.create("testing", num_classes=10).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():  # its parameters are inference tensors: no version counter to key the cache on
        model = set_fused_kernels(copy.deepcopy(reference))
        assert torch.allclose(model(x), reference(x), atol=1e-5)


@ONEDNN
def test_fusing_keeps_the_parameters_and_unfusing_restores_the_reference_bit_for_bit():
    model = vitzoo.create("testing", num_classes=10).eval()
    params = {k: v.data_ptr() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        reference = model(x)
        fused = set_fused_kernels(model)(x)
    assert all(type(m) is FusedLinear for m in _block_linears(model))
    assert all(type(b) is FusedBlock for b in model.blocks)
    assert {k: v.data_ptr() for k, v in model.state_dict().items()} == params  # the same tensors, the same keys
    assert type(model.head) is nn.Linear  # the head is not a block linear
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-5)
    assert any("_packed" in m.__dict__ for m in model.modules())
    unfuse(model)
    assert not fused_modules(model) and not any("_packed" in m.__dict__ for m in model.modules())
    assert all(type(m) is nn.Linear for m in _block_linears(model)) and all(type(b) is Block for b in model.blocks)
    with torch.inference_mode():
        assert torch.equal(model(x), reference)


@ONEDNN
def test_a_fused_model_copies_pickles_and_exports_without_its_caches():
    model = set_fused_kernels(vitzoo.create("testing", num_classes=10).eval())
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        out = model(x)  # builds the blocked weight copies
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert fused_modules(other) and not any("_packed" in m.__dict__ for m in other.modules())
        with torch.inference_mode():
            assert torch.equal(other(x), out)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    assert set(torch.load(io.BytesIO(buf.getvalue()), weights_only=True)) == set(vitzoo.create("testing").state_dict())
    net = deployable(model)  # what ONNX export and the int8 quantizers see: the reference modules
    assert not fused_modules(net) and all(type(m) is nn.Linear for m in _block_linears(net))
    assert fused_modules(model)  # the caller's model is untouched


def test_training_and_grad_checkpointing_take_the_reference_path_bit_for_bit():
    torch.manual_seed(0)
    model = vitzoo.create("testing", num_classes=10).train()
    fused = set_fused_kernels(copy.deepcopy(model)).set_grad_checkpointing()
    x = torch.randn(2, 3, 224, 224)
    y, y_fused = model(x), fused(x)
    assert torch.equal(y, y_fused)
    y.sum().backward()
    y_fused.sum().backward()
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(model.parameters(), fused.parameters(), strict=True))


def test_dynamic_image_size_is_unchanged_by_fusing():
    model = vitzoo.create("testing", num_classes=10, dynamic_img_size=True).eval()
    x = torch.randn(1, 3, 160, 192)
    with torch.enable_grad():  # the aten path inside the fused modules: the reference's exact bits
        reference = model(x)
        assert torch.equal(set_fused_kernels(model)(x), reference)


def test_a_block_with_a_replaced_layer_is_left_alone():
    model = vitzoo.create("testing", num_classes=10).eval()
    model.blocks[0].mlp.fc1 = nn.Sequential(model.blocks[0].mlp.fc1)  # e.g. an adapter
    set_fused_kernels(model)
    assert type(model.blocks[0]) is Block and type(model.blocks[0].mlp) is Mlp
    assert all(type(b) is FusedBlock for b in model.blocks[1:])


def test_the_context_and_the_harness_restore_what_the_caller_had():
    model = vitzoo.create("testing", img_size=32, num_classes=10).eval()
    with fused_kernels_set(model, True):
        assert fused_modules(model)
    assert not fused_modules(model)
    set_fused_kernels(model)
    kinds = [type(m) for m in model.modules()]
    with fused_kernels_set(model, False):
        assert not fused_modules(model)
    assert [type(m) for m in model.modules()] == kinds
    options = BenchOptions(batch_sizes=(1,), warmup=1, iters=1, rounds=1, gemm_peak=False, fused=False)
    (r,) = benchmark_model(model, options, name="t", img_size=32)
    assert r.status == "ok" and not r.fused
    assert [type(m) for m in model.modules()] == kinds  # fused again, as the caller left it


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_as_two_gemms_is_as_close_to_float64_as_sdpa(dtype):
    if dtype == torch.bfloat16 and not onednn_linear_supports(dtype):
        pytest.skip("this CPU's oneDNN has no bf16 (it needs AVX-512 BW/VL, AVX-NE-CONVERT or AMX)")
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 197, 64, generator=gen).to(dtype) for _ in range(3))
    qd, kd, vd = (t.double() for t in (q, k, v))
    exact = torch.softmax(qd @ kd.transpose(-1, -2) / 8, dim=-1) @ vd  # an independent float64 computation
    with torch.inference_mode():
        ours, sdpa = matmul_attention(q, k, v), F.scaled_dot_product_attention(q, k, v)
    assert ours.dtype == dtype and ours.shape == q.shape
    error, sdpa_error = ((t.double() - exact).abs().max().item() for t in (ours, sdpa))
    if dtype == torch.float32:
        assert error <= 2 * sdpa_error + 1e-6
    else:  # scores, probabilities and output rounded to bf16 (unit roundoff u = 2^-9): a first-order error bound
        u, scores = 2**-9, (qd @ kd.transpose(-1, -2) / 8).abs().max().item()
        bound = u * vd.abs().max().item() * (1 + 2 * scores) + u * exact.abs().max().item()
        assert error <= bound


def test_bf16_attention_is_two_gemms_on_avx512_bf16_without_amx_only():
    assert bf16_attention_as_gemms(frozenset({"avx2", "avx512f", "avx512_bf16"}))
    assert not bf16_attention_as_gemms(frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}))
    assert not bf16_attention_as_gemms(frozenset({"avx2", "avx_vnni"}))  # no native bf16: SDPA (and aten) stay
    assert not bf16_attention_as_gemms(frozenset())


@BF16
@pytest.mark.skipif(not bf16_attention_as_gemms(), reason="this CPU keeps SDPA for bf16 attention (AMX, or no "
                    "AVX512-BF16): the two-GEMM form is for AVX512-BF16 without AMX")  # fmt: skip
def test_a_bf16_fused_model_attends_with_two_gemms():
    model = set_fused_kernels(vitzoo.create("testing").eval().bfloat16())
    assert all(type(b.attn) is FusedAttention for b in model.blocks)
    calls = []
    model.blocks[0].attn.register_forward_hook(lambda *_: calls.append(1))
    with torch.inference_mode(), torch.profiler.profile() as prof:
        model(torch.randn(1, 3, 224, 224).bfloat16())
    names = {e.key for e in prof.key_averages()}
    assert calls and "aten::bmm" in names and "aten::_scaled_dot_product_flash_attention_for_cpu" not in names


@BF16
def test_a_bf16_fused_model_is_as_close_to_float64_as_the_reference_in_bf16():
    torch.manual_seed(0)
    model = vitzoo.create("testing", num_classes=10).eval()
    nn.init.normal_(model.head.weight, std=0.02)
    x = torch.randn(2, 3, 224, 224)
    exact_model, reference_model = copy.deepcopy(model).double(), copy.deepcopy(model).bfloat16()
    fused_model = set_fused_kernels(copy.deepcopy(model).bfloat16())
    with torch.inference_mode():
        exact = exact_model(x.double())
        reference, fused = (m(x.bfloat16()).double() for m in (reference_model, fused_model))
    assert (fused - exact).abs().max() <= 2 * (reference - exact).abs().max()
