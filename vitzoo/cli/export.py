"""`vitzoo export`: a zoo model out to ONNX, transformers or timm, checked before it is kept."""

from __future__ import annotations

from pathlib import Path

import click

from vitzoo.cli._output import emit_summary, fail, format_options, info
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
@click.option(
    "--dynamic-size",
    is_flag=True,
    help="ONNX: dynamic height and width too (any multiples of the patch size; hybrids: the total stride).",
)
@click.option(
    "--dtype",
    type=click.Choice(["fp32", "int8"]),
    default="fp32",
    show_default=True,
    help="int8: the ONNX graph quantized by ONNX Runtime, its calibration kept in the file's metadata.",
)
@click.option(
    "--int8",
    "int8_method",
    type=click.Choice(["static", "dynamic"]),
    default="static",
    show_default=True,
    help="static: QDQ, per-channel int8 weights, activations calibrated on --calib images; dynamic: "
    "activation ranges computed at run time.",
)
@click.option(
    "--data",
    type=click.Path(),
    default=None,
    metavar="DIR",
    help="An ImageFolder to calibrate static int8 on (default: fixed synthetic images).",
)
@click.option("--calib", type=int, default=64, show_default=True, metavar="N", help="Calibration images.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@format_options(dest="output")
def export_cmd(
    src, out, fmt, img_size, no_pre_logits, opset, dynamic_size, dtype, int8_method, data, calib, force, output
):
    """Export a model (registry name or weight file) to OUT for ONNX Runtime, transformers or timm.

    The export is checked before it is kept: the ONNX file with onnx.checker and by running it in ONNX Runtime
    (at another batch size than traced: the batch axis is dynamic), the transformers directory by loading it
    with transformers, the timm file with timm (or, without timm, vitzoo's timm reader); each must reproduce
    vitzoo's fp32 logits to 1e-4 relative (with --dynamic-size, at two image sizes). A model whose head is all
    zeros (every logit its bias) is checked with a seeded probe head instead, then written with its zeros and
    proven identical to the checked export but for the head. Only then is OUT written (atomically). An int8 ONNX
    export is checked to run in ONNX Runtime to finite logits; how close it stays to fp32 is what
    `vitzoo bench --dtype int8` measures.

    \b
    Examples:
      vitzoo export vit-b16 vit-b16.onnx --format onnx
      vitzoo export vit-b16.augreg-in21k-ft-in1k hf-vit-b16 --format transformers
      vitzoo export bit-r50x1 bit-r50x1.safetensors --format timm
      vitzoo export finetuned.safetensors model.onnx --format onnx --img-size 384
      vitzoo export vit-b16 vit-b16-any-size.onnx --format onnx --dynamic-size
      vitzoo export vit-b16 vit-b16-int8.onnx --format onnx --dtype int8 --data train-sample/ --calib 128
    """
    from vitzoo.exporting import export

    if (out.exists() or out.is_symlink()) and not force:  # the "--force" wording, before any --data is read
        fail(f"{out} exists; pass --force to overwrite it")
    calibration = None
    if dtype == "int8":
        if fmt != "onnx":
            fail(f"--dtype int8 exports ONNX only (ONNX Runtime's quantizer), not --format {fmt}")
        if calib < 1:
            fail(f"--calib must be at least 1, not {calib}")
        if data is not None:
            from vitzoo.evaluate.data import image_folder

            folder = image_folder(data)  # a missing or empty folder: one line before anything is loaded
            calibration = lambda model: _calibration(folder, model, calib)  # noqa: E731
    result = export(src, out, fmt, img_size=img_size, pre_logits=not no_pre_logits, opset=opset, force=force,
                    dynamic_size=dynamic_size, dtype=dtype, int8_method=int8_method,
                    calibration=calibration)  # fmt: skip
    emit_summary(result.as_dict(), output, f"exported {result.path}")
    info(f"wrote {result.path} ({result.target}; {result.model} at {result.img_size}px)")
    info(f"checked with {result.checked_with}: max relative logit difference {result.max_rel_diff:.1e}")
    if dtype == "int8" and "calibration" in result.info["quantization"]:
        c = result.info["quantization"]["calibration"]
        info(f"calibrated ({c['method']}) on {c['images']} images: {c['source']}")
    if fmt == "timm":
        from vitzoo.exporting import timm_overlay

        kwargs = "".join(f", {k}={v!r}" for k, v in result.info["kwargs"].items())
        overlay = timm_overlay(result.path, result.info["pretrained_cfg"])
        names = overlay.pop("label_names", None)  # a thousand names would bury the line: they are in the file
        info(f"load it with: timm.create_model({result.info['model_name']!r}, pretrained=True, "
             f"pretrained_cfg_overlay={overlay!r}{kwargs})")  # fmt: skip
        if names:
            info(f"its {len(names)} class names: \"label_names\" of the pretrained_cfg in the file's timm_info "
                 "metadata (vitzoo.exporting.timm_overlay(FILE, cfg) gives the overlay with them)")  # fmt: skip


def _calibration(folder, model, n: int):
    """``n`` images of an ImageFolder (evenly spaced over it), preprocessed for ``model``, and their record."""
    import numpy as np

    from vitzoo.exporting import Calibration
    from vitzoo.zoo.preprocess import resolve_preprocess

    data = folder.with_preprocess(resolve_preprocess(model)).subset(n)
    images = [item.image.numpy() for item in (data[i] for i in range(len(data))) if item.image is not None]
    if not images:
        fail(f"{folder.description}: no readable image to calibrate on")
    return np.stack(images), Calibration(f"{len(images)} images of {folder.description}", len(images))
