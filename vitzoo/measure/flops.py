"""Compute per image, counted two ways that must agree: ``FlopCounterMode`` on the model, and the closed form.

Convention (as ``vitzoo.zoo.analytic``): MACs count every conv and dense layer and the two attention matmuls
(Q K^T and A V); norms, activations, softmax and additions are not counted. GFLOPs = 2 x GMACs.

``FlopCounterMode`` has formulas for the CUDA SDPA kernels but none for the CPU one
(``aten._scaled_dot_product_flash_attention_for_cpu``), so on real CPU tensors it silently drops the attention
matmuls; ``EXTRA_FORMULAS`` adds the missing kernels, and ``counted_macs`` always passes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from vitzoo.measure.results import FlopCount
from vitzoo.models import build_model
from vitzoo.weights.names import source_config
from vitzoo.zoo.analytic import count_macs, count_params
from vitzoo.zoo.configs import ModelConfig
from vitzoo.zoo.lookup import check_memory

__all__ = ["EXTRA_FORMULAS", "FlopCount", "count_flops", "counted_macs", "counted_train_macs"]


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of one SDPA call: 2 x (Q K^T + A V) MACs, as torch's formula for the CUDA kernels."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_kernels() -> list[Any]:
    names = [
        "_scaled_dot_product_flash_attention_for_cpu",  # CPU fused kernel (fp32 / bf16 / fp16)
        "_scaled_dot_product_fused_attention_overrideable",  # out-of-tree backends (XPU, ...)
    ]
    return [getattr(torch.ops.aten, n) for n in names if hasattr(torch.ops.aten, n)]


def _linear_flops(x_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of oneDNN's linear, as called by vitzoo's fused CPU kernels: 2 x rows x K x N.

    Two overloads share the packet: ``(x, W, b, attr, ...)`` and ``binary`` ``(x, other, W, b, attr)``.
    """
    w_shape = args[0] if isinstance(args[2], str) else args[1]
    rows = 1
    for d in x_shape[:-1]:
        rows *= d
    return 2 * rows * w_shape[1] * w_shape[0]


def _extra_formulas() -> dict[Any, Callable[..., int]]:
    formulas: dict[Any, Callable[..., int]] = {op: _sdpa_flops for op in _sdpa_kernels()}
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        formulas[torch.ops.mkldnn._linear_pointwise] = _linear_flops
    return formulas


# Kernel -> FLOP formula, for the kernels torch's counter does not know: the CPU SDPA kernel, and the oneDNN
# linear that vitzoo's fused CPU kernels (``vitzoo.measure.fused.set_fused_kernels``) call.
EXTRA_FORMULAS: dict[Any, Callable[..., int]] = _extra_formulas()


def counted_macs(model: nn.Module, inputs: torch.Tensor) -> tuple[int, dict[str, int]]:
    """MACs of ``model(inputs)`` for the whole batch, and per aten op, from ``FlopCounterMode``.

    Works on the meta device (no memory, no compute: SDPA decomposes into counted matmuls there) and on real
    tensors (the CPU SDPA kernel is counted through ``EXTRA_FORMULAS``).
    """
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)
    with counter, torch.inference_mode():
        model(inputs)
    by_op = {
        str(op).removeprefix("aten."): flops // 2 for op, flops in counter.get_flop_counts().get("Global", {}).items()
    }
    return counter.get_total_flops() // 2, by_op


def counted_train_macs(config: ModelConfig) -> int:
    """MACs per image of one training pass of the network ``config`` describes: the forward pass and the backward
    pass (gradients of every weight and of every activation but the input image), counted by ``FlopCounterMode`` on
    the meta device (no memory, no compute). Losses and optimizer updates are elementwise: not counted."""
    with torch.device("meta"):
        model = build_model(config)
        x = torch.empty(1, 3, config.img_size, config.img_size)
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)
    with counter:
        model(x).float().square().sum().backward()
    return counter.get_total_flops() // 2


def count_flops(name: str, *, img_size: int | None = None, device: str | torch.device = "meta") -> FlopCount:
    """Count the per-image compute of a registered model (``arch`` or ``arch.tag``) or of a weight file's
    architecture, at its or another size.

    ``device="meta"`` (default) builds the model without memory and counts in milliseconds, even for ViT-H/14;
    ``device="cpu"`` runs a real forward pass of one random image.
    """
    label, config = source_config(name, img_size=img_size)
    device = torch.device(device)
    if device.type == "cpu":  # a real forward of one image: its weights and activations must fit
        check_memory(config, label, batch=1)
    with torch.device(device):
        model = build_model(config).eval()
        x = torch.empty(1, 3, config.img_size, config.img_size).normal_() if device.type != "meta" else None
        if x is None:
            x = torch.empty(1, 3, config.img_size, config.img_size)
    macs, by_op = counted_macs(model, x)
    return FlopCount(
        model=label,
        img_size=config.img_size,
        params=count_params(config),
        macs=macs,
        macs_closed_form=count_macs(config),
        by_op=by_op,
    )
