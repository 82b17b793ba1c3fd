"""Loading by name through a real huggingface_hub cache, offline: conversion once, concurrency, errors."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hubcache import add_file, make_testing_checkpoint

import vitzoo
import vitzoo.weights.hub
import vitzoo.weights.sources
from vitzoo.cli import main
from vitzoo.weights.checkpoint import CheckpointError
from vitzoo.weights.hub import HubError


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

    monkeypatch.setattr(vitzoo.weights.sources, "convert_file", no_conversion)
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
    hidden = runner.invoke(main, ["download", "test*"])  # a pattern never matches the hidden test fixture
    assert hidden.exit_code == 1 and hidden.stderr.strip() == "error: no model matches 'test*'; see `vitzoo list`"
    result = runner.invoke(main, ["download", "testing"])  # its name does
    assert result.exit_code == 0 and "testing.random-10cls" in result.stderr
    nothing = runner.invoke(main, ["download", "zzz*"])
    assert nothing.exit_code == 1 and nothing.stderr.strip() == "error: no model matches 'zzz*'; see `vitzoo list`"
    listing = runner.invoke(main, ["cache", "list", "--json"])
    assert '"name": "testing.random-10cls"' in listing.stdout
    assert runner.invoke(main, ["cache", "clean"]).exit_code == 1  # needs names or --all
    cleaned = runner.invoke(main, ["cache", "clean", "testing"])
    assert cleaned.exit_code == 0 and _converted(vz_cache) == []


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unreachable_hub(tmp_path, monkeypatch):
    """A Hub endpoint that refuses connections (a closed local port), HF_HUB_OFFLINE unset, empty caches."""
    import huggingface_hub.constants as hf

    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf, "ENDPOINT", endpoint)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for key, value in {
        "HF_ENDPOINT": endpoint,
        "HF_HUB_CACHE": tmp_path / "hf",
        "VITZOO_CACHE": tmp_path / "vz",
    }.items():
        monkeypatch.setenv(key, str(value))
    return endpoint


def test_unreachable_hub_fails_fast_with_one_line(unreachable_hub, capfd):
    start = time.perf_counter()
    with pytest.raises(HubError) as e:
        vitzoo.load("vit-b16")
    assert time.perf_counter() - start < 5  # was ~23-30 s of huggingface_hub retries
    assert capfd.readouterr().err == ""  # and no retry lines
    message = str(e.value)
    assert "unreachable" in message and unreachable_hub in message and "\n" not in message
    assert "vitzoo download vit-b16" in message  # from the library, the remedy is to pre-fetch
    cli = subprocess.run([sys.executable, "-m", "vitzoo", "download", "vit-b16"], env=dict(os.environ),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    lines = cli.stderr.strip().splitlines()
    assert cli.returncode == 1 and len(lines) == 1 and "unreachable" in lines[0], cli.stderr
    assert "vitzoo download" not in lines[0]  # inside `vitzoo download`, that hint would be circular


def test_unreachable_hub_still_loads_what_is_cached(offline_hub, monkeypatch):
    import huggingface_hub.constants as hf

    vitzoo.load("testing")  # converted once into vitzoo's cache
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hf, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    start = time.perf_counter()
    model = vitzoo.load("testing")
    assert model.name == "testing.random-10cls" and time.perf_counter() - start < 5


def test_a_read_only_cache_still_serves_what_it_holds(offline_hub, monkeypatch):
    _, vz_cache, _ = offline_hub
    vitzoo.load("testing")  # converted into the cache
    for path in [vz_cache, *vz_cache.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway: make the probe see what a user would
        monkeypatch.setattr(vitzoo.weights.hub, "unwritable_reason", lambda dst: "cannot write (read-only)")
    try:
        assert vitzoo.load("testing").name == "testing.random-10cls"
        assert vitzoo.weights.hub.cache_problem("converted")  # the cache is seen as read-only, yet serves its files
    finally:
        for path in [vz_cache, *vz_cache.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)


@contextlib.contextmanager
def read_only_mount(folder: Path):
    """``folder`` bind-mounted read-only onto itself (root included cannot write there); skipped where mounting is
    not permitted (not root, no CAP_SYS_ADMIN)."""
    mount = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mount.stderr.strip() or mount.returncode}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True, text=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {remount.stderr.strip()}")
        with pytest.raises(OSError):
            (folder / "probe").write_bytes(b"")
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)  # a loaded model may still map its file


def _tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize("leftover_lock", [False, True], ids=["no-lock-file", "lock-file-left"])
def test_a_read_only_mounted_cache_serves_download_and_load(offline_hub, tmp_path, leftover_lock):
    """A cluster's shared VITZOO_CACHE, read-only, already holding the converted file: `vitzoo download` and
    `vitzoo.load` (by name, and of a file in it) read it without creating anything (no lock file)."""
    _, vz_cache, sd = offline_hub
    vitzoo.load("testing")
    for lock in vz_cache.rglob("*.lock"):
        if not leftover_lock:
            lock.unlink()
    [converted] = _converted(vz_cache)
    before = _tree(vz_cache)
    with read_only_mount(vz_cache):
        result = CliRunner().invoke(main, ["download", "testing"])
        assert result.exit_code == 0 and str(converted) in result.stderr, result.output
        model = vitzoo.load("testing")
        assert vitzoo.load(converted).name == str(converted)
        assert _tree(vz_cache) == before
    torch.testing.assert_close(model.state_dict()["head.weight"], sd["head.weight"], rtol=0, atol=0)


def test_a_complete_cache_takes_no_lock(offline_hub, monkeypatch):
    """Wherever mounting is not allowed: reading a converted checkpoint never opens a lock (or anything) for writing."""
    import filelock

    vitzoo.load("testing")

    class NoLock:
        def __init__(self, *args, **kwargs):
            raise PermissionError(13, "Permission denied (read-only cache)")

    monkeypatch.setattr(filelock, "FileLock", NoLock)
    assert vitzoo.load("testing").name == "testing.random-10cls"
    assert CliRunner().invoke(main, ["download", "testing"]).exit_code == 0
