"""Which images each optimizer step, rank and micro-batch sees: a seeded shuffle per epoch, whole batches only.

Epoch ``e`` visits the training images in ``epoch_order(n, seed, e)``; step ``s`` (1-based) of that epoch takes the
next ``batch_size`` of them (the remainder of an epoch is dropped, as vit_jax does). With ``W`` processes rank ``r``
takes the ``r``-th ``batch_size / W`` of them, cut into ``accum`` micro-batches. So the images of a step, and how
each is augmented, depend only on the seed and the step: not on ``accum``, the process count, the data-loading
workers, or where a run was resumed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

Key = tuple[int, int]  # (epoch, image index): an item of ``vitzoo.train.augment.TrainImages``


@functools.lru_cache(maxsize=4)
def epoch_order(num_images: int, seed: int, epoch: int) -> tuple[int, ...]:
    """The order in which epoch ``epoch`` visits the images."""
    return tuple(int(i) for i in np.random.default_rng([seed, epoch, 1]).permutation(num_images))


def step_images(step: int, *, num_images: int, batch_size: int, seed: int) -> list[Key]:
    """The ``batch_size`` images of optimizer step ``step`` (1-based), all ranks together."""
    per_epoch = num_images // batch_size
    epoch, pos = divmod(step - 1, per_epoch)
    order = epoch_order(num_images, seed, epoch)
    return [(epoch, i) for i in order[pos * batch_size : (pos + 1) * batch_size]]


def micro_batches(step: int, *, num_images: int, batch_size: int, accum: int, seed: int, rank: int = 0,
                  world_size: int = 1) -> list[list[Key]]:  # fmt: skip
    """The ``accum`` micro-batches rank ``rank`` runs in step ``step``."""
    keys = step_images(step, num_images=num_images, batch_size=batch_size, seed=seed)
    per_rank = batch_size // world_size
    mine = keys[rank * per_rank : (rank + 1) * per_rank]
    size = per_rank // accum
    return [mine[j * size : (j + 1) * size] for j in range(accum)]


class StepSampler(Sampler[list[Key]]):
    """A DataLoader batch sampler: the micro-batches of this rank for steps ``first..last``, in order."""

    def __init__(self, first: int, last: int, *, num_images: int, batch_size: int, accum: int, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:  # fmt: skip
        self.first, self.last = first, last
        self.kw = {"num_images": num_images, "batch_size": batch_size, "accum": accum, "seed": seed, "rank": rank,
                   "world_size": world_size}  # fmt: skip

    def __iter__(self) -> Iterator[list[Key]]:
        for step in range(self.first, self.last + 1):
            yield from micro_batches(step, **self.kw)

    def __len__(self) -> int:
        return (self.last - self.first + 1) * self.kw["accum"]
