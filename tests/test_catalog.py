"""Tests generated from the catalogue: every tag resolves, builds with its declared head and resolution, and
every source is a well-formed Hub file or original URL, in the documented order."""

from __future__ import annotations

import functools
import json
import re
import urllib.parse

import pytest
import torch
from click.testing import CliRunner

import vitzoo
from vitzoo.cli import main
from vitzoo.zoo.catalog import REGISTRY
from vitzoo.zoo.lookup import by_source
from vitzoo.zoo.registry import HubFile, UrlFile

TAGS = [(spec, w) for spec in REGISTRY for w in spec.weights]
IDS = [f"{spec.name}.{w.tag}" for spec, w in TAGS]
# One build per distinct model: tags whose config is the same (same file in two ports, BiT-S and BiT-M) share it.
BUILDS = {spec.config_for(w): (spec, w) for spec, w in reversed(TAGS)}
HUB_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
AUGREG_FILE = re.compile(
    r"^(Ti|S|B|L|R_Ti|R26_S|R50_L)_(8|16|32)-i(1|21)k-300ep-lr_0\.001-aug_(none|light\d|medium\d|strong\d)"
    r"-wd_0\.(03|1)-do_0\.[01]-sd_0\.[01](--imagenet2012-steps_20k-lr_0\.0[13]-res_(?P<res>224|384))?\.npz$"
)


@pytest.mark.parametrize(("spec", "w"), TAGS, ids=IDS)
def test_every_tag_resolves_and_describes(spec, w):
    full = f"{spec.name}.{w.tag}"
    assert REGISTRY.resolve(full) == (spec, w)
    info = next(t for t in _describe(spec.name)["tags"] if t["tag"] == w.tag)
    assert info["name"] == full and [s["label"] for s in info["sources"]] == [s.label for s in w.sources]
    assert [a["protocol"] for a in info["accuracies"]] == [a.protocol for a in w.accuracies]


@functools.cache
def _describe(name: str) -> dict:
    return vitzoo.describe(name)


@pytest.mark.parametrize(("spec", "w"), list(BUILDS.values()), ids=[f"{s.name}.{w.tag}" for s, w in BUILDS.values()])
def test_every_tag_builds_on_meta_with_its_head_and_resolution(spec, w):
    with torch.device("meta"):  # shapes only; a forward pass on meta tensors would cost seconds per model
        model = vitzoo.create(f"{spec.name}.{w.tag}")
    sd = model.state_dict()
    assert model.config.img_size == w.img_size and model.config.num_classes == w.num_classes
    if spec.family != "bit":  # the position embeddings are sized for the tag's resolution
        assert sd["pos_embed"].shape[1] == model.config.seq_len
    if w.num_classes:
        assert tuple(sd["head.weight"].shape) == (w.num_classes, model.config.num_features)
    else:
        assert not any(k.startswith("head.") for k in sd)
    has_pre_logits = any(k.startswith("pre_logits.") for k in sd)
    assert has_pre_logits == bool(w.representation_size)


@pytest.mark.parametrize(("spec", "w"), TAGS, ids=IDS)
def test_every_source_parses_and_comes_in_order(spec, w):
    kinds = ["hub" if isinstance(s, HubFile) else "url" for s in w.sources]
    assert kinds == sorted(kinds), "Hub sources come before the original URL"
    assert len(set(w.sources)) == len(w.sources)
    for s in w.sources:
        if isinstance(s, HubFile):
            assert HUB_REPO.match(s.repo_id) and s.revision == "main"
            if spec.name != "testing":
                assert s.filename in ("model.safetensors", "pytorch_model.bin")
                assert s.format == {"google": "transformers", "timm": "timm"}[s.repo_id.split("/")[0]]
        else:
            assert isinstance(s, UrlFile)
            url = urllib.parse.urlparse(s.url)
            assert (url.scheme, url.netloc) == ("https", "storage.googleapis.com") and url.path.endswith(".npz")
            bucket = url.path.split("/")[1]
            assert s.format == {"vit_models": "vit_jax", "bit_models": "bit_jax"}[bucket]
            if "/augreg/" in url.path:
                match = AUGREG_FILE.match(url.path.rsplit("/", 1)[-1])
                assert match, url.path
                assert match["res"] is None or int(match["res"]) == w.img_size
    hub_files = [s for s in w.sources if isinstance(s, HubFile)]
    for repo in {s.repo_id for s in hub_files}:  # within a repository: safetensors before .bin
        names = [s.filename for s in hub_files if s.repo_id == repo]
        assert names == sorted(names, key=lambda f: f != "model.safetensors")


@pytest.mark.parametrize(("spec", "w"), TAGS, ids=IDS)
def test_accuracies_are_marked_by_protocol(spec, w):
    protocols = [a.protocol for a in w.accuracies]
    assert len(set(protocols)) == len(protocols) and protocols == sorted(protocols)  # authors' first
    for a in w.accuracies:
        assert 50 < a.top1 < 100 and w.num_classes == 1000
        assert (a.source == "timm eval") == (a.protocol == "timm")


def test_the_checkpoints_users_reach_for_are_there():
    augreg2 = REGISTRY.resolve("vit-b16.augreg2-in21k-ft-in1k")[1]
    assert augreg2.hub.repo_id == "timm/vit_base_patch16_224.augreg2_in21k_ft_in1k" and augreg2.url is None
    assert REGISTRY.resolve("vit-b8.augreg2-in21k-ft-in1k")[1].img_size == 224
    for arch in ("vit-ti16", "vit-s16", "vit-s32", "vit-b32", "vit-b8", "vit-b16", "vit-l16"):
        assert REGISTRY.resolve(f"{arch}.augreg-in21k")[1].num_classes == 21843
    for arch in ("vit-r-ti16", "vit-r26-s32", "vit-r50-l32"):
        assert REGISTRY.resolve(f"{arch}.augreg-in21k")[1].num_classes == 21843
    for arch in ("vit-s16", "vit-b16", "vit-b32"):
        for tag, size in (("augreg-in1k", 224), ("augreg-in1k-384", 384)):
            w = REGISTRY.resolve(f"{arch}.{tag}")[1]
            assert w.img_size == size and "-i1k-300ep-" in w.url and w.accuracy.protocol == "timm"
    for arch, patch in (("vit-b16", 16), ("vit-b32", 32)):
        assert (
            REGISTRY.resolve(f"{arch}.sam-in1k")[1].url
            == f"https://storage.googleapis.com/vit_models/sam/ViT-B_{patch}.npz"
        )
    for arch in ("bit-r50x1", "bit-r50x3", "bit-r101x1", "bit-r101x3", "bit-r152x4"):
        w = REGISTRY.resolve(f"{arch}.bits-in1k")[1]
        assert w.num_classes == 1000 and w.url.endswith(f"/BiT-S-R{arch.removeprefix('bit-r')}.npz")
    distilled = REGISTRY.resolve("bit-r50x1.distilled-in1k")[1]
    assert [a.protocol for a in distilled.accuracies] == ["authors", "timm"]
    h14 = REGISTRY.resolve("vit-h14")[1]
    assert [s.filename for s in h14.sources if isinstance(s, HubFile)] == ["model.safetensors", "pytorch_model.bin"]


def test_the_2020_fine_tunes_have_a_second_hub_source_and_both_accuracies():
    w = REGISTRY.resolve("vit-b16.orig-in21k-ft-in1k-384")[1]
    assert [s.repo_id for s in w.sources if isinstance(s, HubFile)] == [
        "google/vit-base-patch16-384",
        "timm/vit_base_patch16_384.orig_in21k_ft_in1k",
    ]
    assert [(a.top1, a.protocol) for a in w.accuracies] == [(83.97, "authors"), (84.2, "timm")]


def test_bit_labels_separate_fine_tuning_and_evaluation_resolution():
    for spec in REGISTRY:
        if spec.family != "bit":
            continue
        w = spec.get_weights("bitm-in21k-ft-in1k")
        assert "fine-tuned on ImageNet-1k at 480" in w.pretrain and "448" not in w.pretrain
        assert w.img_size == (480 if spec.name == "bit-r152x4" else 448)
        assert "evaluation size" in w.notes


@pytest.mark.parametrize("plus", ["+", "%2B", "%2b"])
def test_url_spellings_match_their_entry(plus):
    url = f"https://storage.googleapis.com/vit_models/imagenet21k{plus}imagenet2012/R50{plus}ViT-B_16.npz"
    assert by_source(url).name == "vit-r50-b16.orig-in21k-ft-in1k-384"
    assert by_source("https://storage.googleapis.com/vit_models/nothing.npz") is None


def test_list_all_and_info_show_every_tag_and_source():
    runner = CliRunner()
    listing = json.loads(runner.invoke(main, ["list", "--all", "--json"]).stdout)
    assert [row["name"] for row in listing] == [i for i in IDS if not i.startswith("testing.")]  # a hidden fixture
    info = runner.invoke(main, ["info", "vit-h14"], env={"COLUMNS": "200"})
    assert info.exit_code == 0 and "pytorch_model.bin" in info.stdout and "ViT-H_14.npz" in info.stdout
    shown = runner.invoke(main, ["info", "vit-b16"], env={"COLUMNS": "200"}).stdout
    assert "83.97 (authors' evaluation: ViT paper Table 5), 84.20 (timm's evaluation of this file" in shown


def test_tradeoff_tags_all_shows_every_checkpoint_of_a_family():
    from vitzoo.evaluate.tradeoff import build_tradeoff

    rows = build_tradeoff(["vit-b16"], tags="all")
    assert {r.model for r in rows} == {f"vit-b16.{w.tag}" for w in vitzoo.get_spec("vit-b16").weights if w.accuracy}
    assert [r.model for r in build_tradeoff(["vit-b16"])] == ["vit-b16.orig-in21k-ft-in1k"]
    named = build_tradeoff(["vit-b16.orig-in21k"], tags="all")  # a tag named explicitly stays, accuracy or not
    assert [(r.model, r.top1) for r in named] == [("vit-b16.orig-in21k", None)]
