"""vitzoo.zoo.timm_results: the shipped rows of timm's published results, checked against numbers copied by hand
from timm's results/*.csv (commit aa4b5850c1543fa488abf260f18390eda46cf85d)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from vitzoo.cli import main
from vitzoo.zoo.catalog import REGISTRY
from vitzoo.zoo.registry import HubFile
from vitzoo.zoo.timm_results import DATASETS, RESULTS_FILE, timm_name, timm_results

BY_HAND = {  # timm model tag -> set -> (top1, top5), read off results-{imagenet,-real,v2-matched-frequency,...}.csv
    "vit_base_patch16_384.orig_in21k_ft_in1k": {"imagenet": 84.212, "real": 88.398, "v2": 73.780, "sketch": 38.126,
                                                "a": 50.053, "r": 51.050},
    "resnetv2_50x1_bit.goog_distilled_in1k": {"imagenet": (82.820, 96.526), "real": (87.798, 97.903),
                                              "v2": (72.180, 91.080), "sketch": (31.640, 51.312),
                                              "a": (25.133, 59.387), "r": (45.357, 62.270)},
    "vit_small_patch16_224.augreg_in1k": {"imagenet": 78.842, "real": 84.510, "v2": 66.590, "sketch": 25.953,
                                          "a": 13.080, "r": 37.123},
}  # fmt: skip


def _weights(name: str):
    return REGISTRY.resolve(name)[1]


def test_shipped_numbers_equal_timms_csvs():
    got = {
        "vit_base_patch16_384.orig_in21k_ft_in1k": timm_results(_weights("vit-b16.orig-in21k-ft-in1k-384")),
        "resnetv2_50x1_bit.goog_distilled_in1k": timm_results(_weights("bit-r50x1.distilled-in1k")),
        "vit_small_patch16_224.augreg_in1k": timm_results(_weights("vit-s16.augreg-in1k")),
    }
    for tag, expected in BY_HAND.items():
        assert set(got[tag]) == set(DATASETS)
        for dataset, value in expected.items():
            assert got[tag][dataset] == value if isinstance(value, tuple) else got[tag][dataset][0] == value


def test_only_the_catalogues_timm_files_ship():
    lines = [line for line in RESULTS_FILE.read_text().splitlines() if not line.startswith("#")]
    shipped = {line.split(",")[0] for line in lines[1:]}
    hub = {s.repo_id.removeprefix("timm/") for spec in REGISTRY for w in spec.weights for s in w.sources
           if isinstance(s, HubFile) and s.repo_id.startswith("timm/")}  # fmt: skip
    assert shipped <= hub and len(shipped) == len(lines) - 1 == 40  # the in21k-only files have no timm results
    assert timm_name(_weights("vit-b16.orig-in21k-ft-in1k")) == "vit_base_patch16_224.orig_in21k_ft_in1k"
    assert timm_results(_weights("vit-b16.orig-in21k")) == {}  # no timm source with a 1k head
    assert RESULTS_FILE.stat().st_size < 10_000


def test_info_shows_them_as_timms_evaluation():
    result = CliRunner().invoke(main, ["info", "vit-b16", "--json"])
    tag = next(t for t in json.loads(result.stdout)["tags"] if t["tag"] == "orig-in21k-ft-in1k-384")
    assert tag["timm_results"]["a"] == {"top1": 50.053, "top5": 77.600}
    text = CliRunner().invoke(main, ["info", "vit-b16"]).stdout
    line = "top-1 in timm's evaluation of vit_base_patch16_384.orig_in21k_ft_in1k: ImageNet 84.21, ReaL 88.40, V2 73.78"
    assert line in " ".join(text.split())
