"""Parameter and MAC counts: golden values, closed forms, and the parameters of the built models.

Counted MACs (FlopCounterMode) against the closed form live in test_flops.py.
"""

from __future__ import annotations

import pytest
import torch

import vitzoo
from vitzoo.models import build_model
from vitzoo.zoo.analytic import count_macs, count_params
from vitzoo.zoo.catalog import REGISTRY as _REGISTRY
from vitzoo.zoo.configs import ViTConfig

ALL_NAMES = [s.name for s in _REGISTRY]  # the listed models and the hidden `testing` fixture

# Parameters at 224 px with a 1000-class head. ViTs and hybrids: the original implementation's own golden
# table (vit_jax models_test.py MODEL_SIZES). BiT: the same shapes as big_transfer / timm (25.55M for R50x1 ...).
GOLDEN_PARAMS = {
    "vit-ti16": 5_717_416,
    "vit-s16": 22_050_664,
    "vit-s32": 22_878_952,
    "vit-b8": 86_576_872,
    "vit-b16": 86_567_656,
    "vit-b32": 88_224_232,
    "vit-l16": 304_326_632,
    "vit-l32": 306_535_400,
    "vit-h14": 632_045_800,
    "vit-r50-b16": 98_659_112,
    "vit-r50-l32": 328_994_856,
    "vit-r26-s32": 36_431_912,
    "vit-r-ti16": 6_337_704,
    "bit-r50x1": 25_549_352,
    "bit-r50x3": 217_319_080,
    "bit-r101x1": 44_541_480,
    "bit-r101x3": 387_934_888,
    "bit-r152x2": 236_335_208,
    "bit-r152x4": 936_533_224,
    "testing": 21_390,
}


def test_every_registered_model_has_a_golden_count():
    assert set(ALL_NAMES) == set(GOLDEN_PARAMS), "add the new variant to GOLDEN_PARAMS"


def _built_params(config) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(config).parameters())


@pytest.mark.parametrize(("name", "expected"), GOLDEN_PARAMS.items())
def test_golden_param_counts(name, expected):
    config = vitzoo.get_spec(name).config
    assert (config.img_size, config.num_classes) == (224, 1000)
    assert _built_params(config) == expected
    assert count_params(config) == expected


def _table1_params(D: int, L: int, M: int, P: int, C: int, img: int = 224) -> int:
    """The paper's Table 1 shapes: patch embedding, cls + posemb, L pre-LN blocks, final LN, head."""
    N = (img // P) ** 2
    embed = 3 * P * P * D + D
    tokens = D + (N + 1) * D
    block = 2 * 2 * D + (3 * D * D + 3 * D) + (D * D + D) + (D * M + M) + (M * D + D)
    return embed + tokens + L * block + 2 * D + (D + 1) * C


def test_vit_b16_table1_closed_form():
    assert _table1_params(768, 12, 3072, 16, 1000) == 86_567_656


PLAIN_VITS = ["vit-ti16", "vit-s16", "vit-b8", "vit-b16", "vit-b32", "vit-l16", "vit-l32", "vit-h14"]


@pytest.mark.parametrize("name", PLAIN_VITS)
def test_plain_vits_match_table1_formula(name):
    c = vitzoo.get_spec(name).config
    assert GOLDEN_PARAMS[name] == _table1_params(c.width, c.depth, c.mlp_dim, c.patch_size, 1000)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_closed_form_params_of_every_tag(name):
    spec = vitzoo.get_spec(name)
    for weights in spec.weights:
        config = spec.config_for(weights)
        assert count_params(config) == _built_params(config), weights.tag


# Closed form vs FlopCounterMode (the counted MACs of every model) is tested in test_flops.py, not here.


def test_vit_b16_gmacs():
    config = vitzoo.get_spec("vit-b16").config
    assert count_macs(config) == 17_563_828_224  # every matmul, attention included
    assert round(count_macs(config) / 1e9, 2) == 17.56
    tokens_224, tokens_384 = 197, 577
    ratio = count_macs(config.replace(img_size=384)) / count_macs(config)
    assert ratio > tokens_384 / tokens_224  # attention is quadratic in the tokens


def test_gap_model_has_no_class_slot():
    gap = ViTConfig(16, 384, 12, 6, 1536, classifier="gap")
    assert count_params(gap) == 22_049_896  # vit_jax ViT-S_16-gap-norep
