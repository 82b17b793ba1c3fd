"""The README's fenced blocks: which of them show program output, the transcript marker before each, rewriting one.

The rule (``Block.shows_output``), checked by ``tests/test_readme.py``: a fenced block shows program output when
its info string is empty, ``text`` or ``console``, or when one of its lines starts with ``$ `` or ``>>> ``. Blocks
tagged with a language (``bash``, ``python``) and no such line are input: commands to type, code to read. Every
output block is made by a registered transcript (``docs/transcripts.py``) and carries its marker on the line right
before its opening fence, indented as the fence is::

    <!-- transcript: NAME -->
    ```
    ...
    ```
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^`\s]*)\s*$")
MARKER = re.compile(r"^ *<!-- transcript: (?P<name>[a-z0-9-]+) -->\s*$")
OUTPUT_INFO = ("", "text", "console")
NUMBER = re.compile(r"\d+(?:[.,]\d+)*(?:e[+-]?\d+)?")
BOX = re.compile(r"[\s│┃┆┏┓┗┛┡┩┣┫┳┻╇╋━─┬┴┼└┘┌┐├┤╭╮╰╯]+")
# What vitzoo adds when other processes used the CPU during a measurement: a volatile transcript's shape leaves it
# out, as whether the shared machine was busy is the moment's, not the program's.
BUSY = re.compile(
    r" ?\[contended: [^\]]*\]"  # bench's line per result
    r"| ?\(contended\)"  # a `vitzoo results` row
    r"|^warning: .*(?:other processes|contended).*$"  # the warnings of bench, results and results compare
    r"|busy CPU|(?<=│ )yes(?= +│)"  # bench's `busy CPU` column
    r"|(?<=│ )(?:A, B|A|B)(?= +│$)",  # the `contended` column of results compare
    re.M,
)


@dataclass(frozen=True)
class Block:
    """One fenced block of the README: lines ``start`` (opening fence) to ``end`` (closing fence), 0-based."""

    start: int
    end: int
    indent: str
    info: str
    body: str  # the lines between the fences, the fence's indentation removed, each ending in "\n"
    marker: str | None  # the NAME of the marker on the line before the opening fence

    @property
    def shows_output(self) -> bool:
        """Whether the block shows what a program printed (the module's rule)."""
        return self.info in OUTPUT_INFO or any(line.startswith(("$ ", ">>> ")) for line in self.body.splitlines())


def blocks(text: str) -> list[Block]:
    """Every fenced block of ``text``, in order; an unclosed fence is a ValueError."""
    lines = text.splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent = opening["indent"]
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == f"{indent}```"), None)
        if end is None:
            raise ValueError(f"README line {i + 1}: the fence is never closed")
        body = "".join(line.removeprefix(indent) + "\n" for line in lines[i + 1 : end])
        marker = MARKER.match(lines[i - 1]) if i else None
        found.append(Block(i, end, indent, opening["info"], body, marker["name"] if marker else None))
        i = end + 1
    return found


def markers(text: str) -> list[str]:
    """The NAME of every transcript marker in ``text``, whether or not a block follows it."""
    return [m["name"] for line in text.splitlines() if (m := MARKER.match(line))]


def find(text: str, name: str) -> Block:
    """The block marked ``name``; a KeyError when there is none, a ValueError when there are several."""
    marked = [b for b in blocks(text) if b.marker == name]
    if not marked:
        raise KeyError(f"README has no block marked <!-- transcript: {name} -->")
    if len(marked) > 1:
        raise ValueError(f"README marks {len(marked)} blocks as {name}")
    return marked[0]


def code_before(text: str, name: str) -> str:
    """The body of the ```python block right before the block marked ``name`` (the snippet whose output it is)."""
    found = blocks(text)
    i = found.index(find(text, name))
    if i == 0 or found[i - 1].info != "python" or found[i - 1].end + 2 < found[i].start:
        raise ValueError(f"the block marked {name} does not follow a ```python block")
    return found[i - 1].body


def replace(text: str, name: str, body: str) -> str:
    """``text`` with the body of the block marked ``name`` replaced by ``body`` (indented as its fence)."""
    block = find(text, name)
    lines = text.splitlines(keepends=True)
    new = [(block.indent + line if line.strip() else "\n") for line in body.splitlines(keepends=True)]
    return "".join(lines[: block.start + 1] + new + lines[block.end :])


def shape(text: str) -> list[str]:
    """What a volatile transcript is compared by: the set of its words (sorted), every number masked (``#``), table
    borders and spacing dropped and the marks of a busy machine (``BUSY``) left out, so timings, load, table widths
    (and so where a cell wraps) and how many progress lines a run printed do not count, while every label, header,
    message and unit does."""
    return sorted({w for w in BOX.split(NUMBER.sub("#", BUSY.sub("", text))) if w})


def drift(name: str, readme: str, made: str, volatile: bool) -> str:
    """A diff of the README's block against what the transcript made; empty when they agree (exactly, or by
    ``shape`` for a volatile transcript)."""
    if (shape(readme) == shape(made)) if volatile else (readme == made):
        return ""
    diff = difflib.unified_diff(readme.splitlines(), made.splitlines(), f"README: {name}", f"made: {name}",
                                lineterm="")  # fmt: skip
    lines = list(diff)
    if volatile:
        only_readme = sorted(set(shape(readme)) - set(shape(made)))
        only_made = sorted(set(shape(made)) - set(shape(readme)))
        lines.append(f"words only in the README: {only_readme}; only in the new run: {only_made}")
    return "\n".join(lines)
