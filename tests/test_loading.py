"""vitzoo.load on files: resolution, heads, representation layer, dtype; downloads of original URLs."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import stat
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from jax_writer import save_npz, vit_jax_arrays

import vitzoo
from vitzoo.cli import main
from vitzoo.errors import ConfigError, VitzooError
from vitzoo.models import build_model
from vitzoo.weights.checkpoint import default_file_mode, save_vitzoo
from vitzoo.weights.hub import HubError, download_url
from vitzoo.weights.loading import ZeroHeadWarning
from vitzoo.zoo.configs import ViTConfig
from vitzoo.zoo.preprocess import Preprocess

IN21K_LIKE = ViTConfig(8, 32, 1, 4, 48, img_size=32, num_classes=6, representation_size=32)


@pytest.fixture
def npz(tmp_path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = build_model(IN21K_LIKE)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    sd = model.state_dict()
    return save_npz(vit_jax_arrays(sd, IN21K_LIKE.num_heads), tmp_path / "m.npz"), sd


def test_loads_eval_mode_with_exact_weights(npz):
    path, sd = npz
    model = vitzoo.load(path)
    assert not model.training and model.name == str(path) and model.preprocess == Preprocess(32, resize="tf")
    assert model.preprocess_source == "default for a vit file: it names no registry tag"
    for key, value in model.state_dict().items():
        assert torch.equal(value, sd[key]), key


def test_img_size_resizes_posemb_like_vit_jax(npz):
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    path, sd = npz
    model = vitzoo.load(path, img_size=48)
    assert model.pos_embed.shape == (1, 1 + 36, 32)
    assert torch.equal(model.pos_embed[:, :1], sd["pos_embed"][:, :1])  # class token kept apart
    grid = sd["pos_embed"][0, 1:].reshape(4, 4, 32).double().numpy()
    expected = scipy_ndimage.zoom(grid, (6 / 4, 6 / 4, 1), order=1)
    np.testing.assert_allclose(model.pos_embed[0, 1:].reshape(6, 6, 32).detach().numpy(), expected, atol=1e-6)
    assert model(torch.randn(1, 3, 48, 48)).shape == (1, 6)
    bicubic = vitzoo.load(path, img_size=48, posemb_interp="bicubic")
    assert not torch.allclose(bicubic.pos_embed, model.pos_embed)


def test_new_head_is_zero_initialised(npz):
    path, sd = npz
    model = vitzoo.load(path, num_classes=3)
    assert model.head.weight.shape == (3, 32) and not model.head.weight.any() and not model.head.bias.any()
    assert torch.equal(model.pre_logits.fc.weight, sd["pre_logits.fc.weight"])


def test_feature_extractor_and_dropping_pre_logits(npz):
    path, _ = npz
    x = torch.randn(2, 3, 32, 32)
    features = vitzoo.load(path, num_classes=0)
    full = vitzoo.load(path)
    torch.testing.assert_close(features(x), full.forward_head(full.forward_features(x), pre_logits=True))
    bare = vitzoo.load(path, num_classes=0, pre_logits=False)
    assert isinstance(bare.pre_logits, torch.nn.Identity)
    torch.testing.assert_close(bare(x), full.forward_features(x)[:, 0])
    with pytest.warns(ZeroHeadWarning):  # the old head read pre-logits: it is replaced by a zero head
        refit = vitzoo.load(path, pre_logits=False)
    assert refit.head.weight.shape == (6, 32) and not refit.head.weight.any()


def test_zeroed_head_warns(npz, tmp_path):
    _, sd = npz
    arrays = vit_jax_arrays({**sd, "head.weight": torch.zeros(6, 32), "head.bias": torch.zeros(6)}, 4)
    with pytest.warns(ZeroHeadWarning, match="num_classes=0"):
        vitzoo.load(save_npz(arrays, tmp_path / "zero.npz"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vitzoo.load(tmp_path / "zero.npz", num_classes=0)  # asking for features: no warning


def test_dtype_and_bad_arguments(npz):
    path, _ = npz
    assert vitzoo.load(path, dtype="bf16").pos_embed.dtype == torch.bfloat16
    assert vitzoo.load(path, dtype=torch.float16, device="cpu").head.weight.dtype == torch.float16
    with pytest.raises(ConfigError, match="unknown dtype"):
        vitzoo.load(path, dtype="int3")
    with pytest.raises(ConfigError, match="posemb_interp"):
        vitzoo.load(path, posemb_interp="nearest")
    with pytest.raises(ConfigError, match="multiple of the patch size"):
        vitzoo.load(path, img_size=33)


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one payload, honouring `Range: bytes=N-`; can be told to cut the first response short."""

    payload = b""
    cut_first = False

    def do_GET(self):
        start = 0
        if rng := self.headers.get("Range"):
            start = int(rng.removeprefix("bytes=").rstrip("-"))
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if type(self).cut_first:
            type(self).cut_first = False
            self.wfile.write(body[: len(body) // 3])
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_resumes_and_checks(server, tmp_path):
    _RangeHandler.payload = bytes(range(256)) * 4000
    sha = hashlib.sha256(_RangeHandler.payload).hexdigest()
    _RangeHandler.cut_first = True
    with pytest.raises(HubError, match="run again to resume"):
        download_url(f"{server}/ViT-Ti_16.npz", tmp_path, sha)
    part = tmp_path / "ViT-Ti_16.npz.part"
    assert 0 < part.stat().st_size < len(_RangeHandler.payload)
    seen = []
    path = download_url(f"{server}/ViT-Ti_16.npz", tmp_path, sha, progress=lambda done, total: seen.append(total))
    assert path.read_bytes() == _RangeHandler.payload and not part.exists()
    assert seen[-1] == len(_RangeHandler.payload)
    with pytest.raises(HubError, match="sha256 mismatch"):
        download_url(f"{server}/other.npz", tmp_path, "0" * 64)
    assert not (tmp_path / "other.npz").exists() and not (tmp_path / "other.npz.part").exists()


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """Serves one payload in slow pieces and counts the GET requests it answered."""

    payload = bytes(range(256)) * 400
    gets = 0

    def do_GET(self):
        type(self).gets += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        for i in range(0, len(self.payload), len(self.payload) // 8):
            self.wfile.write(self.payload[i : i + len(self.payload) // 8])
            self.wfile.flush()
            time.sleep(0.05)

    def log_message(self, *args):
        pass


def test_concurrent_downloads_of_one_url_are_serialised(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/ViT-Ti_16.npz"
    sha = hashlib.sha256(_SlowHandler.payload).hexdigest()
    try:
        with ThreadPoolExecutor(2) as pool:  # two converts of one URL at once
            paths = list(pool.map(lambda _: download_url(url, tmp_path, sha), range(2)))
    finally:
        httpd.shutdown()
    assert paths[0] == paths[1] and paths[0].read_bytes() == _SlowHandler.payload
    assert _SlowHandler.gets == 1  # the second waited for the lock, then found the finished file
    assert not (tmp_path / "ViT-Ti_16.npz.part").exists()


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_written_files_get_the_umask_default_mode(npz, tmp_path, umask):
    path, _ = npz
    old = os.umask(umask)
    try:
        assert default_file_mode() == 0o666 & ~umask
        result = CliRunner().invoke(main, ["convert", str(path), str(tmp_path / "o.safetensors")])
        save_vitzoo(tmp_path / "sub" / "w.safetensors", {"x": torch.zeros(2)}, IN21K_LIKE)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    for written in (tmp_path / "o.safetensors", tmp_path / "sub" / "w.safetensors"):
        assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask, written  # as open() would create it


def test_readme_markdown_is_not_escaped():
    """GitHub renders \\` literally: the README (its weights section was written so) must use plain backticks."""
    text = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert "\\`" not in text
    assert sum(line.startswith("```") for line in text.splitlines()) % 2 == 0  # every code fence is closed
    assert "## Pretrained weights: loading and converting\n\n```python\n" in text


def test_absurd_sizes_are_refused_before_allocating(npz, monkeypatch):
    path, _ = npz
    with pytest.raises(ConfigError, match=r"GiB of memory needed"):
        vitzoo.load(path, img_size=8 * 400_000)  # 1.6e11 position embeddings: refused, not allocated
    with pytest.raises(ConfigError, match=r"vit-b16 at img_size=1600000 .* GiB of memory needed"):
        vitzoo.load("vit-b16", img_size=1_600_000)  # before any download
    with pytest.raises(ConfigError, match=r"GiB of memory needed"):
        vitzoo.create("vit-b16", img_size=1_600_000)
    with torch.device("meta"):  # the meta device allocates nothing, so nothing to refuse
        assert vitzoo.create("vit-b16", img_size=1_600_000).pos_embed.is_meta
    monkeypatch.setattr(vitzoo.machine, "available_ram", lambda: 10_000)  # the estimate is the parameter count
    with pytest.raises(ConfigError, match=r"testing at img_size=224 with 10 classes has 10,500 parameters: about 0.0"):
        vitzoo.create("testing")
    monkeypatch.setattr(vitzoo.machine, "available_ram", lambda: None)  # unknown: not checked
    assert vitzoo.create("testing").config.img_size == 224


def test_a_weight_file_is_a_file_by_one_rule_everywhere(tmp_path, monkeypatch):
    """An extensionless weight file (`tiny`) is a file for load, export and every command, not an unknown model;
    a folder that is also a registry name does not hide the model (issue 20)."""
    from click.testing import CliRunner

    from vitzoo.cli import main
    from vitzoo.weights.checkpoint import save_vitzoo

    model = vitzoo.create("testing", img_size=32)
    torch.nn.init.normal_(model.head.weight)  # a head whose logits vary: no zero-head warning
    save_vitzoo(tmp_path / "tiny", model.state_dict(), model.config)
    (tmp_path / "testing").mkdir()
    monkeypatch.chdir(tmp_path)
    loaded = vitzoo.load("tiny")
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    commands = (
        ["flops", "tiny"],
        ["inspect", "tiny", "--out", str(tmp_path / "inspect")],
        ["export", "tiny", str(tmp_path / "tiny-timm.safetensors"), "--format", "timm"],
    )
    for args in commands:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
        assert "unknown model" not in result.output
    assert vitzoo.create("testing").config.img_size == 224  # the registry name still wins over the folder


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: vitzoo.get_spec(None), "a model is named by a string such as 'vit-b16'"),
        (lambda: vitzoo.load(3), "a model is named by a string such as 'vit-b16'"),
        (lambda: vitzoo.create(None), "a model is named by a string such as 'vit-b16'"),
        (lambda: vitzoo.load("testing", device="gpu"), "device must be cpu, cuda, cuda:N or mps, not 'gpu'"),
    ],
    ids=["get_spec(None)", "load(3)", "create(None)", "load(device=gpu)"],
)
def test_api_mistakes_are_vitzoo_errors(call, message):
    with pytest.raises(VitzooError, match=re.escape(message)):
        call()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_load_on_cuda_without_cuda_is_one_config_error(tmp_path):
    model = build_model(ViTConfig(patch_size=8, width=16, depth=1, num_heads=2, mlp_dim=16, img_size=16, num_classes=3))
    path = save_vitzoo(tmp_path / "m.safetensors", model.state_dict(), model.config)
    with pytest.raises(ConfigError, match=r"device 'cuda' is not available"):
        vitzoo.load(path, device="cuda")
