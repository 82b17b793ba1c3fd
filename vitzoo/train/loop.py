"""The fine-tuning loop: ``train(run)`` takes a prepared or resumed ``Run`` to its last step and writes the model.

Each optimizer step runs ``recipe.accum`` micro-batches (``vitzoo.train.batches``), summing the gradients of the
cross-entropy of the whole batch (``accumulate_gradients``), in bf16 autocast when the run's dtype is bf16 (fp32
weights, optimizer and loss); then clips them at global norm ``clip_norm`` and takes an SGD-with-momentum step at the
step's learning rate (``vitzoo.train.schedule``). Under torchrun or ``--nproc`` every rank runs its share of each
batch in ``DistributedDataParallel`` (gloo on CPU), which averages the gradients once per step; the maths is the
single-process one.

With validation data the model is evaluated after every epoch (and after the last step). The resume checkpoint
(``vitzoo.train.state``) is written every ``save_every`` steps or ``save_every_s`` seconds, on Ctrl-C and when a step
fails; the weights and momentum change together in one step that Ctrl-C cannot cut in half, so a resumed run
continues bit for bit. Rank 0 writes; progress goes to a callback, nothing is printed.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from vitzoo.evaluate.accuracy import RunOptions
from vitzoo.evaluate.data import Batch, collate
from vitzoo.parallel.distributed import current
from vitzoo.train.augment import TrainImages
from vitzoo.train.batches import StepSampler
from vitzoo.train.recipe import steps_per_epoch
from vitzoo.train.run import Run
from vitzoo.train.schedule import clip_global_norm, learning_rate, sgd_momentum
from vitzoo.train.state import RunInfo, save_finetuned, save_state, state_path


@dataclass(frozen=True)
class StepReport:
    """After an optimizer step: its mean training loss, learning rate, gradient norm (before clipping), speed."""

    step: int
    total: int
    epoch: int  # 1-based
    loss: float
    lr: float
    grad_norm: float
    img_per_s: float  # this session so far, all ranks
    eta_s: float


@dataclass(frozen=True)
class ValReport:
    """A validation after ``step`` (the end of ``epoch``)."""

    step: int
    epoch: int
    top1: float
    top5: float
    num_images: int


@dataclass(frozen=True)
class SaveReport:
    """The resume checkpoint was written after ``step``."""

    step: int
    path: Path


Report = StepReport | ValReport | SaveReport


@dataclass(frozen=True)
class FineTuneResult:
    """A finished run."""

    out: Path
    info: RunInfo
    steps: int
    resumed_at: int  # the step this session started from (0: a new run)
    loss: float  # of the last step
    history: tuple[dict[str, Any], ...]  # validation after each epoch
    seconds: float  # training time, all sessions
    img_per_s: float  # this session
    skipped: tuple[str, ...]  # unreadable training files (left out of their batches)
    world_size: int


class Interrupted(Exception):
    """Ctrl-C stopped the run after ``step`` steps; its resume checkpoint is ``path``."""

    def __init__(self, step: int, path: Path) -> None:
        super().__init__(f"interrupted after step {step}")
        self.step, self.path = step, path


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for a bf16 run (fp32 weights), nothing for fp32."""
    if dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def accumulate_gradients(
    net: nn.Module, batches: Sequence[Batch], *, scale: float, device: torch.device, dtype: str = "fp32"
) -> tuple[float, int]:
    """Fresh ``.grad``s of ``scale`` x the summed cross-entropy over ``batches`` (one backward per batch; a DDP
    module all-reduces only after the last). Returns (summed cross-entropy, images)."""
    for p in net.parameters():
        p.grad = None
    total, count = 0.0, 0
    for j, batch in enumerate(batches):
        sync = not isinstance(net, nn.parallel.DistributedDataParallel) or j == len(batches) - 1
        with contextlib.nullcontext() if sync else net.no_sync():
            images, labels = batch.images.to(device), batch.labels.to(device)
            with autocast(device, dtype):
                logits = net(images)
            loss = F.cross_entropy(logits.float(), labels, reduction="sum")
            (loss * scale).backward()
        total, count = total + float(loss.detach()), count + len(labels)
    return total, count


@contextlib.contextmanager
def _atomic_update() -> Iterator[None]:
    """Ctrl-C during the block is held back until it ends (the weights and momentum change together)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda *a: received.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def _all_sum(values: list[float], world_size: int) -> list[float]:
    if world_size == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def train(
    run: Run,
    *,
    device: str = "cpu",
    workers: int = 2,
    save_every: int | None = None,
    save_every_s: float = 600.0,
    progress: Callable[[Report], None] | None = None,
) -> FineTuneResult:
    """Fine-tune ``run`` to its last step, then write the model to ``run.out`` and remove the resume checkpoint.

    Raises ``Interrupted`` on Ctrl-C (after writing the resume checkpoint). Under a torch.distributed launch (see
    ``vitzoo.parallel.distributed.process_group``) every rank calls this with the same run.
    """
    report = progress or (lambda r: None)
    info, recipe = run.info, run.info.recipe
    launch = current()
    world, rank = launch.world_size, launch.rank
    recipe.per_rank(world)
    dev = torch.device(device)
    model = run.model.to(dev).train()
    named = [(n, p.requires_grad_(True)) for n, p in model.named_parameters()]
    params = [p for _, p in named]
    momentum = [run.momentum[n].to(dev) if n in run.momentum else torch.zeros_like(p) for n, p in named]
    if run.rng is not None:
        torch.set_rng_state(run.rng)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    per_epoch = steps_per_epoch(info.num_images, recipe.batch_size)
    sampler = StepSampler(run.step + 1, recipe.steps, num_images=info.num_images, batch_size=recipe.batch_size,
                          accum=recipe.accum, seed=recipe.seed, rank=rank, world_size=world)  # fmt: skip
    loader = DataLoader(TrainImages(run.data, info.preprocess, recipe.seed), batch_sampler=sampler,
                        num_workers=workers, collate_fn=collate)  # fmt: skip
    start, first, saved_at, last_save = time.perf_counter(), run.step, run.step, time.perf_counter()
    skipped: dict[int, str] = {}
    loss_mean = float("nan")

    def save() -> None:
        nonlocal saved_at, last_save
        if rank == 0 and run.step > saved_at:
            buffers = dict(zip([n for n, _ in named], momentum, strict=True))
            seconds = run.seconds + time.perf_counter() - start
            path = save_state(state_path(run.out), info, model, buffers, run.step, run.history, seconds)
            report(SaveReport(run.step, path))
        saved_at, last_save = run.step, time.perf_counter()

    batches = iter(loader)
    try:
        done_epoch = run.step > 0 and (run.step % per_epoch == 0 or run.step == recipe.steps)
        if run.val is not None and done_epoch and (not run.history or run.history[-1]["step"] != run.step):
            # stopped during the validation that ends an epoch: do it now, as the uninterrupted run did
            _validate(run, model, run.step, (run.step - 1) // per_epoch + 1, workers, recipe.batch_size // recipe.accum,
                      report)  # fmt: skip
        for step in range(run.step + 1, recipe.steps + 1):
            micro = [next(batches) for _ in range(recipe.accum)]
            for b in micro:
                skipped.update({i: why for i, why in b.failures})
            ce, count = accumulate_gradients(net, micro, scale=world / recipe.batch_size, device=dev,
                                             dtype=recipe.dtype)  # fmt: skip
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            norm = clip_global_norm(grads, recipe.clip_norm)
            lr = learning_rate(step, base=recipe.lr, total=recipe.steps, warmup=recipe.warmup)
            with _atomic_update():
                sgd_momentum(params, grads, momentum, lr, recipe.momentum)
                run.step = step
            ce, count = _all_sum([ce, float(count)], world)
            loss_mean = ce / max(count, 1.0)
            elapsed = time.perf_counter() - start
            done = step - first
            report(StepReport(step, recipe.steps, (step - 1) // per_epoch + 1, loss_mean, lr, norm,
                              done * recipe.batch_size / elapsed, (recipe.steps - step) * elapsed / done))  # fmt: skip
            if run.val is not None and (step % per_epoch == 0 or step == recipe.steps):
                _validate(run, model, step, (step - 1) // per_epoch + 1, workers, recipe.batch_size // recipe.accum,
                          report)  # fmt: skip
            due = (save_every is not None and step % save_every == 0) or time.perf_counter() - last_save >= save_every_s
            if due and step < recipe.steps:
                save()
    except KeyboardInterrupt:
        save()
        raise Interrupted(run.step, state_path(run.out)) from None
    except BaseException:
        save()  # a failed step changed nothing: the run resumes after the last good one
        raise
    seconds = run.seconds + time.perf_counter() - start
    if rank == 0:
        try:
            save_finetuned(run.out, model, info, run.history)
        except BaseException:
            save()  # every step is done: a resumed run only writes the model
            raise
        state_path(run.out).unlink(missing_ok=True)
    done = run.step - first
    return FineTuneResult(run.out, info, run.step, first, loss_mean, tuple(run.history), seconds,
                          done * recipe.batch_size / max(time.perf_counter() - start, 1e-9),
                          tuple(str(run.data.sources[i]) for i in sorted(skipped)), world)  # fmt: skip


def _validate(run: Run, model: nn.Module, step: int, epoch: int, workers: int, batch: int, report: Callable) -> None:
    """Top-1/top-5 on the validation folder (every rank takes part), kept in the run's history."""
    from vitzoo.parallel.sharded import evaluate_sharded

    assert run.val is not None
    model.eval()
    try:
        result = evaluate_sharded(model, run.info.preprocess, run.val, options=RunOptions(batch, workers))
    finally:
        model.train()
    entry = {"step": step, "epoch": epoch, "top1": result.top1, "top5": result.top5, "num_images": result.num_images}
    run.history.append(entry)
    report(ValReport(step, epoch, result.top1, result.top5, result.num_images))
