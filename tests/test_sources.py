"""Sources in order and their failures (404, 403, offline, checksum mismatch), and lock files, against a local
HTTP server on 127.0.0.1 and a real huggingface_hub cache on disk."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import warnings
from dataclasses import replace
from typing import ClassVar

import pytest
import torch
from click.testing import CliRunner
from hubcache import COMMIT, add_file, make_testing_checkpoint

import vitzoo
import vitzoo.weights.sources
import vitzoo.zoo.lookup
from vitzoo.cli import main
from vitzoo.models import build_model
from vitzoo.weights.checkpoint import CheckpointError
from vitzoo.weights.convert import Converted
from vitzoo.weights.lock import LockError, read_lock
from vitzoo.weights.sources import SourceFallbackWarning, SourcesError, fetch_checkpoint, fit_to_registry
from vitzoo.zoo.catalog import TESTING
from vitzoo.zoo.preprocess import Preprocess
from vitzoo.zoo.registry import HubFile, ModelSpec, Registry, UrlFile, Weights


class _Handler(http.server.BaseHTTPRequestHandler):
    """path -> (status, body); every request is counted by path."""

    routes: ClassVar[dict[str, tuple[int, bytes]]] = {}
    hits: ClassVar[dict[str, int]] = {}

    def do_GET(self):
        type(self).hits[self.path] = type(self).hits.get(self.path, 0) + 1
        status, body = type(self).routes.get(self.path, (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):  # the Hub's metadata request, when a test points HF_ENDPOINT here
        type(self).hits[self.path] = type(self).hits.get(self.path, 0) + 1
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """A local server, a Hub cache with vitzoo/testing, a registry whose `testing` tags use both, offline Hub."""
    import huggingface_hub.constants as hf

    data, sd = make_testing_checkpoint()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    server = f"http://127.0.0.1:{httpd.server_address[1]}"
    _Handler.hits = {}
    _Handler.routes = {"/testing.npz": (200, data), "/forbidden.npz": (403, b"denied"), "/other.npz": (200, b"PK x")}
    hf_cache, vz_cache = tmp_path / "hf", tmp_path / "vitzoo"
    add_file(hf_cache, "vitzoo/testing", "testing.npz", data)
    sha = hashlib.sha256(data).hexdigest()
    hub_ok = HubFile("vitzoo/testing", "testing.npz", "vit_jax")

    def tag(name, *sources):
        return Weights(name, tuple(sources), "none", Preprocess(224), 10)

    def url(path):
        return UrlFile(f"{server}/{path}", "vit_jax")

    tags = (
        tag("random-10cls", hub_ok),
        tag("hub", HubFile("vitzoo/testing", "model.safetensors", "timm"), replace(hub_ok, sha256="0" * 64), hub_ok),
        tag("url", url("missing.npz"), url("forbidden.npz"), replace(url("other.npz"), sha256=sha), url("testing.npz")),
        tag("mixed", HubFile("vitzoo/other", "model.safetensors", "timm"), url("testing.npz")),
    )
    registry = Registry()
    registry.register(ModelSpec("testing", "vit", TESTING.config, "test", tags, "random-10cls"))
    monkeypatch.setattr(vitzoo.weights.sources, "REGISTRY", registry)
    monkeypatch.setattr(vitzoo.zoo.lookup, "REGISTRY", registry)  # load() resolves the name up front too
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setattr(hf, "ENDPOINT", server)  # online Hub requests come here (404), never to the internet
    monkeypatch.setattr(hf, "HUGGINGFACE_CO_URL_TEMPLATE", server + "/{repo_id}/resolve/{revision}/{filename}")
    for key, value in {"HF_HUB_CACHE": hf_cache, "VITZOO_CACHE": vz_cache}.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.delenv("VITZOO_LOCK", raising=False)
    _offline(monkeypatch, True)
    yield {"server": server, "data": data, "sd": sd, "sha": sha, "tmp": tmp_path}
    httpd.shutdown()


def _offline(monkeypatch, on: bool) -> None:
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", on)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if on else "0")


def _same_weights(model, sd) -> None:
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, sd[key], rtol=0, atol=0)


def test_hub_sources_fall_through_offline_and_on_checksum_mismatch(zoo):
    with pytest.warns(SourceFallbackWarning) as caught:
        model = vitzoo.load("testing.hub")
    message = str(caught[0].message)
    assert message.startswith("testing.hub: used vitzoo/testing/testing.npz@main:")
    assert "model.safetensors@main failed" in message and "HF_HUB_OFFLINE" in message
    assert "does not match its recorded sha256" in message and "\n" not in message
    _same_weights(model, zoo["sd"])
    assert model.weights_sha256 == zoo["sha"]


def test_url_sources_fall_through_404_403_and_checksum(zoo, monkeypatch):
    _offline(monkeypatch, False)
    with pytest.warns(SourceFallbackWarning) as caught:
        fetched = fetch_checkpoint("testing.url")
    message = str(caught[0].message)
    assert "missing.npz failed (" in message and "HTTP 404" in message
    assert "forbidden.npz failed (" in message and "HTTP 403" in message
    assert "other.npz failed (" in message and "sha256 mismatch" in message
    assert fetched.entry.url == f"{zoo['server']}/testing.npz" and fetched.entry.sha256 == zoo["sha"]
    assert len(fetched.skipped) == 3
    assert _Handler.hits == {"/missing.npz": 1, "/forbidden.npz": 1, "/other.npz": 1, "/testing.npz": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SourceFallbackWarning)
        _same_weights(vitzoo.load("testing.url"), zoo["sd"])


def test_offline_never_downloads_and_every_failure_is_one_line(zoo, monkeypatch):
    with pytest.raises(SourcesError) as e:
        vitzoo.load("testing.mixed")
    message = str(e.value)
    assert message.startswith("testing.mixed: none of its 2 sources could be fetched: vitzoo/other/")
    assert f"{zoo['server']}/testing.npz: was never downloaded and HF_HUB_OFFLINE is set" in message
    assert "\n" not in message and _Handler.hits == {}
    _offline(monkeypatch, False)  # online, the Hub file is still missing: the URL is used and kept
    with pytest.warns(SourceFallbackWarning):
        vitzoo.load("testing.mixed")
    _offline(monkeypatch, True)  # offline again: the downloaded original serves
    with pytest.warns(SourceFallbackWarning):
        model = vitzoo.load("testing.mixed")
    _same_weights(model, zoo["sd"])
    assert _Handler.hits["/testing.npz"] == 1


def test_download_says_which_source_was_used(zoo, monkeypatch):
    _offline(monkeypatch, False)
    result = CliRunner().invoke(main, ["download", "testing.url"])
    assert result.exit_code == 0, result.stderr
    assert f"skipped {zoo['server']}/missing.npz: " in result.stderr
    assert f"(from {zoo['server']}/testing.npz)" in result.stderr
    listed = json.loads(CliRunner().invoke(main, ["cache", "list", "--json"]).stdout)
    assert [row["name"] for row in listed] == ["testing.url"]  # a converted original is in the cache listing


def _lock(zoo, name="testing") -> tuple:
    path = zoo["tmp"] / "vitzoo.lock"
    result = CliRunner().invoke(main, ["download", name, "--lock", str(path)])
    assert result.exit_code == 0, result.stderr
    return path, json.loads(path.read_text())


def test_lock_records_commit_size_and_sha_and_a_matching_file_loads(zoo, monkeypatch):
    path, data = _lock(zoo)
    assert data == {
        "vitzoo_lock": 1,
        "checkpoints": {
            "testing.random-10cls": {"source": "hub", "repo_id": "vitzoo/testing", "filename": "testing.npz",
                                     "revision": "main", "commit": COMMIT, "size": len(zoo["data"]),
                                     "sha256": zoo["sha"]},
        },
    }  # fmt: skip
    model = vitzoo.load("testing", lock=path)
    assert model.weights_sha256 == zoo["sha"]
    monkeypatch.setenv("VITZOO_LOCK", str(path))
    _same_weights(vitzoo.load("testing.random-10cls"), zoo["sd"])


def _edit(path, **changes) -> None:
    data = json.loads(path.read_text())
    data["checkpoints"]["testing.random-10cls"].update(changes)
    path.write_text(json.dumps(data))


def test_lock_refuses_a_file_with_another_sha256_and_size(zoo):
    path, _ = _lock(zoo)
    _edit(path, sha256="ab" * 32, size=5)
    with pytest.raises(LockError) as e:
        vitzoo.load("testing", lock=path)
    message = str(e.value)
    assert message.startswith(f"testing.random-10cls differs from the lock {path}: ")
    assert f"size 5 (lock) vs {len(zoo['data'])} bytes" in message
    assert f"sha256 {'ab' * 32} (lock) vs {zoo['sha']}" in message and "vitzoo download" in message


def test_lock_refuses_another_commit_and_says_so(zoo):
    path, _ = _lock(zoo)
    _edit(path, commit="f" * 40)  # the locked commit is not in the cache; main resolves to COMMIT
    with pytest.raises(LockError, match=rf"commit f{{40}} \(lock\) vs {COMMIT}"):
        vitzoo.load("testing", lock=path)


def test_lock_without_the_entry_or_unreadable_refuses(zoo, monkeypatch):
    path, _ = _lock(zoo)
    with pytest.raises(LockError, match=r"testing.hub is not in the lock file .*vitzoo download testing.hub --lock"):
        vitzoo.load("testing.hub", lock=path)
    path.write_text("{not json")
    with pytest.raises(LockError, match="not readable JSON"):
        vitzoo.load("testing", lock=path)
    monkeypatch.setenv("VITZOO_LOCK", str(zoo["tmp"] / "nowhere.lock"))
    result = CliRunner().invoke(main, ["download", "testing"])
    assert result.exit_code == 1 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_a_locked_url_source_is_the_only_one_tried(zoo, monkeypatch):
    _offline(monkeypatch, False)
    path, data = _lock(zoo, "testing.url")
    assert data["checkpoints"]["testing.url"]["url"] == f"{zoo['server']}/testing.npz"
    assert read_lock(path)["testing.url"].sha256 == zoo["sha"]
    hits = dict(_Handler.hits)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SourceFallbackWarning)  # no fall-through under a lock
        _same_weights(vitzoo.load("testing.url", lock=path), zoo["sd"])
    assert _Handler.hits == hits  # the downloaded file was reused, nothing else fetched


def _fit_case(num_classes: int, representation_size: int | None, zero: bool):
    """A converted testing model with a head (zeroed or not) and a pre_logits layer, and its registry entry."""
    config = TESTING.config.replace(num_classes=num_classes, representation_size=representation_size)
    sd = build_model(config).state_dict()
    sd["head.weight"].fill_(0.0 if zero else 0.5)
    return Converted(config, sd, "vit_jax")


@pytest.mark.parametrize("keep_pre_logits", [True, False])
def test_a_zeroed_21k_head_is_dropped_to_fit_the_registry(keep_pre_logits):
    rep = 10 if keep_pre_logits else None
    w = Weights("in21k", (UrlFile("https://x/y.npz", "vit_jax"),), "x", Preprocess(224), 0, rep, zero_head=True)
    spec = ModelSpec("t", "vit", TESTING.config, "", (w,), "in21k")
    fitted = fit_to_registry(_fit_case(21, 10, zero=True), spec, w, w.sources[0])
    assert fitted.config.num_classes == 0 and fitted.config.representation_size == rep
    assert not any(k.startswith("head.") for k in fitted.state_dict)
    assert any(k.startswith("pre_logits.") for k in fitted.state_dict) == keep_pre_logits
    with pytest.raises(CheckpointError, match="21 classes, registry says 0"):  # a real head is never dropped
        fit_to_registry(_fit_case(21, 10, zero=False), spec, w)
    with pytest.raises(CheckpointError, match="in vit_jax layout, the registry says timm"):
        fit_to_registry(_fit_case(21, 10, zero=True), spec, w, HubFile("a/b", "model.safetensors", "timm"))


def test_a_representation_layer_the_registry_does_not_declare_is_refused():
    w = Weights("ft", (UrlFile("https://x/y.npz", "vit_jax"),), "x", Preprocess(224), 10)
    spec = ModelSpec("t", "vit", TESTING.config, "", (w,), "ft")
    with pytest.raises(CheckpointError, match=r"representation \(pre_logits\) size 10, registry says None"):
        fit_to_registry(_fit_case(10, 10, zero=False), spec, w)


def test_results_record_the_sha256_of_the_weights_used(zoo, monkeypatch):
    from vitzoo.measure import roofline
    from vitzoo.measure.store import ResultStore

    monkeypatch.setattr(roofline, "measure_gemm_peak", lambda *a, **k: roofline.GemmPeak("cpu", "fp32", 2, 0.25, ()))
    roofline._cached_peak.cache_clear()  # no real GEMM peak measurement in this test
    db = zoo["tmp"] / "r.sqlite"
    args = ["bench", "testing", "--pretrained", "-b", "1", "--warmup", "1", "--iters", "1", "--rounds", "1"]
    result = CliRunner().invoke(main, [*args, "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    (record,) = ResultStore(db).records(kind="bench")
    assert record["metrics"]["weights_sha256"] == zoo["sha"]
    random = CliRunner().invoke(main, [*args[:2], *args[3:], "--db", str(db), "--json"])
    assert random.exit_code == 0 and ResultStore(db).records(kind="bench")[-1]["metrics"]["weights_sha256"] is None


def test_readme_offline_original_npz(tmp_path, monkeypatch):
    """README, Offline and air-gapped use, way 1 and 2 as written: the original .npz (here random weights in its
    exact layout and file name) in $VITZOO_CACHE/downloads with HF_HUB_OFFLINE=1 serves `vitzoo download` and
    `vitzoo.load` without a network; `vitzoo convert FILE --expect NAME.TAG` keeps the tag's preprocessing."""
    import huggingface_hub.constants as hf
    import numpy as np
    from jax_writer import vit_jax_arrays

    name = "vit-ti16.augreg-in21k-ft-in1k"
    url = next(s.url for s in vitzoo.get_spec(name).get_weights("augreg-in21k-ft-in1k").sources
               if isinstance(s, UrlFile))  # fmt: skip
    for key, value in {"VITZOO_CACHE": tmp_path / "vz", "HF_HUB_CACHE": tmp_path / "hf", "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    torch.manual_seed(0)
    model = vitzoo.create(name)
    torch.nn.init.normal_(model.head.weight, std=0.02)  # a trained head is not zero
    downloads = tmp_path / "vz" / "downloads"
    downloads.mkdir(parents=True)
    original = downloads / url.rsplit("/", 1)[-1]
    np.savez(original, **vit_jax_arrays(model.state_dict(), model.config.num_heads))
    result = CliRunner().invoke(main, ["download", name])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.stderr and url in result.stderr
    with pytest.warns(SourceFallbackWarning, match="Offline and air-gapped use"):  # the Hub copy is skipped
        loaded = vitzoo.load(name)
    assert loaded.name == name
    torch.testing.assert_close(loaded.state_dict()["pos_embed"], model.state_dict()["pos_embed"], rtol=0, atol=0)
    out = tmp_path / "out.safetensors"
    converted = CliRunner().invoke(main, ["convert", str(original), str(out), "--expect", name])
    assert converted.exit_code == 0, converted.output
    assert vitzoo.load(out).preprocess_source == f"registry tag {name}, named in the file"
