"""transformers: a ``from_pretrained`` directory with the original numerics, the tag's preprocessor config and the
head's class names (``id2label``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitzoo.errors import first_line
from vitzoo.exporting._common import (
    Exported,
    ExportError,
    checkpoint_labels,
    display_name,
    move_into_place,
    quiet,
    staging,
    standardized_state_dict,
    writing,
)
from vitzoo.exporting.check import check_logits
from vitzoo.zoo.configs import BiTConfig, ModelConfig
from vitzoo.zoo.preprocess import Preprocess


def transformers_config(config: ModelConfig) -> tuple[Any, str]:
    """The transformers config (original numerics) and the class that loads it; ExportError where none can."""
    import transformers

    if isinstance(config, BiTConfig):
        wf = config.width_factor
        # BitConfig's width_factor only scales the stages, not the final norm and head: spell widths out instead.
        hf = transformers.BitConfig(
            layer_type="preactivation", embedding_size=64 * wf, depths=list(config.layers), width_factor=1,
            hidden_sizes=[256 * wf * 2**i for i in range(len(config.layers))], global_padding=None,
            embedding_dynamic_padding=False, num_labels=config.num_classes or 2,
        )  # fmt: skip
        return hf, "BitForImageClassification" if config.num_classes else "BitModel"
    if config.backbone is not None:
        if not hasattr(transformers, "ViTHybridForImageClassification"):
            raise ExportError(
                f"transformers {transformers.__version__} has no ViTHybrid (removed in transformers 5); "
                "export hybrids to onnx or timm"
            )
        raise ExportError("exporting hybrids to transformers' ViTHybrid is not supported; export to onnx or timm")
    if config.classifier != "token":
        raise ExportError("transformers' ViT pools the class token only; a 'gap' model cannot be exported to it")
    if config.representation_size and config.num_classes:
        raise ExportError(
            "transformers' ViTForImageClassification has no representation layer before its head; "
            "drop it (--no-pre-logits) or export to onnx"
        )
    hf = transformers.ViTConfig(
        hidden_size=config.width, num_hidden_layers=config.depth, num_attention_heads=config.num_heads,
        intermediate_size=config.mlp_dim, image_size=config.img_size, patch_size=config.patch_size,
        hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, qkv_bias=True, num_labels=config.num_classes or 2,
        pooler_output_size=config.representation_size or config.width, pooler_act="tanh",
    )  # fmt: skip
    return hf, "ViTForImageClassification" if config.num_classes else "ViTModel"


def preprocessor_config(pp: Preprocess) -> dict[str, Any]:
    """``preprocessor_config.json`` for a checkpoint's preprocessing: ViTImageProcessor (resize to the square) or
    BitImageProcessor (shorter side to size / crop_pct, centre crop), PIL resampling codes.

    ``squash`` and ``shorter`` are reproduced exactly by transformers' Pillow processors. vit_jax's ``tf`` resize
    (to the square without antialiasing, float pixels never rounded) has no transformers equivalent: it gets the
    nearest one, ViTImageProcessor's bilinear resize to the square, which antialiases when it shrinks and rounds to
    uint8, so a photo larger than the input differs slightly (the same geometry; pixels off by a few levels).
    """
    common = {"do_resize": True, "resample": 3 if pp.interpolation == "bicubic" else 2, "do_rescale": True,
              "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": list(pp.mean),
              "image_std": list(pp.std)}  # fmt: skip
    if pp.resize in ("squash", "tf"):  # tf: the nearest transformers can express (see above)
        return {"image_processor_type": "ViTImageProcessor", **common, "size": {"height": pp.img_size,
                "width": pp.img_size}}  # fmt: skip
    return {"image_processor_type": "BitImageProcessor", **common, "do_convert_rgb": True,
            "size": {"shortest_edge": math.floor(pp.img_size / pp.crop_pct)}, "do_center_crop": True,
            "crop_size": {"height": pp.img_size, "width": pp.img_size}}  # fmt: skip


def _export_transformers(model: nn.Module, out: Path, pp: Preprocess, tolerance: float) -> Exported:
    import transformers
    from safetensors.torch import save_file

    from vitzoo.weights.convert.torch_formats import canonical_to_transformers

    config = model.config
    hf_config, cls_name = transformers_config(config)
    hf_config.architectures = [cls_name]
    _, labels = checkpoint_labels(model)
    if labels is not None and config.num_classes:  # pipeline("image-classification") answers with these names
        hf_config.id2label = dict(enumerate(labels))
        hf_config.label2id = {name: i for i, name in reversed(list(enumerate(labels)))}  # a repeated name: first
    bit = isinstance(config, BiTConfig)
    tensors = canonical_to_transformers(standardized_state_dict(model), bit)
    with staging(out) as tmp:
        staged = tmp / out.name
        with writing(out):
            staged.mkdir()
            hf_config.save_pretrained(staged)
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(staged / "model.safetensors"),
                      metadata={"format": "pt"})  # fmt: skip
            (staged / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(pp), indent=2) + "\n")
        cls = getattr(transformers, cls_name)
        kwargs = {"add_pooling_layer": False} if cls_name == "ViTModel" and not config.representation_size else {}
        try:
            with quiet():
                hf, info = cls.from_pretrained(staged, output_loading_info=True, **kwargs)
        except Exception as e:
            raise ExportError(f"{out}: transformers cannot load the export: {first_line(e)}") from None
        bad = [k for key in ("missing_keys", "unexpected_keys", "mismatched_keys") for k in info.get(key) or ()]
        if bad:
            raise ExportError(f"{out}: transformers did not take every weight ({len(bad)} keys, e.g. {bad[0]})")

        def run(x: torch.Tensor) -> torch.Tensor:
            output = hf.eval()(pixel_values=x)
            return output.logits if config.num_classes else _features(output, config)

        rel = check_logits(model, run, tolerance, f"transformers {cls_name}")
        files = tuple(sorted(p.name for p in staged.iterdir()))
        move_into_place(staged, out)
    processor = preprocessor_config(pp)["image_processor_type"]
    return Exported(out, "transformers", display_name(model), config.img_size, config.num_classes,
                    f"transformers {cls_name}", f"transformers {transformers.__version__}", rel, files,
                    {"class": cls_name, "image_processor": processor})  # fmt: skip


def _features(output: Any, config: ModelConfig) -> torch.Tensor:
    """vitzoo's head-less output in a transformers ViTModel / BitModel output."""
    if isinstance(config, BiTConfig):
        return output.pooler_output.flatten(1)
    if config.representation_size:
        return output.pooler_output
    return output.last_hidden_state[:, 0]
