"""The README's program outputs are made by docs/transcripts.py, never by hand: every output block carries the
marker of a registered transcript, and the quick transcripts are run again and compared with the README (the
others with `pytest -m slow`, or `python docs/transcripts.py --check`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
sys.path.insert(0, str(DOCS))

import readme_blocks as blocks  # noqa: E402
import transcripts  # noqa: E402

README = transcripts.README.read_text(encoding="utf-8")


def test_every_output_block_is_made_by_one_registered_transcript():
    found = blocks.blocks(README)
    unmarked = [f"line {b.start + 1}: {b.body[:60]!r}" for b in found if b.shows_output and not b.marker]
    assert not unmarked, "README output blocks without a <!-- transcript: NAME --> marker"
    names = blocks.markers(README)
    assert sorted(names) == sorted(transcripts.REGISTRY), "every registered transcript is marked exactly once"
    marked = {b.marker: b for b in found if b.marker}
    assert sorted(marked) == sorted(names), "every marker is on the line right before a block's opening fence"
    assert all(b.shows_output for b in marked.values()), "a marked block must show output (readme_blocks' rule)"
    for name, t in transcripts.REGISTRY.items():
        if t.python:
            assert blocks.code_before(README, name).strip(), name


SAMPLE = """Intro.

```bash
vitzoo list
```

<!-- transcript: one -->
```
$ vitzoo list
old
```

- item:

  <!-- transcript: two -->
  ```text
  a

  b
  ```

```python
print(1)
```
<!-- transcript: three -->
```
1
```
"""


def test_the_block_rule_markers_and_rewriting():
    found = blocks.blocks(SAMPLE)
    assert [(b.info, b.marker, b.shows_output) for b in found] == [
        ("bash", None, False), ("", "one", True), ("text", "two", True), ("python", None, False), ("", "three", True),
    ]  # fmt: skip
    assert found[2].body == "a\n\nb\n" and found[2].indent == "  "
    assert blocks.code_before(SAMPLE, "three") == "print(1)\n"
    for name in ("one", "two"):  # after a bash block; after prose
        with pytest.raises(ValueError, match="does not follow a ```python block"):
            blocks.code_before(SAMPLE, name)
    new = blocks.replace(SAMPLE, "two", "x\n\ny\n")
    assert "  ```text\n  x\n\n  y\n  ```\n" in new and new.replace("x\n\n  y", "a\n\n  b") == SAMPLE
    with pytest.raises(KeyError, match="four"):
        blocks.find(SAMPLE, "four")
    with pytest.raises(ValueError, match="never closed"):
        blocks.blocks("```\nopen\n")


def test_volatile_transcripts_compare_by_their_words_numbers_masked():
    run1 = "┃ img/s ┃\n│  8.98 │\nvit-b16 batch 1: 8.98 img/s\n"
    run2 = "┃    img/s ┃\n│ 1,234.50 │\nvit-b16 batch 1: 1,234.50 img/s\nvit-b16 batch 1: 1,300.00 img/s\n"
    assert blocks.shape(run1) == blocks.shape(run2) == ["#", "#:", "batch", "img/s", "vit-b#"]
    assert not blocks.drift("x", run1, run2, volatile=True)
    assert "+│ 1,234.50 │" in blocks.drift("x", run1, run2, volatile=False)
    busy = ("┃ img/s ┃ busy CPU ┃\n│  8.98 │ yes      │\n"
            "vit-b16 batch 1: 8.98 img/s [contended: other processes used 1.27 cores]\n"
            "warning: 1 result(s) measured while other processes used the CPU (up to 1.27 cores): rerun\n")  # fmt: skip
    assert blocks.shape(busy) == blocks.shape(run1)  # a busy machine is the moment's, not the program's
    renamed = blocks.drift("x", run1, run1.replace("img/s", "images/s"), volatile=True)
    assert "only in the README: ['img/s']; only in the new run: ['images/s']" in renamed


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return transcripts.Session(tmp_path_factory.mktemp("transcripts"), README)


@pytest.mark.parametrize("name", [pytest.param(name, marks=() if t.fast else pytest.mark.slow)
                                  for name, t in transcripts.REGISTRY.items()])  # fmt: skip
def test_transcript_matches_the_readme(session, name):
    assert not session.drift(name), f"README block {name} drifted: python docs/transcripts.py --write {name}"
