"""Reading any supported weight file safely, and writing vitzoo's own safetensors atomically.

Nothing here unpickles: ``.npz`` is read with ``allow_pickle=False``, PyTorch ``.bin`` files with
``torch.load(weights_only=True)``. The container is recognised from its bytes, never from the file name.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vitzoo.errors import VitzooError
from vitzoo.files import unwritable_reason
from vitzoo.zoo.configs import BiTConfig, HybridConfig, ModelConfig, ViTConfig

FORMAT_VERSION = "1"


class CheckpointError(VitzooError):
    """A weight file that cannot be read, or whose contents do not fit the model."""


class OutputError(VitzooError):
    """A file that cannot be written where it was asked for (read-only, not a directory, a directory, ...)."""


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
    raise CheckpointError(f"{path}: not a weight file vitzoo can read (expected .npz, safetensors or PyTorch)")


def check_finite(tensors: dict[str, torch.Tensor], where: str) -> None:
    """Refuse weights containing NaN or Inf, naming the first offending tensor."""
    for key, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{where}: tensor {key!r} contains NaN or Inf")


def config_to_json(config: ModelConfig) -> str:
    """Serialise a model config (kind + fields) for the safetensors metadata."""
    kind = "vit" if isinstance(config, ViTConfig) else "bit"
    return json.dumps({"kind": kind, **dataclasses.asdict(config)}, sort_keys=True)


def config_from_json(text: str) -> ModelConfig:
    """Inverse of ``config_to_json``."""
    data = json.loads(text)
    kind = data.pop("kind")
    if kind == "bit":
        return BiTConfig(**{**data, "layers": tuple(data["layers"])})
    backbone = data.pop("backbone")
    if backbone is not None:
        backbone = HybridConfig(**{**backbone, "layers": tuple(backbone["layers"])})
    return ViTConfig(**data, backbone=backbone)


def default_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the process umask (mkstemp's 0o600 would ignore it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:  # reading it does not change the umask
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def check_writable(dst: str | os.PathLike) -> None:
    """Raise ``OutputError`` (one line) unless a file can be written at ``dst``."""
    if why := unwritable_reason(dst):
        raise OutputError(f"{dst}: {why}")


@contextmanager
def atomic_path(dst: str | os.PathLike):
    """Yield a temporary path beside ``dst``; on success it replaces ``dst`` atomically, else it is removed.

    The file gets the umask's default mode (as ``open()`` would give it), so a shared cache stays shared;
    a location that cannot be written raises ``OutputError``.
    """
    dst = Path(dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"{dst}: {unwritable_reason(dst) or e.strerror or type(e).__name__}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, dst)
    except OSError as e:
        why = "is a directory" if isinstance(e, IsADirectoryError) else f"writing failed ({e.strerror or e!r})"
        raise OutputError(f"{dst}: {why}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
