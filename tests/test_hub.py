"""Loading by name through a real huggingface_hub cache, offline: conversion once, concurrency, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hubcache import add_file, make_testing_checkpoint

import vitzoo
import vitzoo.sources
from vitzoo.checkpoint import CheckpointError
from vitzoo.cli import main
from vitzoo.hub import HubError


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 with a Hub cache holding the `testing` checkpoint; an empty vitzoo cache."""
    import huggingface_hub.constants as hf

    hf_cache, vz_cache = tmp_path / "hf", tmp_path / "vitzoo"
    data, sd = make_testing_checkpoint()
    add_file(hf_cache, "vitzoo/testing", "testing.npz", data)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    for key, value in {"HF_HUB_CACHE": hf_cache, "HF_HUB_OFFLINE": "1", "VITZOO_CACHE": vz_cache}.items():
        monkeypatch.setenv(key, str(value))
    return hf_cache, vz_cache, sd


def _converted(vz_cache: Path) -> list[Path]:
    return sorted((vz_cache / "converted").rglob("*.safetensors"))


def test_load_by_name(offline_hub):
    _, vz_cache, sd = offline_hub
    model = vitzoo.load("testing")
    assert model.name == "testing.random-10cls" and not model.training
    assert model.preprocess == vitzoo.get_spec("testing").get_weights().preprocess
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, sd[key], rtol=0, atol=0)
    [path] = _converted(vz_cache)
    assert path.parts[-3:-1] == ("models--vitzoo--testing", "0123456789abcdef0123456789abcdef01234567")


def test_second_load_uses_the_converted_cache(offline_hub, monkeypatch):
    _, vz_cache, _ = offline_hub
    first = vitzoo.load("testing.random-10cls")
    [path] = _converted(vz_cache)
    stamp = path.stat().st_mtime_ns

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(vitzoo.sources, "convert_file", no_conversion)
    second = vitzoo.load("testing", img_size=32, dtype="bf16")
    assert path.stat().st_mtime_ns == stamp
    assert second.pos_embed.dtype == torch.bfloat16 and second.config.img_size == 32
    torch.testing.assert_close(second.head.weight.float(), first.head.weight.bfloat16().float())


def test_two_processes_load_the_same_model_at_once(offline_hub):
    _, vz_cache, _ = offline_hub
    code = "import vitzoo; m = vitzoo.load('testing'); print(m.name, sum(p.numel() for p in m.parameters()))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {"testing.random-10cls 10500"}
    assert len(_converted(vz_cache)) == 1
    assert not [p for p in (vz_cache / "converted").rglob("*") if p.name.endswith(".tmp")]


def test_offline_without_a_cached_copy_is_one_clear_line(offline_hub):
    with pytest.raises(HubError) as e:
        vitzoo.load("vit-b16")
    message = str(e.value)
    assert "google/vit-base-patch16-224" in message and "vitzoo download" in message and "HF_HUB_OFFLINE" in message
    result = CliRunner().invoke(main, ["download", "vit-b16"])
    assert result.exit_code == 1 and "google/vit-base-patch16-224" in result.stderr


def test_failed_conversion_leaves_nothing_in_the_cache(offline_hub, monkeypatch):
    hf_cache, vz_cache, _ = offline_hub
    import shutil

    shutil.rmtree(hf_cache / "models--vitzoo--testing")
    add_file(hf_cache, "vitzoo/testing", "testing.npz", b"PK\x03\x04 not really a zip file")
    with pytest.raises(CheckpointError, match=r"corrupt|not a weight file"):
        vitzoo.load("testing")
    assert _converted(vz_cache) == []
    assert not [p for p in vz_cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def test_download_and_cache_commands(offline_hub):
    _, vz_cache, _ = offline_hub
    runner = CliRunner()
    result = runner.invoke(main, ["download", "testing"])
    assert result.exit_code == 0 and "testing.random-10cls" in result.stderr
    listing = runner.invoke(main, ["cache", "list", "--json"])
    assert '"name": "testing.random-10cls"' in listing.stdout
    assert runner.invoke(main, ["cache", "clean"]).exit_code == 1  # needs names or --all
    cleaned = runner.invoke(main, ["cache", "clean", "testing"])
    assert cleaned.exit_code == 0 and _converted(vz_cache) == []
