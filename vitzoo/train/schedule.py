"""The optimisation of the paper's fine-tuning, as closed forms: learning rate, clipping, SGD with momentum.

* ``learning_rate``: vit_jax's ``create_learning_rate_schedule`` (``utils.py``) with ``decay_type="cosine"``:
  ``base * 0.5 * (1 + cos(pi * p)) * min(1, step / warmup)`` with ``p = clip((step - warmup) / (total - warmup),
  0, 1)``; steps count from 1, as vit_jax's training loop does.
* ``clip_global_norm``: optax/vit_jax's ``clip_by_global_norm``: every gradient times ``min(1, max_norm / norm)``,
  ``norm`` the L2 norm of all gradients together.
* ``sgd_momentum``: Flax's ``Momentum`` (vit_jax ``momentum_clip``) without weight decay, as torch's SGD:
  ``m = beta * m + g; p = p - lr * m``, the buffers starting at zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def learning_rate(step: int, *, base: float, total: int, warmup: int) -> float:
    """The learning rate of optimizer step ``step`` (1..total)."""
    progress = min(max((step - warmup) / float(total - warmup), 0.0), 1.0)
    lr = base * 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr * min(1.0, step / warmup) if warmup else lr


@torch.no_grad()
def global_norm(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of all ``grads`` together (fp32 or wider)."""
    if not grads:
        return torch.zeros(())
    norms = torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])
    return torch.linalg.vector_norm(norms)


@torch.no_grad()
def clip_global_norm(grads: Sequence[torch.Tensor], max_norm: float) -> float:
    """Scale ``grads`` in place so that their global norm is at most ``max_norm``; returns the norm before."""
    norm = global_norm(grads)
    factor = torch.clamp(max_norm / norm, max=1.0) if float(norm) > 0 else torch.ones(())
    if float(factor) < 1.0:
        for g in grads:
            g.mul_(factor.to(g.dtype))
    return float(norm)


@torch.no_grad()
def sgd_momentum(
    params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], buffers: Sequence[torch.Tensor], lr: float,
    momentum: float,
) -> None:  # fmt: skip
    """One step of SGD with (heavy-ball) momentum, in place: ``m = momentum * m + g``, ``p -= lr * m``."""
    for p, g, m in zip(params, grads, buffers, strict=True):
        m.mul_(momentum).add_(g)
        p.add_(m, alpha=-lr)
