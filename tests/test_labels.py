"""Class names shipped as package data: ImageNet-1k and ImageNet-21k, checked against the files read by hand; the
label space of every registry checkpoint, as `vitzoo info` names it; label files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import vitzoo
from vitzoo.cli import main
from vitzoo.errors import VitzooError
from vitzoo.evaluate.imagenet import IMAGENET_SYNSETS
from vitzoo.zoo import labels
from vitzoo.zoo.catalog import REGISTRY

FILES = Path(labels.__file__).parent


def _lines(name: str) -> list[str]:
    return (FILES / name).read_text().splitlines()


def test_imagenet_1k_names_by_index():
    names = labels.class_names("imagenet-1k")
    assert len(names) == 1000
    assert names[0] == "tench" and names[1] == "goldfish" and names[999] == "toilet tissue"
    assert names[281] == "tabby"  # n02123045 "tabby, tabby cat"


def test_the_evaluation_code_uses_the_same_1k_list():
    assert IMAGENET_SYNSETS is labels.synsets("imagenet-1k")
    assert list(IMAGENET_SYNSETS) == _lines("imagenet_synsets.txt")


@pytest.mark.parametrize("index", [0, 1234, 9999, 21842])
def test_imagenet_21k_names_match_the_synset_and_lemma_files(index):
    """Index -> WordNet id (line of the synset file) -> first lemma (the lemma file's tab-separated line)."""
    wnid = _lines("imagenet21k_goog_synsets.txt")[index]
    lemma_line = next(line for line in _lines("imagenet_synset_to_lemma.txt") if line.startswith(wnid + "\t"))
    assert labels.synsets("imagenet-21k")[index] == wnid
    assert labels.class_names("imagenet-21k")[index] == lemma_line.split("\t")[1].split(",")[0]
    assert len(labels.class_names("imagenet-21k")) == 21843 == len(set(labels.synsets("imagenet-21k")))


def test_spaces_by_head_size_and_unknown_space():
    assert labels.space_for(1000) == "imagenet-1k" and labels.space_for(21843) == "imagenet-21k"
    assert labels.space_for(0) is None and labels.space_for(10) is None
    with pytest.raises(VitzooError, match="unknown label space 'imagenet-22k'"):
        labels.class_names("imagenet-22k")


def test_every_registry_checkpoint_has_the_space_of_its_head():
    seen = set()
    for spec in REGISTRY:
        for w in spec.weights:
            expected = None if w.zero_head else {1000: "imagenet-1k", 21843: "imagenet-21k"}.get(w.num_classes)
            assert w.label_space == expected, f"{spec.name}.{w.tag}"
            seen.add(w.label_space)
    assert seen == {"imagenet-1k", "imagenet-21k", None}
    assert REGISTRY.resolve("vit-b16.augreg-in21k")[1].label_space == "imagenet-21k"
    assert REGISTRY.resolve("vit-b16.orig-in21k")[1].label_space is None  # its authors zeroed the head


def test_info_names_each_checkpoint_label_space():
    out = CliRunner().invoke(main, ["info", "vit-b16", "--json"])
    assert out.exit_code == 0, out.output
    spaces = {t["tag"]: t["label_space"] for t in json.loads(out.stdout)["tags"]}
    assert spaces["orig-in21k-ft-in1k"] == "imagenet-1k" and spaces["augreg-in21k"] == "imagenet-21k"
    assert spaces["orig-in21k"] is None
    text = CliRunner().invoke(main, ["info", "vit-b16"], env={"COLUMNS": "250"}).stdout
    assert "labels: imagenet-21k (21,843 named classes)" in text
    assert "labels: none: its authors zeroed the ImageNet-21k head" in text


def test_created_models_carry_their_label_space():
    model = vitzoo.create("testing", num_classes=1000)
    assert model.checkpoint.label_space == "imagenet-1k" and model.checkpoint.labels[999] == "toilet tissue"
    assert vitzoo.create("testing").checkpoint.labels is None  # 10 classes: no known names


@pytest.mark.parametrize(
    ("text", "classes", "error"),
    [
        ("a\nb\n", 3, "2 class names for a head of 3 classes"),
        ("a\n\nc\n", 3, "line 2 is empty"),
        ("a\nb\na\n", 3, "'a' names both line 1 and line 3"),
        ("a\n", 0, "no classification head"),
        ("", 2, "0 class names"),
    ],
)
def test_label_file_errors(tmp_path, text, classes, error):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(VitzooError, match=error):
        labels.read_label_file(path, classes)


def test_label_file_is_stripped_and_may_end_with_blank_lines(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("  daisy \r\nrose\n\n\n")
    assert labels.read_label_file(path, 2) == ("daisy", "rose")
    with pytest.raises(VitzooError, match="cannot read label file"):
        labels.read_label_file(tmp_path / "missing.txt", 2)
