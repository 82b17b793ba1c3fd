"""Reading any supported weight file safely, and writing vitzoo's own safetensors atomically.

Nothing here unpickles: ``.npz`` is read with ``allow_pickle=False``, PyTorch ``.bin`` files with
``torch.load(weights_only=True)``. The container is recognised from its bytes, never from the file name.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vitzoo.errors import CheckpointError, VitzooError  # noqa: F401 (re-exported)
from vitzoo.files import OutputError, atomic_path, default_file_mode, unwritable_reason  # noqa: F401 (re-exported)
from vitzoo.zoo.checkpoint import refuse_url
from vitzoo.zoo.configs import BiTConfig, HybridConfig, ModelConfig, ViTConfig, config_from_json, config_to_json  # noqa: F401 (re-exported)

FORMAT_VERSION = "1"


def sniff(path: Path) -> str:
    """'npz', 'torch' (PyTorch zip), 'safetensors' or 'unknown', from the first bytes of the file."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile:
            return "unknown"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        return "unknown"
    if len(head) >= 9:
        size = int.from_bytes(head[:8], "little")
        if 0 < size < 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    return "unknown"


def read_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors of a weight file (float32 unless stored otherwise) and its safetensors metadata."""
    refuse_url(path)
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a weight file")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    kind = sniff(path)
    try:
        if kind == "npz":
            with np.load(path, allow_pickle=False) as npz:
                return {k: torch.from_numpy(np.array(npz[k])) for k in npz.files}, {}
        if kind == "safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                metadata = f.metadata() or {}
            return load_file(str(path)), metadata
        if kind == "torch":
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
                obj = obj["state_dict"]
            if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
                raise CheckpointError(f"{path}: a PyTorch file that is not a state dict of tensors")
            return obj, {}
    except CheckpointError:
        raise
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: holds objects other than tensors; refusing to unpickle it") from None
    except (OSError, ValueError, RuntimeError, EOFError, zipfile.BadZipFile, SafetensorError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: truncated or corrupt {kind} file ({first})") from None
    what = what_file(path)
    if what.startswith("a truncated"):
        raise CheckpointError(f"{path}: {what}; copy or download it again")
    raise CheckpointError(f"{path}: {what}, not a weight file; {READABLE}")


READABLE = ("vitzoo reads vit_jax/BiT .npz, safetensors (vitzoo, timm, transformers) and PyTorch .bin/.pth state "
            "dicts")  # fmt: skip
_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"%PDF": "a PDF",
          b"\x1f\x8b": "a gzip file", b"BZh": "a bzip2 file",
          b"\x89HDF": "an HDF5 file (Keras/TF weights?)"}  # fmt: skip


def what_file(path: Path) -> str:
    """What a file that is no weight file vitzoo reads looks like, from its first bytes (for the error message)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head:
        return "an empty file"
    if head[:4] == b"PK\x03\x04":
        return "a truncated or corrupt zip archive (an .npz or PyTorch file cut short?)"
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the end of the block
            return "a binary file of an unknown kind"
    return "a text file"


def check_finite(tensors: dict[str, torch.Tensor], where: str) -> None:
    """Refuse weights containing NaN or Inf, naming the first offending tensor."""
    for key, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{where}: tensor {key!r} contains NaN or Inf")


def check_writable(dst: str | os.PathLike) -> None:
    """Raise ``OutputError`` (one line) unless a file can be written at ``dst``."""
    if why := unwritable_reason(dst):
        raise OutputError(f"{dst}: {why}")


def save_vitzoo(
    path: str | os.PathLike,
    state_dict: dict[str, torch.Tensor],
    config: ModelConfig,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write canonical weights + config metadata as safetensors, atomically. The file alone rebuilds the model."""
    metadata = {"format": "vitzoo", "format_version": FORMAT_VERSION, "config": config_to_json(config)}
    metadata.update({k: str(v) for k, v in (extra or {}).items()})
    tensors = {k: v.detach().contiguous() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as e:  # its I/O errors (a full disk) are not OSErrors
            raise OutputError(f"{path}: writing failed ({str(e).splitlines()[0]})") from None
    return Path(path)
