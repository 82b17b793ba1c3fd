"""What a fine-tuning run does: ``Recipe``, the paper's transfer recipe by default (§3.2, Appendix B.1.1).

SGD with momentum 0.9, no weight decay, cosine decay after a linear warm-up, gradient clipping at global norm 1,
batch 512 (vit_jax accumulates it over 8 micro-batches), learning rate from the paper's grid
{0.001, 0.003, 0.01, 0.03}. The new head starts at zero and the position embedding is resampled to ``img_size``
the original's way (``vitzoo.weights.loading.adapt``). No torch here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from vitzoo.errors import ConfigError

PAPER_LRS = (0.001, 0.003, 0.01, 0.03)
DTYPES = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class Recipe:
    """The hyper-parameters of a run. ``steps`` optimizer steps of ``batch_size`` images each (all ranks and
    micro-batches together: the maths does not depend on ``accum`` or on the number of processes)."""

    steps: int = 500
    lr: float = 0.003
    warmup_steps: int | None = None  # None: vit_jax's 500, at most a tenth of the steps
    batch_size: int = 512
    accum: int = 8  # micro-batches per step (vit_jax's accum_steps)
    momentum: float = 0.9
    clip_norm: float = 1.0
    seed: int = 0
    img_size: int | None = None  # None: the checkpoint's resolution
    dtype: str = "auto"  # auto: bf16 autocast where native (CUDA, CPUs with AVX512_BF16/AMX), else fp32

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "accum"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be a positive integer, not {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, not {self.lr}")
        if self.warmup_steps is not None and not 0 <= self.warmup_steps < self.steps:
            raise ConfigError(f"warmup-steps must be in [0, steps), not {self.warmup_steps} (steps {self.steps})")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), not {self.momentum}")
        if not self.clip_norm > 0:
            raise ConfigError(f"clip norm must be > 0, not {self.clip_norm}")
        if self.batch_size % self.accum:
            raise ConfigError(f"batch size {self.batch_size} does not split into {self.accum} equal micro-batches")
        if self.img_size is not None and self.img_size < 1:
            raise ConfigError(f"img-size must be positive, not {self.img_size}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")

    @property
    def warmup(self) -> int:
        """Warm-up steps: as given, else vit_jax's 500 capped at a tenth of the run."""
        return self.warmup_steps if self.warmup_steps is not None else min(500, self.steps // 10)

    def per_rank(self, world_size: int) -> tuple[int, int]:
        """(images per rank per step, images per micro-batch) with ``world_size`` processes."""
        if self.batch_size % (self.accum * world_size):
            raise ConfigError(f"batch size {self.batch_size} does not split into {self.accum} micro-batches on each "
                              f"of {world_size} processes")  # fmt: skip
        per_rank = self.batch_size // world_size
        return per_rank, per_rank // self.accum

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        return cls(**json.loads(text))


def steps_for_epochs(epochs: int, num_images: int, batch_size: int) -> int:
    """Optimizer steps in ``epochs`` passes over ``num_images`` (the last partial batch of each is dropped)."""
    if epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, not {epochs}")
    return epochs * steps_per_epoch(num_images, batch_size)


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Whole batches in one pass over the training images (vit_jax drops the remainder too)."""
    if num_images < batch_size:
        raise ConfigError(f"the training data has {num_images} images, fewer than one batch of {batch_size}; "
                          "lower --batch-size")  # fmt: skip
    return num_images // batch_size
