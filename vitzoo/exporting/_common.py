"""What every export format shares: the result type, the destination checks, the staged write and the move into
place (the logit check is ``vitzoo.exporting.check``)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitzoo.errors import VitzooError
from vitzoo.models.layers import StdConv2d
from vitzoo.zoo.checkpoint import checkpoint_of, label_of
from vitzoo.zoo.preprocess import Preprocess, describe_preprocess


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


_EXTRAS = {
    "onnx": (("onnx", "onnxscript", "onnxruntime"), "pip install 'vitzoo[onnx]'"),
    "transformers": (("transformers",), "pip install transformers"),
    "timm": ((), ""),
}


def require(format: str) -> None:
    modules, how = _EXTRAS[format]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"exporting to {format} needs {', '.join(missing)}: {how}")


def check_destination(out: Path, format: str, force: bool) -> None:
    """Refuse an existing OUT (without force), a wrong kind of path, or a parent that cannot be written."""
    if format == "onnx" and out.suffix != ".onnx":
        raise ExportError(f"{out}: an ONNX export must be a .onnx file")
    if format == "timm" and out.suffix != ".safetensors":
        raise ExportError(f"{out}: a timm export must be a .safetensors file")
    if format == "transformers" and out.suffix in (".onnx", ".safetensors", ".bin"):
        raise ExportError(f"{out}: a transformers export is a directory, not a {out.suffix} file")
    if out.exists() or out.is_symlink():
        if not force:
            raise ExportError(f"{out} exists; pass force=True to overwrite it")
        if format == "transformers" and not out.is_dir():
            raise ExportError(f"{out} exists and is not a directory")
        if format != "transformers" and out.is_dir():
            raise ExportError(f"{out} is a directory")
    parent = out.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(f"{out}: cannot write to {existing or parent}")


@contextmanager
def staging(out: Path) -> Iterator[Path]:
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


@contextmanager
def writing(out: Path) -> Iterator[None]:
    """Errors while writing a staged export (a full disk: an OSError, or safetensors' own error) as one line; the
    staging directory is removed by ``staging``, so nothing partial is left."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, SafetensorError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else (str(e).splitlines() or [type(e).__name__])[0]
        raise ExportError(f"{out}: writing the export failed ({why}); nothing was written") from None


def move_into_place(src: Path, dst: Path) -> None:
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


def move_export(src: Path, out: Path, files: tuple[str, ...]) -> None:
    """Move a checked export into place: a directory (transformers) as one, or a file and the companions it names
    in ``files`` (ONNX external data), which go first, from ``src``'s directory to ``out``'s, ``out`` itself last."""
    if src.is_dir():
        move_into_place(src, out)
        return
    for name in sorted(files, key=lambda n: n == out.name):
        move_into_place(src.parent / name, out.parent / name)


def standardized_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The canonical state dict with every StdConv kernel replaced by the kernel it convolves with."""
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, StdConv2d):
                sd[f"{name}.weight"] = m.standardized_weight().detach().contiguous()
    return sd


def checkpoint_labels(model: nn.Module) -> tuple[str | None, tuple[str, ...] | None]:
    """(label space, class names) of a model's head, from ``model.checkpoint`` (None, None when it has none)."""
    checkpoint = checkpoint_of(model)
    if checkpoint is None:
        return None, None
    return checkpoint.label_space, checkpoint.labels


def preprocess_metadata(model: nn.Module, pp: Preprocess) -> dict[str, str]:
    """What a runtime needs besides the graph, as strings (ONNX ``metadata_props``): the preprocessing fields
    (``img_size``, ``resize`` "tf"|"squash"|"shorter", ``crop_pct``, ``interpolation``, ``mean``/``std`` as JSON
    lists, for [0, 1] pixels), the input layout, and the head's ``label_space`` and ``labels`` (a JSON list of names,
    index = class) where known. README's "Use a model" section shows how to apply them."""
    space, labels = checkpoint_labels(model)
    out = {
        "vitzoo.model": display_name(model),
        "img_size": str(pp.img_size),
        "resize": pp.resize,
        "crop_pct": repr(pp.crop_pct),
        "interpolation": pp.interpolation,
        "mean": json.dumps(list(pp.mean)),
        "std": json.dumps(list(pp.std)),
        "preprocess": describe_preprocess(pp),
        "input": "pixel_values: float32 NCHW RGB, (pixels / 255 - mean) / std",
        "num_classes": str(model.config.num_classes),
        "label_space": space or "none",
    }
    if labels is not None:
        out["labels"] = json.dumps(list(labels), ensure_ascii=False)
    return out


def display_name(model: nn.Module) -> str:
    return label_of(model)


@contextmanager
def quiet(*names: str) -> Iterator[None]:
    """Silence the exporter's progress lines and warnings, and those of the loggers ``names`` (library code never
    prints)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", *names)]
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
