"""The scripts under benchmarks/, in parts, on the tiny `testing` model: peer_vit.py's engines each give vitzoo's
logits, heap_reuse.py's per-pass probe runs (the scripts themselves time ViT-B/16 for minutes, so only their parts run
here; they break when the APIs they use change)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import vitzoo

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def peer():
    return _script("peer_vit")


@pytest.fixture(scope="module")
def model_and_batch():
    torch.manual_seed(0)
    model = vitzoo.create("testing").eval()
    torch.nn.init.normal_(model.head.weight, std=0.02)
    return model, torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


def test_the_transformers_peer_holds_the_same_weights(peer, model_and_batch):
    pytest.importorskip("transformers")
    model, x = model_and_batch
    with torch.inference_mode():
        torch.testing.assert_close(peer.hf_vit_b16(model)(pixel_values=x).logits, model(x), rtol=1e-5, atol=1e-6)


def test_the_onnx_engines_run_the_exported_graph(peer, model_and_batch):
    for module in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(module)
    model, x = model_and_batch
    engines = peer.onnx_engines(model, threads=1)
    assert peer.ORT in engines
    with torch.inference_mode():
        expected = model(x)
    for name, forward in engines.items():
        torch.testing.assert_close(torch.from_numpy(forward(x.numpy())), expected, rtol=1e-4, atol=1e-5, msg=name)


def test_the_heap_probe_counts_faults_and_rss_per_pass():
    rows = _script("heap_reuse").passes("testing", 2, "reuse", 3)
    assert len(rows) == 3 and all(faults >= 0 and rss > 0 for faults, rss in rows)
