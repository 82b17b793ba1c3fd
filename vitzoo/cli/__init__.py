"""The `vitzoo` command: a thin click layer over the Python API.

Commands live in one module per group and are imported only when run, so `vitzoo --help` stays fast
and a command's heavy imports (torch, pandas, matplotlib) cost nothing to the others.
"""

from __future__ import annotations

import importlib

import click

from vitzoo.cli._output import fail
from vitzoo.errors import VitzooError

# command name -> "module:attribute"; a module that is not there yet just hides its commands.
COMMANDS = {
    "list": "vitzoo.cli.catalog:list_cmd",
    "info": "vitzoo.cli.catalog:info_cmd",
    "convert": "vitzoo.cli.weights:convert_cmd",
    "download": "vitzoo.cli.weights:download_cmd",
    "cache": "vitzoo.cli.weights:cache_cmd",
    "export": "vitzoo.cli.export:export_cmd",
    "bench": "vitzoo.cli.bench:bench_cmd",
    "flops": "vitzoo.cli.bench:flops_cmd",
    "results": "vitzoo.cli.bench:results_cmd",
    "eval": "vitzoo.cli.evaluate:eval_cmd",
    "fewshot": "vitzoo.cli.evaluate:fewshot_cmd",
    "tradeoff": "vitzoo.cli.evaluate:tradeoff_cmd",
    "inspect": "vitzoo.cli.inspect:inspect_cmd",
}


class Group(click.Group):
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

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VitzooError as e:
            fail(str(e))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vitzoo", prog_name="vitzoo")
def main() -> None:
    """vitzoo: Vision Transformers and their BiT ResNet baselines, faithful to the originals.

    \b
    Start with:
      vitzoo list              every model, its size, compute and reported accuracy
      vitzoo info vit-b16      one model and all its checkpoints
    """
