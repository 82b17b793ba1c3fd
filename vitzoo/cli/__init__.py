"""The `vitzoo` command: a thin click layer over the Python API.

Commands live in one module per group and are imported only when run, so `vitzoo --help` stays fast
and a command's heavy imports (torch, pandas, matplotlib) cost nothing to the others.
"""

from __future__ import annotations

import difflib
import importlib

import click

from vitzoo import __version__
from vitzoo.cli._output import command_name, fail, warn
from vitzoo.cli._preflight import check_exclusive
from vitzoo.errors import VitzooError
from vitzoo.settings import VARIABLES, check_environment

EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C, on every command

# command name -> "module:attribute"; a module that is not there yet just hides its commands.
COMMANDS = {
    "list": "vitzoo.cli.catalog:list_cmd",
    "info": "vitzoo.cli.catalog:info_cmd",
    "convert": "vitzoo.cli.weights:convert_cmd",
    "download": "vitzoo.cli.weights:download_cmd",
    "cache": "vitzoo.cli.weights:cache_cmd",
    "export": "vitzoo.cli.export:export_cmd",
    "bench": "vitzoo.cli.bench:bench_cmd",
    "flops": "vitzoo.cli.results:flops_cmd",
    "results": "vitzoo.cli.results:results_cmd",
    "predict": "vitzoo.cli.predict:predict_cmd",
    "eval": "vitzoo.cli.evaluate:eval_cmd",
    "fewshot": "vitzoo.cli.evaluate:fewshot_cmd",
    "tradeoff": "vitzoo.cli.tradeoff:tradeoff_cmd",
    "inspect": "vitzoo.cli.inspect:inspect_cmd",
    "finetune": "vitzoo.cli.train:finetune_cmd",
    "report": "vitzoo.cli.report:report_cmd",
}


class SuggestingGroup(click.Group):
    """A command group whose unknown commands are one stderr line naming the closest command (exit code 2)."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else ""
        if name and not name.startswith("-") and not ctx.resilient_parsing and self.get_command(ctx, name) is None:
            commands = self.list_commands(ctx)
            close = difflib.get_close_matches(name, commands, n=1, cutoff=0.5)
            path = command_name(ctx)  # the root's name may differ (tests, -m)
            hint = f"did you mean `{path} {close[0]}`?" if close else f"see `{path} --help`"
            fail(f"no command {name!r}; {hint}", code=2)
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and not ctx.resilient_parsing:
            try:
                check_exclusive(command, rest)  # --json --csv: refused, not one silently winning
            except click.UsageError as e:
                fail(f"{e.format_message()} (see `{command_name(ctx)} {name} -h`)", code=2)
        return name, command, rest

    def invoke(self, ctx: click.Context):
        """Every mistake in the options of any command is one line (exit code 2); Ctrl-C is exit code 130."""
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            where = command_name(e.ctx) if e.ctx is not None else command_name(ctx)
            fail(f"{e.format_message()} (see `{where} -h`)", code=2)
        except (KeyboardInterrupt, click.Abort):
            fail("interrupted", code=EXIT_INTERRUPTED)


class Group(SuggestingGroup):
    """Lazily imported commands; user errors (VitzooError) become one stderr line and exit code 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self.get_command(ctx, name) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, _, attr = COMMANDS[name].partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            if e.name == module:
                return None
            raise

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["vitzoo.args"] = tuple(args)  # the command line, for `--nproc N` to start its workers with
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:  # `vitzoo --bogus`: one line too
            fail(f"{e.format_message()} (see `vitzoo -h`)", code=2)

    def invoke(self, ctx: click.Context):
        """vitzoo's environment variables are checked first, on every command (``vitzoo.settings``)."""
        try:
            for name in check_environment():
                warn(f"{name} is not a vitzoo variable (ignored); vitzoo reads {', '.join(VARIABLES)}")
            return super().invoke(ctx)
        except VitzooError as e:
            fail(str(e))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="vitzoo")
def main() -> None:
    """vitzoo: Vision Transformers and their BiT ResNet baselines, faithful to the originals.

    \b
    Start with:
      vitzoo list              every model, its size, compute and reported accuracy
      vitzoo info vit-b16      one model and all its checkpoints
    """
