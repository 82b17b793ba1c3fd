"""``vitzoo.export``: a zoo model out to the formats deployment tools load, each checked before it is kept.

* ``onnx``: one ``.onnx`` file from ``torch.onnx.export`` (the dynamo exporter), input ``pixel_values``
  (batch, 3, S, S) with a dynamic batch axis, output ``logits``. It passes ``onnx.checker`` and ONNX Runtime
  reproduces the PyTorch logits (at a batch size other than the traced one) before it replaces OUT.
* ``transformers``: a directory that ``ViTForImageClassification`` / ``BitForImageClassification`` (``ViTModel`` /
  ``BitModel`` for a model without head) load with ``from_pretrained``: config with the original numerics (tanh
  GELU, LayerNorm eps 1e-6), ``model.safetensors`` and the checkpoint's ``preprocessor_config.json``; transformers
  loads it and reproduces vitzoo's logits before it replaces OUT.
* ``timm``: one safetensors file with timm's key names, the timm model name, the keyword arguments that rebuild
  the architecture with the original numerics and the ``pretrained_cfg`` in its metadata (``timm_info``). Without
  timm installed it is checked by reading it back through vitzoo's timm reader.

Weight-standardised convolutions (hybrid and BiT ResNets) are written pre-standardised: the function is the same,
and the other libraries' own epsilon (1e-8 inside the square root, where the originals use 1e-10 or std + 1e-5)
then changes the result by less than 1e-7 instead of about 1e-4.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from vitzoo.errors import VitzooError
from vitzoo.models import BiTConfig, ModelConfig
from vitzoo.models.layers import StdConv2d, pad_same
from vitzoo.registry import Preprocess

ExportFormat = Literal["onnx", "transformers", "timm"]
FORMATS: tuple[str, ...] = ("onnx", "transformers", "timm")
TOLERANCE = 1e-4  # max |exported - vitzoo| / max |vitzoo| over the logits, fp32
CHECK_BATCH = 3  # the check runs a batch size other than the traced one (2), so the dynamic axis is exercised


class ExportError(VitzooError):
    """A model that cannot be written in the requested format, a missing extra, or an unusable destination."""


@dataclass(frozen=True)
class Exported:
    """What ``export`` wrote and how it was checked."""

    path: Path
    format: str
    model: str  # the loaded name (arch.tag) or file
    img_size: int
    num_classes: int
    target: str  # what loads it: "onnxruntime 1.x (opset 20)", "transformers ViTForImageClassification", "timm ..."
    checked_with: str  # the runtime the logits were compared in
    max_rel_diff: float  # max |exported - vitzoo| / max |vitzoo| on a random batch
    files: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)  # format-specific: timm name/kwargs/pretrained_cfg, opset

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON-able)."""
        return {"path": str(self.path), "format": self.format, "model": self.model, "img_size": self.img_size,
                "num_classes": self.num_classes, "target": self.target, "checked_with": self.checked_with,
                "max_rel_diff": self.max_rel_diff, "files": list(self.files), "info": self.info}  # fmt: skip


def export(
    name_or_path: str | os.PathLike,
    out: str | os.PathLike,
    format: ExportFormat,
    *,
    img_size: int | None = None,
    pre_logits: bool = True,
    opset: int | None = None,
    force: bool = False,
    tolerance: float = TOLERANCE,
) -> Exported:
    """Export a registry model (``arch`` / ``arch.tag``) or a weight file to ``format`` at ``out``.

    Args:
        name_or_path: what ``vitzoo.load`` accepts.
        out: the ``.onnx`` file, the transformers directory or the timm ``.safetensors`` file to write.
        format: "onnx", "transformers" or "timm".
        img_size: resolution to export at (position embeddings resized as vit_jax does); default: the checkpoint's.
        pre_logits: False drops the representation layer of the 2020 ImageNet-21k checkpoints.
        opset: ONNX opset (default: the exporter's).
        force: overwrite ``out`` if it exists.
        tolerance: largest relative logit difference accepted by the check (fp32).

    Nothing is left at ``out`` unless the check passed; an existing ``out`` is replaced only then.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    out = Path(out).expanduser()
    _check_destination(out, format, force)
    _require(format)
    from vitzoo.loading import load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a zeroed 21k head is exported as it is; the loader's advice is for users
        model = load(name_or_path, img_size=img_size, pre_logits=pre_logits, dtype="fp32")
    preprocess = model.preprocess or Preprocess(model.config.img_size)  # a bare file: the originals' preprocessing
    if format == "onnx":
        return _export_onnx(model, out, opset, tolerance)
    if format == "transformers":
        return _export_transformers(model, out, preprocess, tolerance)
    return _export_timm(model, out, preprocess, tolerance)


# --- shared -----------------------------------------------------------------------------------------------------

_EXTRAS = {
    "onnx": (("onnx", "onnxscript", "onnxruntime"), "pip install 'vitzoo[onnx]'"),
    "transformers": (("transformers",), "pip install transformers"),
    "timm": ((), ""),
}


def _require(format: str) -> None:
    modules, how = _EXTRAS[format]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"exporting to {format} needs {', '.join(missing)}: {how}")


def _check_destination(out: Path, format: str, force: bool) -> None:
    """Refuse an existing OUT (without force), a wrong kind of path, or a parent that cannot be written."""
    if format == "onnx" and out.suffix != ".onnx":
        raise ExportError(f"{out}: an ONNX export must be a .onnx file")
    if format == "timm" and out.suffix != ".safetensors":
        raise ExportError(f"{out}: a timm export must be a .safetensors file")
    if format == "transformers" and out.suffix in (".onnx", ".safetensors", ".bin"):
        raise ExportError(f"{out}: a transformers export is a directory, not a {out.suffix} file")
    if out.exists() or out.is_symlink():
        if not force:
            raise ExportError(f"{out} exists; pass --force (force=True) to overwrite it")
        if format == "transformers" and not out.is_dir():
            raise ExportError(f"{out} exists and is not a directory")
        if format != "transformers" and out.is_dir():
            raise ExportError(f"{out} is a directory")
    parent = out.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(f"{out}: cannot write to {existing or parent}")


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A temporary directory beside ``out`` (same file system, so the final moves are renames); always removed."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as e:
        raise ExportError(f"{out}: cannot write there ({e.strerror or e})") from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace(src: Path, dst: Path) -> None:
    """Move a checked file or directory into place; an existing directory is swapped out, then removed."""
    for f in [src, *src.iterdir()] if src.is_dir() else [src]:
        f.chmod(0o755 if f.is_dir() else 0o644)  # staged under mkdtemp (0700); a shipped model is world-readable
    if src.is_dir() and dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def _rel_diff(got: torch.Tensor, ref: torch.Tensor) -> float:
    """max |got - ref| / max |ref| (0 when both are exactly equal, e.g. a zero head)."""
    if got.numel() != ref.numel():
        raise ExportError(f"the export gives shape {tuple(got.shape)}, vitzoo {tuple(ref.shape)}")
    got, ref = got.double().reshape(ref.shape), ref.double()
    diff = (got - ref).abs().max().item()
    scale = ref.abs().max().item()
    return 0.0 if diff == 0 else diff / max(scale, 1e-30)


def _verify(rel: float, tolerance: float, what: str) -> None:
    if not rel <= tolerance:  # also catches NaN
        raise ExportError(f"{what} disagrees with vitzoo: max relative logit difference {rel:.2e} > {tolerance:.0e}")


def _reference(model: nn.Module, batch: int = CHECK_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random batch and vitzoo's logits for it (fp32, plain aten kernels)."""
    size = model.config.img_size
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return x, model(x)


def standardized_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The canonical state dict with every StdConv kernel replaced by the kernel it convolves with."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, StdConv2d):
                sd[f"{name}.weight"] = m.standardized_weight().detach().contiguous()
    return sd


def _display(model: nn.Module) -> str:
    return getattr(model, "name", None) or type(model).__name__


# --- ONNX -------------------------------------------------------------------------------------------------------

ONNX_FILE_LIMIT = 1_800_000_000  # bytes of weights above which they go to an external file (protobuf's 2 GiB cap)


class _FrozenStdConv(nn.Module):
    """A StdConv2d with its standardised kernel baked in: the graph holds one Conv (and a Pad), not the statistics."""

    def __init__(self, conv: StdConv2d) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.standardized_weight().detach().clone(), requires_grad=False)
        self.stride, self.padding, self.tf_same = conv.stride, conv.padding, conv.tf_same
        self.kernel = conv.kernel_size[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_same:
            x = pad_same(x, self.kernel, self.stride[0])
        return F.conv2d(x, self.weight, None, self.stride, self.padding)


def deployable(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for tracing: eval mode, aten kernels, StdConvs frozen to plain convolutions."""
    from vitzoo.models.layers import set_fused_kernels

    model = set_fused_kernels(copy.deepcopy(model).eval(), False)
    for name, m in list(model.named_modules()):
        if isinstance(m, StdConv2d):
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, _FrozenStdConv(m))
    return model.requires_grad_(False)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's progress lines and warnings (library code never prints)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    hf_logging = None
    if "transformers" in sys.modules:  # its "Loading weights" progress bar
        from transformers.utils import logging as hf_logging

        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        if hf_logging is not None and bar:
            hf_logging.enable_progress_bar()


def onnx_program(model: nn.Module, opset: int | None = None):
    """``torch.onnx.export`` (dynamo) of a vitzoo model: ``pixel_values`` (batch, 3, S, S) -> ``logits``."""
    net = deployable(model)
    size = model.config.img_size
    x = torch.randn(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1)
    try:
        with _quiet(), torch.no_grad():
            return torch.onnx.export(
                net, (x,), None, dynamo=True, input_names=["pixel_values"], output_names=["logits"],
                dynamic_shapes={"x": {0: batch}}, opset_version=opset, verbose=False, external_data=False,
            )  # fmt: skip
    except Exception as e:
        raise ExportError(f"{_display(model)}: torch.onnx.export failed: {_first_line(e)}") from None


def ort_session(path: str | os.PathLike, threads: int | None = None):
    """An ONNX Runtime CPU session with all graph optimisations, ``threads`` intra-op threads (None: ORT's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export_onnx(model: nn.Module, out: Path, opset: int | None, tolerance: float) -> Exported:
    import onnx
    import onnxruntime as ort

    program = onnx_program(model, opset)
    external = sum(p.numel() * p.element_size() for p in model.parameters()) > ONNX_FILE_LIMIT
    with _staging(out) as tmp:
        staged = tmp / out.name
        try:
            with _quiet():
                program.save(str(staged), external_data=external)
            onnx.checker.check_model(str(staged), full_check=True)
        except Exception as e:
            raise ExportError(f"{out}: the exported graph is not valid ONNX: {_first_line(e)}") from None
        x, ref = _reference(model)
        try:
            got = ort_session(staged).run(None, {"pixel_values": x.numpy()})[0]
        except Exception as e:
            raise ExportError(f"{out}: ONNX Runtime cannot run the exported graph: {_first_line(e)}") from None
        rel = _rel_diff(torch.from_numpy(got), ref)
        _verify(rel, tolerance, "ONNX Runtime")
        opset_used = next((o.version for o in onnx.load(str(staged), load_external_data=False).opset_import
                           if o.domain in ("", "ai.onnx")), None)  # fmt: skip
        files = sorted(p.name for p in tmp.iterdir())
        for name in sorted(files, key=lambda n: n == out.name):  # external data first, the graph last
            _replace(tmp / name, out.parent / name)
    return Exported(out, "onnx", _display(model), model.config.img_size, model.config.num_classes,
                    f"ONNX opset {opset_used}, dynamic batch", f"onnxruntime {ort.__version__}", rel, tuple(files),
                    {"opset": opset_used, "input": "pixel_values", "output": "logits",
                     "external_data": external})  # fmt: skip


# --- transformers -----------------------------------------------------------------------------------------------


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
    BitImageProcessor (shorter side to size / crop_pct, centre crop), PIL resampling codes."""
    common = {"do_resize": True, "resample": 3 if pp.interpolation == "bicubic" else 2, "do_rescale": True,
              "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": list(pp.mean),
              "image_std": list(pp.std)}  # fmt: skip
    if pp.resize == "squash":
        return {"image_processor_type": "ViTImageProcessor", **common, "size": {"height": pp.img_size,
                "width": pp.img_size}}  # fmt: skip
    return {"image_processor_type": "BitImageProcessor", **common, "do_convert_rgb": True,
            "size": {"shortest_edge": math.floor(pp.img_size / pp.crop_pct)}, "do_center_crop": True,
            "crop_size": {"height": pp.img_size, "width": pp.img_size}}  # fmt: skip


def _export_transformers(model: nn.Module, out: Path, pp: Preprocess, tolerance: float) -> Exported:
    import transformers
    from safetensors.torch import save_file

    from vitzoo.convert.torch_formats import canonical_to_transformers

    config = model.config
    hf_config, cls_name = transformers_config(config)
    hf_config.architectures = [cls_name]
    bit = isinstance(config, BiTConfig)
    tensors = canonical_to_transformers(standardized_state_dict(model), bit)
    with _staging(out) as tmp:
        staged = tmp / out.name
        staged.mkdir()
        hf_config.save_pretrained(staged)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(staged / "model.safetensors"),
                  metadata={"format": "pt"})  # fmt: skip
        (staged / "preprocessor_config.json").write_text(json.dumps(preprocessor_config(pp), indent=2) + "\n")
        cls = getattr(transformers, cls_name)
        kwargs = {"add_pooling_layer": False} if cls_name == "ViTModel" and not config.representation_size else {}
        try:
            with _quiet():
                hf, info = cls.from_pretrained(staged, output_loading_info=True, **kwargs)
        except Exception as e:
            raise ExportError(f"{out}: transformers cannot load the export: {_first_line(e)}") from None
        bad = [k for key in ("missing_keys", "unexpected_keys", "mismatched_keys") for k in info.get(key) or ()]
        if bad:
            raise ExportError(f"{out}: transformers did not take every weight ({len(bad)} keys, e.g. {bad[0]})")
        x, ref = _reference(model)
        with torch.inference_mode():
            output = hf.eval()(pixel_values=x)
        got = output.logits if config.num_classes else _features(output, config)
        rel = _rel_diff(got, ref)
        _verify(rel, tolerance, f"transformers {cls_name}")
        files = tuple(sorted(p.name for p in staged.iterdir()))
        _replace(staged, out)
    processor = preprocessor_config(pp)["image_processor_type"]
    return Exported(out, "transformers", _display(model), config.img_size, config.num_classes,
                    f"transformers {cls_name}", f"transformers {transformers.__version__}", rel, files,
                    {"class": cls_name, "image_processor": processor})  # fmt: skip


def _features(output: Any, config: ModelConfig) -> torch.Tensor:
    """vitzoo's head-less output in a transformers ViTModel / BitModel output."""
    if isinstance(config, BiTConfig):
        return output.pooler_output.flatten(1)
    if config.representation_size:
        return output.pooler_output
    return output.last_hidden_state[:, 0]


# --- timm -------------------------------------------------------------------------------------------------------

TIMM_VIT_SIZES = {(192, 3): "tiny", (384, 6): "small", (768, 12): "base", (1024, 16): "large", (1280, 16): "huge"}
TIMM_HYBRIDS = {  # (ResNet stages, width) -> timm model
    ((), 192): "vit_tiny_r_s16_p8_224",
    ((2, 2, 2, 2), 384): "vit_small_r26_s32_224",
    ((2, 2, 2, 2), 768): "vit_base_r26_s32_224",
    ((3, 4, 9), 768): "vit_base_r50_s16_224",
    ((3, 4, 6, 3), 1024): "vit_large_r50_s32_224",
}
TIMM_BIT_DEPTHS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}


def timm_model(config: ModelConfig) -> tuple[str, dict[str, Any]]:
    """The timm model name for an architecture and the ``create_model`` kwargs that make it this very network
    with the original numerics (tanh GELU for ViTs; resolution, classes, pooling); ExportError where timm has none.

    ViT: ``vit_{tiny,small,base,large,huge}_patch{P}_224`` (the testing config: ``vit_base_patch16_224`` with its
    sizes as kwargs); hybrids: ``vit_tiny_r_s16_p8_224``, ``vit_{small,base}_r26_s32_224``, ``vit_base_r50_s16_224``,
    ``vit_large_r50_s32_224``; BiT: ``resnetv2_{50,101,152}x{1,2,3,4}_bit``.
    """
    if isinstance(config, BiTConfig):
        depth = TIMM_BIT_DEPTHS.get(config.layers)
        if depth is None:
            raise ExportError(f"timm has no BiT ResNet with stages {config.layers}; export to onnx or transformers")
        return f"resnetv2_{depth}x{config.width_factor}_bit", {"num_classes": config.num_classes}  # fully conv.
    if config.representation_size:
        raise ExportError("timm's VisionTransformer has no representation layer; drop it (--no-pre-logits)")
    kwargs: dict[str, Any] = {"img_size": config.img_size, "num_classes": config.num_classes,
                              "act_layer": "gelu_tanh"}  # fmt: skip
    if config.classifier == "gap":
        kwargs.update(class_token=False, global_pool="avg", fc_norm=False)  # LayerNorm before pooling, as vit_jax
    if config.backbone is not None:
        name = TIMM_HYBRIDS.get((config.backbone.layers, config.width))
        if name is None or config.backbone.width != 64:
            raise ExportError(f"timm has no hybrid with ResNet stages {config.backbone.layers} and width "
                              f"{config.width}; export to onnx")  # fmt: skip
        return name, kwargs
    size = TIMM_VIT_SIZES.get((config.width, config.num_heads))
    name = f"vit_{size or 'base'}_patch{config.patch_size}_224"
    if size is None or config.patch_size not in (8, 14, 16, 32):
        name = "vit_base_patch16_224"
        kwargs.update(patch_size=config.patch_size, embed_dim=config.width, num_heads=config.num_heads)
    kwargs.update(depth=config.depth, mlp_ratio=config.mlp_dim / config.width)
    return name, kwargs


def timm_pretrained_cfg(config: ModelConfig, pp: Preprocess, name: str) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` fields for this checkpoint (preprocessing, head, first conv)."""
    if isinstance(config, BiTConfig):
        first, classifier = "stem.conv", "head.fc"
    elif config.backbone is not None:
        first = "patch_embed.backbone.conv" if not config.backbone.layers else "patch_embed.backbone.stem.conv"
        classifier = "head"
    else:
        first, classifier = "patch_embed.proj", "head"
    crop_mode = "squash" if pp.resize == "squash" else "center"
    return {"architecture": name, "num_classes": config.num_classes, "input_size": [3, pp.img_size, pp.img_size],
            "fixed_input_size": not isinstance(config, BiTConfig), "interpolation": pp.interpolation,
            "crop_pct": pp.crop_pct, "crop_mode": crop_mode, "mean": list(pp.mean), "std": list(pp.std),
            "first_conv": first, "classifier": classifier}  # fmt: skip


def _export_timm(model: nn.Module, out: Path, pp: Preprocess, tolerance: float) -> Exported:
    from safetensors.torch import save_file

    from vitzoo.checkpoint import read_tensors
    from vitzoo.convert import convert_tensors
    from vitzoo.convert.torch_formats import canonical_to_timm
    from vitzoo.models import build_model

    config = model.config
    name, kwargs = timm_model(config)
    cfg = timm_pretrained_cfg(config, pp, name)
    bit = isinstance(config, BiTConfig)
    tensors = {k: v.contiguous() for k, v in canonical_to_timm(standardized_state_dict(model), bit).items()}
    info = {"model_name": name, "kwargs": kwargs, "pretrained_cfg": cfg}
    with _staging(out) as tmp:
        staged = tmp / out.name
        save_file(tensors, str(staged), metadata={"format": "pt", "timm_info": json.dumps(info)})
        x, ref = _reference(model)
        if importlib.util.find_spec("timm") is not None:
            got, checked = _run_timm(staged, name, kwargs, cfg, x), "timm"
        else:  # read back through vitzoo's timm reader (key names and shapes), then run what it rebuilt
            back = convert_tensors(read_tensors(staged)[0], expected=config)
            if back.source_format != "timm":
                raise ExportError(f"{out}: the written file is not read back as timm ({back.source_format})")
            with torch.device("meta"):
                rebuilt = build_model(config)
            rebuilt.load_state_dict(back.state_dict, strict=True, assign=True)
            with torch.inference_mode():
                got = rebuilt.eval()(x)
            checked = "vitzoo's timm reader (timm is not installed)"
        rel = _rel_diff(got, ref)
        _verify(rel, tolerance, "the timm file")
        _replace(staged, out)
    return Exported(out, "timm", _display(model), config.img_size, config.num_classes, f"timm {name}", checked,
                    rel, (out.name,), info)  # fmt: skip


def timm_overlay(path: str | os.PathLike, pretrained_cfg: dict[str, Any]) -> dict[str, Any]:
    """``pretrained_cfg_overlay`` for ``timm.create_model``: the file and its cfg (whose ``num_classes`` keeps timm
    from dropping a head whose size differs from the named model's default)."""
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in pretrained_cfg.items() if k != "architecture"}
    return {"file": str(path), **cfg}


def _run_timm(path: Path, name: str, kwargs: dict[str, Any], cfg: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    """Build the timm model from the file the way a user would, and run it."""
    import timm

    try:
        with _quiet():
            net = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=timm_overlay(path, cfg), **kwargs)
    except Exception as e:
        raise ExportError(f"timm cannot load the export as {name}: {_first_line(e)}") from None
    with torch.inference_mode():
        return net.eval()(x)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]
