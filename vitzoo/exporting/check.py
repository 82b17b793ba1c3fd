"""How an export is checked: the exported logits against vitzoo's, and, for a model whose head is all zeros, the
same check on a seeded probe head and a proof that the file written differs from the checked one in the head only.

A zero head (``vitzoo.create``, the 2020 ImageNet-21k files) makes every logit its bias, whatever the rest of the
network computes: a wrong body would pass the logit check with a difference of 0. So the export is first written
and checked with the head re-drawn (normal, std ``PROBE_STD``, from a ``torch.Generator`` seeded ``PROBE_SEED``;
the global RNG is not touched), at the normal tolerance; then the model is written with its own zero head, and the
two artifacts are compared: every tensor equal, by name, except those holding the head (the drawn values in the
probe's, zeros in the written one's), and everything else (ONNX nodes, inputs, outputs and metadata; safetensors
metadata; transformers' JSON files) identical. The logits checked therefore varied, and the file kept computes
what was checked up to the head.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitzoo.exporting._common import Exported, ExportError, move_export, staging

CHECK_BATCH = 3  # the check runs a batch size other than the traced one (2), so the dynamic axis is exercised
PROBE_SEED = 0
PROBE_STD = 0.02  # the probe head's weights: normal(0, 0.02), as ViT heads are initialised for pre-training
HEAD = "head.weight"  # the head's weight in vitzoo's state dict (ViT, hybrid and BiT)


def relative_difference(got: torch.Tensor, ref: torch.Tensor) -> float:
    """max |got - ref| / max |ref| (0 when both are exactly equal)."""
    if got.numel() != ref.numel():
        raise ExportError(f"the export gives shape {tuple(got.shape)}, vitzoo {tuple(ref.shape)}")
    got, ref = got.double().reshape(ref.shape), ref.double()
    diff = (got - ref).abs().max().item()
    scale = ref.abs().max().item()
    return 0.0 if diff == 0 else diff / max(scale, 1e-30)


def check_logits(
    model: nn.Module,
    run: Callable[[torch.Tensor], torch.Tensor],
    tolerance: float,
    what: str,
    size: tuple[int, int] | None = None,
) -> float:
    """Run the export (``run``, without autograd) and vitzoo on one fixed random batch of ``CHECK_BATCH`` images
    (H x W ``size``, default the model's); the relative logit difference, or an ExportError when it exceeds
    ``tolerance`` (or is NaN)."""
    H, W = size or (model.config.img_size,) * 2
    x = torch.randn(CHECK_BATCH, 3, H, W, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = model(x)
    with torch.no_grad():  # not inference_mode: ``run`` may build modules (timm), whose weights must stay normal
        got = run(x)
    rel = relative_difference(got, ref)
    if not rel <= tolerance:  # also catches NaN
        at = "" if size is None else f" at {H}x{W}"
        raise ExportError(
            f"{what} disagrees with vitzoo{at}: max relative logit difference {rel:.2e} > {tolerance:.0e}"
        )
    return rel


def has_zero_head(model: nn.Module) -> bool:
    """Whether the model has a head whose weight is all zeros (every logit is then its bias)."""
    head = model.state_dict().get(HEAD)
    return head is not None and not bool(head.any())


@contextmanager
def probe_head(model: nn.Module) -> Iterator[torch.Tensor]:
    """The model's head weight re-drawn (normal, std ``PROBE_STD``, seed ``PROBE_SEED``) for the duration; the
    drawn tensor is yielded, and the head's own values are put back after, also on an error. ``model`` must be the
    caller's own copy (``export`` works on one): this avoids a second copy of the weights."""
    weight = model.get_parameter(HEAD)
    kept = weight.detach().clone()
    drawn = torch.randn(weight.shape, generator=torch.Generator().manual_seed(PROBE_SEED), dtype=weight.dtype)
    drawn = (drawn * PROBE_STD).to(weight.device)
    with torch.no_grad():
        weight.copy_(drawn)
    try:
        yield drawn
    finally:
        with torch.no_grad():
            weight.copy_(kept)


def export_with_probe_head(write: Callable[[nn.Module, Path], Exported], model: nn.Module, out: Path) -> Exported:
    """``write(model, path)`` (one format's staged, checked export) for a model whose head is all zeros: the check
    on a seeded probe head, the model written with its zero head, the two proven to differ in the head only, then
    moved to ``out``. Nothing reaches ``out`` unless all of it passed. The result is the written export's, with the
    probe check's difference and ``checked_with`` saying how it was checked."""
    with staging(out) as tmp:
        probe_at, real_at = tmp / "probe" / out.name, tmp / "written" / out.name
        with probe_head(model) as drawn:
            probe = _write(write, model, probe_at, out, " (checked with a seeded probe head: the model's is all zeros)")
        written = _write(write, model, real_at, out, "")
        same_but_head(probe_at, real_at, probe.format, drawn, out)
        move_export(real_at, out, written.files)
    how = f"{probe.checked_with} with a seeded probe head, the head's zeros written after (all else proven identical)"
    return replace(written, path=out, checked_with=how, max_rel_diff=probe.max_rel_diff)


def _write(write: Callable[[nn.Module, Path], Exported], model: nn.Module, at: Path, out: Path, note: str) -> Exported:
    """One staged export at ``at``; its errors name ``out``, the path the user gave."""
    try:
        return write(model, at)
    except ExportError as e:
        raise ExportError(str(e).replace(str(at), str(out)) + note) from None


def same_but_head(probe: Path, written: Path, format: str, drawn: torch.Tensor, out: Path) -> None:
    """Prove that the export at ``written`` (the zero head) differs from the checked one at ``probe`` (the ``drawn``
    head) in the head only: the same tensor names; each tensor equal, or the drawn head in the probe (in any layout:
    reshaped or transposed) and zeros of the same shape in the written one; the same everything else. An
    ExportError otherwise."""
    refused = f"{out}: the export with the model's all-zero head differs from the checked probe-head export beyond"
    with _contents(probe, format) as (names, tensor_p, rest_p), _contents(written, format) as (other, tensor_w, rest_w):
        if rest_p != rest_w:
            raise ExportError(f"{refused} the head (in its {_what_else(format)}); nothing was written")
        if names != other:
            raise ExportError(f"{refused} the head (tensors {sorted(names ^ other)[:3]} in one only); nothing was "
                              "written")  # fmt: skip
        heads = 0
        for name in sorted(names):
            a, b = tensor_p(name), tensor_w(name)
            if a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b):
                continue
            if not (_holds(a, drawn) and a.shape == b.shape and a.dtype == b.dtype and not bool(b.any())):
                raise ExportError(f"{refused} the head (in tensor {name}); nothing was written")
            heads += 1
        if not heads:
            raise ExportError(f"{out}: no tensor of the checked probe-head export holds the drawn head, so the export "
                              "cannot be proven equal to it but for the head; nothing was written")  # fmt: skip


def _holds(tensor: torch.Tensor, head: torch.Tensor) -> bool:
    """Whether ``tensor`` is the head weight, reshaped (a 1x1 convolution) or transposed (a MatMul operand)."""
    if tensor.numel() != head.numel():
        return False
    tensor, head = tensor.to(head.dtype), head.reshape(head.shape[0], -1)
    return torch.equal(tensor.reshape(head.shape), head) or (tensor.ndim == 2 and torch.equal(tensor.T, head))


def _what_else(format: str) -> str:
    return {"onnx": "graph nodes, inputs, outputs or metadata", "transformers": "config or metadata files"}.get(
        format, "metadata"
    )


@contextmanager
def _contents(path: Path, format: str) -> Iterator[tuple[set[str], Callable[[str], torch.Tensor], Any]]:
    """An export's tensor names, a reader of one tensor by name, and everything else as one comparable value."""
    if format == "onnx":
        import onnx
        from onnx import numpy_helper

        proto = onnx.load(str(path))  # with its external data, if any
        initializers = {i.name: i for i in proto.graph.initializer}
        del proto.graph.initializer[:]
        yield (set(initializers), lambda name: torch.from_numpy(numpy_helper.to_array(initializers[name]).copy()),
               proto.SerializeToString(deterministic=True))  # fmt: skip
        return
    from safetensors import safe_open

    file = path / "model.safetensors" if format == "transformers" else path
    others = {} if file == path else {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p != file}
    with safe_open(str(file), "pt") as f:  # one tensor at a time: no second copy of the weights
        yield set(f.keys()), f.get_tensor, (f.metadata(), others)
