"""Test helper: a real huggingface_hub cache on disk, laid out exactly as hf_hub_download writes it."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch
from jax_writer import vit_jax_arrays

import vitzoo

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def add_file(cache: Path, repo_id: str, filename: str, data: bytes, revision: str = "main") -> Path:
    """models--org--name/{blobs/<sha256>, refs/<revision>, snapshots/<commit>/<filename> -> blob}."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    sha = hashlib.sha256(data).hexdigest()
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "blobs" / sha).write_bytes(data)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / filename).symlink_to(Path("../../blobs") / sha)
    return snapshot / filename


def make_testing_checkpoint() -> tuple[bytes, dict[str, torch.Tensor]]:
    """The `testing.random-10cls` checkpoint as the registry expects it: a vit_jax .npz, and its weights."""
    torch.manual_seed(1)
    model = vitzoo.create("testing")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    sd = model.state_dict()
    buffer = io.BytesIO()
    np.savez(buffer, **vit_jax_arrays(sd, model.config.num_heads))
    return buffer.getvalue(), sd


def use_offline_hub(tmp_path: Path, monkeypatch) -> None:
    """HF_HUB_OFFLINE=1 with a Hub cache (under ``tmp_path``) holding the `testing` checkpoint, and a fresh
    VITZOO_CACHE: `vitzoo.load("testing")` then works without a network."""
    import huggingface_hub.constants as hf

    hf_cache = tmp_path / "hf"
    data, _ = make_testing_checkpoint()
    add_file(hf_cache, "vitzoo/testing", "testing.npz", data)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    for key, value in {"HF_HUB_CACHE": hf_cache, "HF_HUB_OFFLINE": "1", "VITZOO_CACHE": tmp_path / "vz"}.items():
        monkeypatch.setenv(key, str(value))
