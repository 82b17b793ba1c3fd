"""vitzoo.exporting.check: a model whose head is all zeros (every logit its bias) is exported checked on a seeded
probe head, written with its zeros, and proven equal to the checked export but for the head; a body the probe sees
wrong, or a written export that differs beyond the head, is one line and leaves nothing. Each export format that is
installed."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from test_cli_errors import one_line, run

from vitzoo.exporting import ExportError, export
from vitzoo.exporting._common import require
from vitzoo.exporting.check import PROBE_SEED, PROBE_STD, has_zero_head, probe_head
from vitzoo.models import build_model
from vitzoo.weights.checkpoint import read_tensors, save_vitzoo
from vitzoo.zoo.configs import ViTConfig

RTOL = 1e-4
CONFIG = ViTConfig(patch_size=8, width=48, depth=2, num_heads=4, mlp_dim=96, img_size=32, num_classes=5)


def _installed(fmt: str) -> bool:
    try:
        require(fmt)
    except ExportError:
        return False
    return True


def _formats(*fmts: str) -> list:
    outs = {"onnx": "z.onnx", "transformers": "z-hf", "timm": "z.safetensors"}
    skip = {f: pytest.mark.skipif(not _installed(f), reason=f"exporting to {f} is not installed") for f in outs}
    return [pytest.param(f, outs[f], marks=skip[f], id=f) for f in fmts or outs]


def _zero_head_file(folder: Path) -> Path:
    """The small ViT with seeded random weights and an all-zero head (as `vitzoo.create` gives)."""
    torch.manual_seed(0)
    model = build_model(CONFIG)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
        model.head.weight.zero_()
    return save_vitzoo(folder / "zero.safetensors", model.state_dict(), CONFIG)


def _written_head(out: Path, fmt: str) -> torch.Tensor:
    """The head weight as the export holds it."""
    if fmt == "onnx":
        import onnx
        from onnx import numpy_helper

        [head] = [i for i in onnx.load(str(out)).graph.initializer if i.name == "head.weight"]
        return torch.from_numpy(numpy_helper.to_array(head).copy())
    if fmt == "transformers":
        return read_tensors(out / "model.safetensors")[0]["classifier.weight"]
    return read_tensors(out)[0]["head.weight"]


def _broken(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with one weight outside the head (the final LayerNorm's) changed, as a faulty conversion would."""
    with torch.no_grad():
        model.norm.weight.add_(0.5)
    return model


def test_the_probe_head_is_seeded_and_put_back():
    model = build_model(CONFIG)
    with torch.no_grad():
        model.head.weight.zero_()
    state = torch.random.get_rng_state()
    with probe_head(model) as drawn:
        assert torch.equal(model.head.weight, drawn) and not has_zero_head(model)
    assert has_zero_head(model) and torch.equal(torch.random.get_rng_state(), state)  # the global RNG untouched
    expected = torch.randn(5, 48, generator=torch.Generator().manual_seed(PROBE_SEED)) * PROBE_STD
    assert torch.equal(drawn, expected)
    with pytest.raises(RuntimeError), probe_head(model):
        raise RuntimeError  # put back on an error too
    assert has_zero_head(model)


@pytest.mark.parametrize(("fmt", "name"), _formats())
def test_a_zero_head_is_checked_with_a_seeded_probe_head_and_written_with_its_zeros(fmt, name, tmp_path):
    src = _zero_head_file(tmp_path)
    result = run("export", src, tmp_path / name, "--format", fmt, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert "vacuous" not in summary and summary["max_rel_diff"] <= RTOL
    assert "with a seeded probe head, the head's zeros written after" in summary["checked_with"]
    assert "checked with" in result.stderr and "warning" not in result.stderr
    if fmt == "onnx":  # ONNX Runtime computes otherwise than torch: a difference of exactly 0 would be constant logits
        assert summary["max_rel_diff"] > 0
    head = _written_head(tmp_path / name, fmt)
    assert head.shape == (5, 48) and not head.any()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "zero.safetensors"])  # no staging left


@pytest.mark.parametrize(("fmt", "name"), _formats())
def test_a_zero_head_export_with_a_wrong_body_is_caught_by_the_probe(fmt, name, tmp_path, monkeypatch):
    """With the zero head the logits would agree (all bias) however wrong the rest; the probe head makes them vary."""
    import vitzoo.exporting.to_onnx as to_onnx

    if fmt == "onnx":  # the traced copy gets the wrong weight
        deployable = to_onnx.deployable
        monkeypatch.setattr(to_onnx, "deployable", lambda m: _broken(deployable(m)))
    else:  # the written tensors do
        module = __import__(f"vitzoo.exporting.to_{fmt}", fromlist=["standardized_state_dict"])
        state_dict = module.standardized_state_dict
        monkeypatch.setattr(module, "standardized_state_dict", lambda m: state_dict(_broken(copy.deepcopy(m))))
    src = _zero_head_file(tmp_path)
    one_line(run("export", src, tmp_path / name, "--format", fmt), 1, "disagrees with vitzoo", "seeded probe head")
    assert [p.name for p in tmp_path.iterdir()] == ["zero.safetensors"]


@pytest.mark.parametrize(("fmt", "name"), _formats())
def test_a_written_export_that_differs_beyond_the_head_is_refused(fmt, name, tmp_path, monkeypatch):
    """The second export (the zero head) writes another body weight: its own check cannot see it (all bias), the
    proof against the probe export does; nothing is written, and an existing OUT (with --force) is kept."""
    import vitzoo.exporting as exporting

    original, calls = getattr(exporting, f"_export_{fmt}"), []

    def second_is_wrong(model, out, *args):
        calls.append(out)
        return original(_broken(model) if len(calls) == 2 else model, out, *args)

    monkeypatch.setattr(exporting, f"_export_{fmt}", second_is_wrong)
    src, out = _zero_head_file(tmp_path), tmp_path / name
    if fmt == "transformers":
        out.mkdir()
        (out / "old.txt").write_text("previous export")
    else:
        out.write_text("previous export")
    result = run("export", src, out, "--format", fmt, "--force")
    one_line(result, 1, f"{out}: the export with the model's all-zero head differs from the checked probe-head "
             "export beyond the head (in tensor", "nothing was written")  # fmt: skip
    assert [c.parent.parent.parent for c in calls] == [tmp_path] * 2  # both staged beside OUT
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "zero.safetensors"])  # staging removed
    assert (out / "old.txt" if out.is_dir() else out).read_text() == "previous export"


@pytest.mark.parametrize(("fmt", "name"), _formats("onnx"))
def test_an_int8_export_of_a_zero_head_says_its_logits_are_the_bias(fmt, name, tmp_path):
    """int8's check is that ONNX Runtime runs the graph to finite logits; it is not probed (see ``export``)."""
    result = export(_zero_head_file(tmp_path), tmp_path / name, fmt, dtype="int8", int8_method="dynamic")
    assert result.checked_with.endswith("(the head is all zeros: the logits compared are its bias)")
