"""The `vitzoo` command: a thin click layer over the Python API. Heavy imports happen inside commands."""

from __future__ import annotations

import click

from vitzoo.cli._output import fail
from vitzoo.cli.catalog import info_cmd, list_cmd
from vitzoo.errors import VitzooError


class Group(click.Group):
    """Turns user errors (VitzooError) into one stderr line and exit code 1; bugs keep their traceback."""

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


for command in (list_cmd, info_cmd):
    main.add_command(command)
