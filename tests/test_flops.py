"""FLOP counts: FlopCounterMode (meta and real CPU tensors) equals the closed form for every family."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import vitzoo
from vitzoo.measure.flops import count_flops, counted_macs
from vitzoo.models import build_model
from vitzoo.zoo.analytic import count_macs
from vitzoo.zoo.catalog import REGISTRY as _REGISTRY
from vitzoo.zoo.configs import ViTConfig

ALL_NAMES = [s.name for s in _REGISTRY]  # the listed models and the hidden `testing` fixture


@pytest.mark.parametrize("name", ALL_NAMES)
def test_counted_equals_closed_form_for_every_registered_model(name):
    fc = count_flops(name)  # meta device: no memory, SDPA decomposes into counted matmuls
    assert fc.macs == fc.macs_closed_form > 0
    assert fc.gflops == pytest.approx(2 * fc.gmacs)
    # counted by torch's own formulas alone (a plain FlopCounterMode gives the same): no EXTRA_FORMULAS kernel ran
    assert not any("scaled_dot_product" in op or "mkldnn" in op for op in fc.by_op), fc.by_op


# A real forward pass on CPU tensors, one small input per family (and per ViT pooling variant).
REAL_CPU_CASES = [
    ("testing", None),
    ("vit-ti16", 64),
    ("vit-s32", 96),
    ("vit-r-ti16", 64),  # hybrid, root only
    ("vit-r26-s32", 64),  # hybrid with stages
    ("bit-r50x1", 64),
]


@pytest.mark.parametrize(("name", "img_size"), REAL_CPU_CASES)
def test_counted_on_cpu_tensors_equals_closed_form(name, img_size):
    fc = count_flops(name, img_size=img_size, device="cpu")
    assert fc.macs == fc.macs_closed_form
    if not name.startswith("bit"):
        assert any("scaled_dot_product" in op for op in fc.by_op), fc.by_op  # the CPU SDPA kernel ran


def test_gap_classifier_and_pre_logits_counted_on_cpu():
    config = ViTConfig(patch_size=8, width=32, depth=2, num_heads=4, mlp_dim=64, img_size=32, classifier="gap",
                       representation_size=24, num_classes=7)  # fmt: skip
    model = build_model(config).eval()
    macs, _ = counted_macs(model, torch.randn(3, 3, 32, 32))
    assert macs == 3 * count_macs(config)


def test_plain_flop_counter_drops_cpu_attention_and_ours_does_not():
    """The pitfall this module exists for: torch has no formula for the CPU SDPA kernel."""
    model = vitzoo.create("testing").eval()
    x = torch.randn(2, 3, 224, 224)
    plain = FlopCounterMode(display=False)
    with plain, torch.inference_mode():
        model(x)
    ours, by_op = counted_macs(model, x)
    attention = 2 * 2 * model.config.seq_len**2 * model.config.width * model.config.depth  # batch 2, QK^T + AV
    assert ours == 2 * count_macs(model.config)
    assert plain.get_total_flops() // 2 == ours - attention
    assert by_op["_scaled_dot_product_flash_attention_for_cpu"] == attention


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_counted_in_low_precision(dtype):
    model = vitzoo.create("vit-ti16", img_size=32).eval().to(dtype)
    macs, _ = counted_macs(model, torch.randn(1, 3, 32, 32, dtype=dtype))
    assert macs == count_macs(model.config)


def test_counted_at_another_resolution_and_units():
    """The golden 17.56 GMACs and the quadratic growth are closed-form facts (test_analytic.py); here: the counter
    agrees at a size other than the checkpoint's, and FlopCount's units."""
    at224 = count_flops("vit-b16", img_size=224)
    assert at224.agree and f"{at224.gmacs:.2f}" == "17.56" and f"{at224.gflops:.2f}" == "35.13"
    at384 = count_flops("vit-b16", img_size=384)
    assert at384.img_size == 384 and at384.macs == at384.macs_closed_form > at224.macs


def test_flop_count_as_dict_is_labelled():
    d = count_flops("testing").as_dict()
    assert {"gmacs", "gflops", "macs", "macs_closed_form", "agree", "by_op"} <= set(d)
    assert d["agree"] is True and d["model"] == "testing.random-10cls"


def test_fused_cpu_kernels_are_counted():
    from vitzoo.measure.fused import onednn_linear_supports, set_fused_kernels

    if not onednn_linear_supports(torch.float32):
        pytest.skip("no oneDNN fp32 linear in this torch build (mkldnn unavailable): the fused kernels never run")
    model = set_fused_kernels(vitzoo.create("testing").eval())
    macs, by_op = counted_macs(model, torch.randn(2, 3, 224, 224))
    assert macs == 2 * count_macs(model.config) and "mkldnn._linear_pointwise" in by_op


def test_weight_files_are_counted_from_their_own_architecture(tmp_path, monkeypatch):
    from vitzoo.errors import ConfigError
    from vitzoo.weights.checkpoint import save_vitzoo
    from vitzoo.weights.loading import is_path
    from vitzoo.weights.names import check_source

    model = vitzoo.create("testing")
    path = save_vitzoo(tmp_path / "ti.safetensors", model.state_dict(), model.config)
    counted = count_flops(str(path), img_size=64)
    assert counted.model == str(path) and counted.img_size == 64 and counted.agree
    assert counted.macs == count_flops("testing", img_size=64).macs
    (tmp_path / "mymodel").write_bytes(path.read_bytes())  # an existing file without suffix or separator
    (tmp_path / "testing").mkdir()  # a folder that is also a registry name: the registry wins
    monkeypatch.chdir(tmp_path)
    assert is_path("mymodel") and not is_path("testing") and not is_path("vit-b16")
    assert count_flops("mymodel").macs == count_flops("testing").macs
    with pytest.raises(ConfigError, match="is a directory"):
        check_source(str(tmp_path))
    with pytest.raises(ConfigError, match=r"no such weight file: ti16\.safetensors"):
        check_source("ti16.safetensors")


def test_a_training_pass_counts_forward_and_backward():
    """Backward costs twice the forward (gradients of inputs and of weights) except for the input image, which
    needs none: 3 x forward minus the patch embedding's input-gradient MACs, for the `testing` ViT."""
    from vitzoo.measure.flops import counted_train_macs
    from vitzoo.zoo.lookup import resolve_config

    config = resolve_config("testing")[2]
    patches = (config.img_size // config.patch_size) ** 2
    patch_embedding = patches * 3 * config.patch_size**2 * config.width
    assert counted_train_macs(config) == 3 * count_macs(config) - patch_embedding
    big = resolve_config("vit-b16")[2]
    assert 2.9 < counted_train_macs(big) / count_macs(big) < 3.0  # attention's softmax is not a MAC
