"""`vitzoo export`: a zoo model out to ONNX, transformers or timm, checked before it is kept."""

from __future__ import annotations

from pathlib import Path

import click

from vitzoo.cli._output import emit_json, fail, info, warn
from vitzoo.zoo.formats import EXPORT_FORMATS


@click.command("export")
@click.argument("src", metavar="NAME[.TAG]|FILE")
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    required=True,
    metavar="|".join(EXPORT_FORMATS),
    help="onnx: a .onnx file; transformers: a from_pretrained directory; timm: a .safetensors file.",
)
@click.option("--img-size", type=int, help="Resolution to export at (default: the checkpoint's).")
@click.option("--no-pre-logits", is_flag=True, help="Drop the representation layer (2020 ImageNet-21k checkpoints).")
@click.option("--opset", type=int, help="ONNX opset (default: the exporter's).")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON on stdout.")
def export_cmd(src, out, fmt, img_size, no_pre_logits, opset, force, as_json):
    """Export a model (registry name or weight file) to OUT for ONNX Runtime, transformers or timm.

    The export is checked before it is kept: the ONNX file with onnx.checker and by running it in ONNX Runtime
    (at another batch size than traced: the batch axis is dynamic), the transformers directory by loading it
    with transformers, the timm file with timm (or, without timm, vitzoo's timm reader); each must reproduce
    vitzoo's fp32 logits to 1e-4 relative. Only then is OUT written (atomically).

    \b
    Examples:
      vitzoo export vit-b16 vit-b16.onnx --format onnx
      vitzoo export vit-b16.augreg-in21k-ft-in1k hf-vit-b16 --format transformers
      vitzoo export bit-r50x1 bit-r50x1.safetensors --format timm
      vitzoo export finetuned.safetensors model.onnx --format onnx --img-size 384
    """
    from vitzoo.exporting import export

    if (out.exists() or out.is_symlink()) and not force:
        fail(f"{out} exists; pass --force to overwrite it")
    result = export(src, out, fmt, img_size=img_size, pre_logits=not no_pre_logits, opset=opset, force=force)
    if as_json:
        emit_json(result.as_dict())
    info(f"wrote {result.path} ({result.target}; {result.model} at {result.img_size}px)")
    if result.vacuous:
        warn(
            f"not really checked: the head is all zeros, so every logit is its bias and {result.checked_with} "
            "agreeing on them proves nothing about the rest of the network; export a model with a trained head"
        )
    else:
        info(f"checked with {result.checked_with}: max relative logit difference {result.max_rel_diff:.1e}")
    if fmt == "timm":
        from vitzoo.exporting import timm_overlay

        kwargs = "".join(f", {k}={v!r}" for k, v in result.info["kwargs"].items())
        overlay = timm_overlay(result.path, result.info["pretrained_cfg"])
        info(f"load it with: timm.create_model({result.info['model_name']!r}, pretrained=True, "
             f"pretrained_cfg_overlay={overlay!r}{kwargs})")  # fmt: skip
