"""Training throughput: one timed pass is a whole training step, as timm's ``benchmark.py --bench train`` times it.

``TrainRunner`` is the ``vitzoo.measure.runner.Runner`` of ``BenchOptions(mode="train")``: the model in training mode
(with ``set_grad_checkpointing`` when asked), fp32 weights with bf16/fp16 autocast when asked, and each pass runs
the forward pass, the cross-entropy against fixed random labels, the backward pass, clipping at global norm 1 and an
SGD-with-momentum update: the step ``vitzoo finetune`` takes (``vitzoo.train``), at learning rate 0 so that a long
timing never drifts into NaNs. Peak memory therefore covers weights, gradients, momentum and activations.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from vitzoo.measure.runner import Runner
from vitzoo.models.layers import set_grad_checkpointing


class TrainRunner(Runner):
    """A model prepared for training-step timing (see the module docstring)."""

    def __init__(self, model: nn.Module, options, img_size: int, device: torch.device, threads: int) -> None:
        set_grad_checkpointing(model.train(), options.grad_checkpointing)
        for p in model.parameters():
            p.requires_grad_(True)
        super().__init__(model, options, img_size, device, threads)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(self.params, lr=0.0, momentum=0.9)
        self.num_classes = int(getattr(getattr(model, "config", None), "num_classes", 0) or 0)
        self.labels: torch.Tensor | None = None

    def context(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def inputs(self, batch: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0)
        self.labels = torch.randint(0, max(self.num_classes, 1), (batch,), generator=gen).to(self.device)
        return super().inputs(batch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One training step on ``x``; returns the loss."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.options.dtype != "fp32":
            with torch.autocast(self.device.type, dtype=self.options.torch_dtype):
                out = self.model(x)
        else:
            out = self.model(x)
        labels = self.labels if self.labels is not None and len(self.labels) == len(x) else None
        if self.num_classes and labels is not None:
            loss = F.cross_entropy(out.float(), labels)
        else:  # a feature extractor: any scalar of its output exercises the same backward
            loss = out.float().square().mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        return loss.detach()
