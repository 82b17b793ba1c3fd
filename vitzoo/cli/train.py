"""`vitzoo finetune`: fine-tune a checkpoint on an image folder with the paper's transfer recipe, resumable."""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any

import click
from rich.markup import escape

from vitzoo.cli._dist import is_main, scale_out
from vitzoo.cli._output import Command, emit, err_console, format_options, info, render_table, warn
from vitzoo.cli._preflight import at_least, positive_number
from vitzoo.errors import VitzooError

EXIT_INTERRUPTED = 130
LINE_EVERY_S = 5.0  # without a terminal: one progress line at most this often (and the first and last steps)
RECIPE_OPTIONS = ("data", "val", "img_size", "steps", "epochs", "lr", "warmup_steps", "batch_size", "accum", "seed",
                  "dtype", "output")  # fmt: skip


def _eta(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def step_line(r: Any) -> str:
    """One progress line: step, epoch, loss, learning rate, gradient norm, speed, time left."""
    return (f"step {r.step}/{r.total} (epoch {r.epoch}): loss {r.loss:.4f}, lr {r.lr:.5f}, |grad| {r.grad_norm:.3f}, "
            f"{r.img_per_s:,.1f} img/s, ETA {_eta(r.eta_s)}")  # fmt: skip


class Display:
    """Progress of a run on stderr: a rich bar on a terminal, else a line every few seconds; validations and
    saved checkpoints always get their line."""

    def __init__(self, total: int, done: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.terminal = err_console.is_terminal
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=err_console, transient=True, disable=not self.terminal)  # fmt: skip
        self.task = self.bar.add_task("fine-tuning", total=total, completed=done)
        self.last = 0.0

    def __enter__(self) -> Display:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def _print(self, text: str) -> None:
        self.bar.console.print(escape(text), highlight=False, soft_wrap=True)

    def __call__(self, r: Any) -> None:
        from vitzoo.train.loop import SaveReport, StepReport, ValReport

        if isinstance(r, StepReport):
            self.bar.update(self.task, completed=r.step, description=f"loss {r.loss:.4f} lr {r.lr:.5f} "
                            f"{r.img_per_s:,.1f} img/s")  # fmt: skip
            now = time.monotonic()
            if not self.terminal and (now - self.last >= LINE_EVERY_S or r.step == r.total):
                self.last = now
                self._print(step_line(r))
        elif isinstance(r, ValReport):
            self._print(f"epoch {r.epoch} (step {r.step}): validation top-1 {r.top1:.2f}%, top-5 {r.top5:.2f}% "
                        f"({r.num_images} images)")  # fmt: skip
        elif isinstance(r, SaveReport):
            self._print(f"resume checkpoint saved after step {r.step}: {r.path}")


def _resume_conflicts(ctx: click.Context, name: str | None) -> None:
    """--resume takes everything from the interrupted run: refuse a model or recipe option given with it."""
    given = [p for p in RECIPE_OPTIONS if ctx.get_parameter_source(p) is click.core.ParameterSource.COMMANDLINE]
    if name or given:
        what = "NAME" if name else "--" + given[0].replace("_", "-")
        raise VitzooError(f"--resume continues a run with its own checkpoint, data and recipe; leave out {what}")


RESULT_FIELDS = [("model", "fine-tuned from"), ("data", "data"), ("classes", "classes"), ("steps", "steps"),
                 ("resumed_at", "resumed at step"), ("recipe", "recipe"), ("dtype", "precision"),
                 ("world_size", "processes"), ("loss", "last training loss"), ("val_top1", "validation top-1 %"),
                 ("seconds", "training time (s)"), ("img_per_s", "img/s (this session)"),
                 ("out", "written to")]  # fmt: skip


def _result_row(result: Any) -> dict[str, Any]:
    r, info_ = result.info.recipe, result.info
    last = result.history[-1] if result.history else {}
    return {"model": info_.source, "data": info_.data, "classes": len(info_.classes), "steps": result.steps,
            "resumed_at": result.resumed_at or None,
            "recipe": f"SGD momentum {r.momentum}, lr {r.lr:g} (warm-up {r.warmup}, cosine), batch {r.batch_size} "
                      f"({r.accum} x {r.batch_size // r.accum}), clip {r.clip_norm:g}, {r.img_size} px, seed {r.seed}",
            "dtype": "bf16 autocast" if r.dtype == "bf16" else "fp32", "world_size": result.world_size,
            "loss": round(result.loss, 4), "val_top1": None if not last else round(last["top1"], 2),
            "seconds": round(result.seconds, 1), "img_per_s": round(result.img_per_s, 1), "out": str(result.out),
            "history": list(result.history), "skipped": list(result.skipped)}  # fmt: skip


@click.command("finetune", cls=Command)
@click.argument("name", metavar="NAME[.TAG]|FILE", required=False)
@click.option(
    "--data",
    type=click.Path(path_type=str),
    metavar="DIR",
    help="Training ImageFolder: one sub-folder of images per class (the folder names become the labels).",
)
@click.option(
    "--val",
    type=click.Path(path_type=str),
    metavar="DIR",
    help="Validation ImageFolder with the same class folders: top-1/top-5 after every epoch.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=str),
    metavar="OUT",
    help="Where to write the fine-tuned model (a vitzoo .safetensors file); OUT.resume holds the resume "
    "checkpoint while the run is going.",
)
@click.option(
    "--resume",
    type=click.Path(path_type=str),
    metavar="OUT",
    help="Continue the interrupted run that writes OUT, exactly where it stopped.",
)
@click.option(
    "--img-size",
    type=int,
    callback=at_least(1),
    metavar="PX",
    help="Training resolution; the position embedding is resampled as vit_jax does (default: the "
    "checkpoint's; the paper fine-tunes at 384).",
)
@click.option("--steps", type=int, callback=at_least(1), metavar="N", help="Optimizer steps [default: 500].")
@click.option("--epochs", type=int, callback=at_least(1), metavar="N", help="Passes over --data instead of --steps.")
@click.option(
    "--lr",
    type=float,
    default=0.003,
    show_default=True,
    callback=positive_number,
    help="Peak learning rate (the paper picks from 0.001, 0.003, 0.01, 0.03).",
)
@click.option(
    "--warmup-steps",
    type=int,
    callback=at_least(0),
    metavar="N",
    help="Linear warm-up steps [default: 500, at most a tenth of the steps].",
)
@click.option(
    "--batch-size",
    "-b",
    type=int,
    default=512,
    show_default=True,
    callback=at_least(1),
    help="Images per optimizer step, all processes and micro-batches together (the paper: 512).",
)
@click.option(
    "--accum",
    type=int,
    default=8,
    show_default=True,
    callback=at_least(1),
    help="Micro-batches per step (gradient accumulation): each forward pass takes batch / accum images.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    callback=at_least(0),
    help="Seed of the data order and augmentation.",
)
@click.option(
    "--workers",
    "-j",
    type=int,
    default=2,
    show_default=True,
    callback=at_least(0),
    help="Data-loading processes (0: load in this process).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option(
    "--dtype",
    type=click.Choice(["auto", "fp32", "bf16"]),
    default="auto",
    show_default=True,
    help="auto: bf16 autocast where native (CUDA, CPUs with AVX512_BF16/AMX), else fp32.",
)
@click.option(
    "--save-every",
    type=int,
    callback=at_least(1),
    metavar="STEPS",
    help="Write the resume checkpoint every STEPS steps [default: every 10 minutes]; also on Ctrl-C.",
)
@format_options
@scale_out
@click.pass_context
def finetune_cmd(ctx: click.Context, name: str | None, resume: str | None, workers: int, device: str,
                 save_every: int | None, fmt: str, **kw: Any) -> None:  # fmt: skip
    """Fine-tune a checkpoint on your image folder, with the recipe of the ViT paper.

    The paper's transfer recipe (§3.2, Appendix B.1.1) by default: the head replaced by a zero-initialised linear
    layer with one output per class folder (the ImageNet-21k representation layer dropped), the position
    embedding resampled to --img-size as vit_jax does, SGD with momentum 0.9 and no weight decay, a linear warm-up
    then cosine decay, gradients clipped at global norm 1, the checkpoint's own preprocessing plus vit_jax's
    training augmentation (inception crop, random flip), seeded per image. --accum splits each batch into
    micro-batches; --nproc N (or torchrun) runs data-parallel (DDP). Ctrl-C (or --save-every) writes a resume
    checkpoint; `--resume OUT` continues bit for bit. OUT is a vitzoo weight file that names its classes:
    `vitzoo eval OUT --data val/`, `vitzoo bench OUT`, `vitzoo export OUT` and `vitzoo.load("OUT")` take it.

    \b
    Examples:
      vitzoo finetune vit-b16.orig-in21k --data pets/train --val pets/test --img-size 384 -o pets.safetensors
      vitzoo finetune vit-s16 --data flowers/ --epochs 10 -b 64 --accum 4 --lr 0.01 -o flowers.safetensors
      vitzoo finetune --resume pets.safetensors          # after Ctrl-C or a crash
      vitzoo finetune vit-ti16 --data small/ -b 32 -o ti.safetensors --nproc 2
    """
    from vitzoo.measure.device import resolve_device
    from vitzoo.parallel.distributed import current
    from vitzoo.train.loop import Interrupted, train
    from vitzoo.train.run import resume as resume_run

    resolve_device(device)
    world = current().world_size
    if resume:
        _resume_conflicts(ctx, name)
        run = resume_run(resume)
        info(f"resuming {run.info.source} at step {run.step}/{run.info.recipe.steps} from {run.out}.resume")
    else:
        run = _new_run(name, kw, device, world)
    _announce(run, device)
    try:
        with Display(run.info.recipe.steps, run.step) as display:
            result = train(run, device=device, workers=workers, save_every=save_every,
                           progress=display if is_main() else None)  # fmt: skip
    except Interrupted as e:
        info(f"interrupted after step {e.step}/{run.info.recipe.steps}; resume checkpoint {e.path}; continue with "
             f"`vitzoo finetune --resume {run.out}`")  # fmt: skip
        sys.exit(EXIT_INTERRUPTED)
    if not is_main():
        return
    if result.skipped:
        warn(f"{len(result.skipped)} unreadable training file(s) were left out of their batches, e.g. "
             f"{result.skipped[0]}")  # fmt: skip
    row = _result_row(result)
    if fmt in ("json", "csv"):
        emit([row] if fmt == "json" else [{k: v for k, v in row.items() if k not in ("history", "skipped")}], fmt, [])
        return
    table = [{"field": label, "value": "—" if row[key] is None else str(row[key])} for key, label in RESULT_FIELDS]
    render_table(table, [("field", "", None), ("value", "", None)], title="vitzoo finetune")


def _new_run(name: str | None, kw: dict[str, Any], device: str, world: int) -> Any:
    from vitzoo.train.recipe import Recipe
    from vitzoo.train.run import prepare
    from vitzoo.weights.names import check_source

    if not name:
        raise VitzooError("name the checkpoint to fine-tune (NAME[.TAG] or FILE), or continue a run with --resume OUT")
    for option in ("data", "output"):
        if not kw[option]:
            raise VitzooError(f"--{option} is required" + (" (the training ImageFolder)" if option == "data" else
                                                          " (the fine-tuned model's file)"))  # fmt: skip
    if kw["steps"] is not None and kw["epochs"] is not None:
        raise VitzooError("give --steps or --epochs, not both")
    check_source(name, img_size=kw["img_size"])
    recipe = Recipe(steps=kw["steps"] or 500, lr=kw["lr"], warmup_steps=kw["warmup_steps"],
                    batch_size=kw["batch_size"], accum=kw["accum"], seed=kw["seed"], img_size=kw["img_size"],
                    dtype=kw["dtype"])  # fmt: skip
    from vitzoo.weights.sources import SourceFallbackWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SourceFallbackWarning)
        run = prepare(name, kw["data"], kw["output"], recipe, val_dir=kw["val"], epochs=kw["epochs"], device=device,
                      world_size=world)  # fmt: skip
    for w in caught:  # which source was used when the first failed: one line, not a Python warning
        if issubclass(w.category, SourceFallbackWarning):
            warn(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return run


def _announce(run: Any, device: str) -> None:
    """What is about to run, in one line (and a warning for bf16 on a CPU that emulates it)."""
    from vitzoo.measure.cpu import low_precision_warning
    from vitzoo.zoo.preprocess import describe_preprocess

    r = run.info.recipe
    if r.dtype == "bf16" and (slow := low_precision_warning("bf16", device)):
        warn(slow)
    val = f", validating on {run.val.description} ({len(run.val)} images)" if run.val is not None else ""
    pp = describe_preprocess(run.info.preprocess)
    info(f"{run.info.source} on {run.data.description}: {len(run.data)} images{val}; {r.steps} steps of "
         f"{r.batch_size} ({r.accum} x {r.batch_size // r.accum}), lr {r.lr:g}; {pp} + inception crop and flip; "
         f"{'bf16 autocast' if r.dtype == 'bf16' else 'fp32'} on {device}")  # fmt: skip
