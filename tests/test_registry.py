"""The registry: names, tags, lookups and the catalog's consistency."""

from __future__ import annotations

import re

import pytest

import vitzoo
from vitzoo.zoo.catalog import REGISTRY, TESTING
from vitzoo.zoo.lookup import resolve
from vitzoo.zoo.preprocess import Preprocess
from vitzoo.zoo.registry import HubFile, ModelSpec, Registry, UnknownModelError, Weights

# The names the foundation issue fixes, in order.
EXPECTED_NAMES = [
    *("vit-ti16", "vit-s16", "vit-s32", "vit-b8", "vit-b16", "vit-b32", "vit-l16", "vit-l32", "vit-h14"),
    *("vit-r50-b16", "vit-r50-l32", "vit-r26-s32", "vit-r-ti16"),
    *("bit-r50x1", "bit-r50x3", "bit-r101x1", "bit-r101x3", "bit-r152x2", "bit-r152x4"),
]


def test_exact_names():
    assert vitzoo.list_models() == EXPECTED_NAMES  # the `testing` fixture is not listed


def test_the_testing_fixture_is_hidden_but_resolves_by_name():
    assert "testing" not in vitzoo.list_models() and vitzoo.list_models("test*") == []
    assert vitzoo.get_spec("testing").name == "testing"
    assert vitzoo.create("testing").name == "testing.random-10cls"
    with pytest.raises(vitzoo.errors.ConfigError, match="no model matches 'test\\*'"):
        resolve("test*")


def test_pattern_filter():
    assert vitzoo.list_models("vit-b*") == ["vit-b8", "vit-b16", "vit-b32"]
    assert vitzoo.list_models("bit-r152*") == ["bit-r152x2", "bit-r152x4"]
    assert vitzoo.list_models("nothing*") == []


def test_duplicate_name_raises():
    registry = Registry()
    registry.register(TESTING)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(TESTING)


def test_duplicate_tag_and_bad_default_raise():
    w = TESTING.weights[0]
    with pytest.raises(ValueError, match="duplicate tags"):
        ModelSpec("x", "vit", TESTING.config, "", (w, w), w.tag)
    with pytest.raises(ValueError, match="default tag"):
        ModelSpec("x", "vit", TESTING.config, "", (w,), "nope")


def test_unknown_names_suggest_close_ones():
    with pytest.raises(UnknownModelError, match=r"did you mean vit-b16"):
        vitzoo.get_spec("vit-b61")
    with pytest.raises(UnknownModelError, match=r"did you mean vit-b16.orig-in21k"):
        REGISTRY.resolve("vit-b16.orig-in21")
    with pytest.raises(UnknownModelError, match="vitzoo list"):
        vitzoo.get_spec("resnet50-imagenet-whatever")


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("vit-b16.bogus", "did you mean vit-b16.orig-in21k"),  # no close tag: all of them are offered
        ("vit-b16.", "did you mean vit-b16.orig-in21k"),
        ("vit-b16.orig-in21k-ft-in1k-348", "did you mean vit-b16.orig-in21k-ft-in1k-384"),
        ("testing.random", "did you mean testing.random-10cls"),
    ],
)
def test_unknown_tags_are_rejected_everywhere(name, hint):
    for resolve_with in (vitzoo.get_spec, REGISTRY.resolve, vitzoo.describe, vitzoo.create, resolve):
        with pytest.raises(UnknownModelError, match=re.escape(hint)):
            resolve_with(name)


def test_arch_dot_tag_resolution():
    spec, weights = REGISTRY.resolve("vit-b16.orig-in21k-ft-in1k-384")
    assert spec.name == "vit-b16" and weights.img_size == 384
    spec, weights = REGISTRY.resolve("vit-b16")
    assert weights.tag == spec.default_tag == "orig-in21k-ft-in1k"
    config = spec.config_for(REGISTRY.resolve("vit-b16.orig-in21k")[1])
    assert config.num_classes == 0 and config.representation_size == 768


@pytest.mark.parametrize("spec", list(REGISTRY), ids=lambda s: s.name)
def test_every_arch_has_valid_tags(spec: ModelSpec):
    assert spec.weights and spec.get_weights().tag == spec.default_tag
    for w in spec.weights:
        formats = ("vitzoo", "vit_jax", "bit_jax", "transformers", "timm")
        assert w.sources and all(s.format in formats for s in w.sources)
        assert "." not in w.tag and w.tag == w.tag.lower()
        assert w.preprocess.img_size in (224, 384, 448, 480)
        spec.config_for(w)  # valid at the tag's resolution
        if w.accuracy is not None:
            assert 50 < w.accuracy.top1 < 100 and w.accuracy.source
            assert w.num_classes == 1000
        if w.url is not None:
            assert w.url.startswith("https://storage.googleapis.com/") and w.url.endswith(".npz")


def test_default_tags_are_imagenet1k_classifiers_where_published():
    for spec in REGISTRY:
        w = spec.get_weights()
        if spec.name in ("vit-h14", "testing"):  # no ImageNet-1k fine-tune of the paper's H/14 exists
            continue
        assert w.num_classes == 1000 and w.accuracy is not None, spec.name
        if any(x.tag.startswith("orig-") and x.num_classes == 1000 for x in spec.weights):
            assert w.tag.startswith("orig-"), f"{spec.name}: the paper's own weights come first"


def test_registry_entries_are_frozen():
    w = Weights("t", (HubFile("a/b", "f", "timm"),), "x", Preprocess(224), 10)
    with pytest.raises(AttributeError):
        w.tag = "u"


def test_patterns_expand_in_registry_order_and_keep_their_tag():
    from vitzoo.weights.names import expand_sources

    default = {a: vitzoo.get_spec(a).default_tag for a in ("vit-b8", "vit-b16", "vit-b32")}
    assert [c.name for c in resolve("vit-b*")] == [f"{a}.{t}" for a, t in default.items()]
    assert expand_sources(["vit-b*", "testing"]) == ["vit-b8", "vit-b16", "vit-b32", "testing"]
    assert [c.name for c in resolve("vit-?16.augreg-in21k")] == [f"vit-{s}16.augreg-in21k" for s in "sbl"]
    assert expand_sources(["vit-b16.orig-in21k"]) == ["vit-b16.orig-in21k"]
    with pytest.raises(vitzoo.errors.ConfigError, match="no model matches 'zzz\\*'"):
        resolve("zzz*")


def test_create_carries_the_tag_name_and_preprocessing_as_load_does():
    from vitzoo.zoo.preprocess import resolve_preprocess

    model = vitzoo.create("vit-s16.augreg-in21k-ft-in1k", img_size=64)
    assert model.name == "vit-s16.augreg-in21k-ft-in1k"
    assert model.preprocess == Preprocess(64, resize="shorter", crop_pct=0.9, interpolation="bicubic")
    assert model.preprocess_source == "registry tag vit-s16.augreg-in21k-ft-in1k"
    assert resolve_preprocess(model, crop_pct=1.0) == Preprocess(64, "shorter", 1.0, "bicubic")
    assert resolve_preprocess(model, img_size=32).img_size == 32
