"""Running one README transcript: a folder of its own, a clean environment, commands run as a shell runs them.

A command line is run by bash exactly as the README prints it (after ``$ ``), with ``vitzoo`` and ``python`` meaning
this interpreter (``python -m vitzoo``), in the transcript's folder, ``COLUMNS=200``, a vitzoo cache of its own
(``VITZOO_CACHE``, shown as ``~/.cache/vitzoo``: the default results database is in it), Hugging Face offline.
Its stdout and stderr are kept together, as a terminal shows them; the folder's path is cut from the output (files
are named as the README names them), and so are the plain progress lines a command prints every few seconds when
its output is not a terminal (``NAME: DONE/TOTAL, about N s left``): how many there are depends on the machine.
Trailing spaces are cut too (rich leaves one where it wraps a long title).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRELUDE = 'vitzoo() { "$TRANSCRIPT_PYTHON" -m vitzoo "$@"; }\npython() { "$TRANSCRIPT_PYTHON" "$@"; }\n'
PROGRESS = re.compile(r"^[^│┃]+: [\d,]+(?:/[\d,]+)?(?:, about [\d,]+ s left)?$")
CACHE_SHOWN = "~/.cache/vitzoo"


class TranscriptError(RuntimeError):
    """A command of a transcript ended otherwise than the transcript expects."""


@dataclass(frozen=True)
class Work:
    """The folder one transcript runs in, and the shared folder its inputs are made in once per session."""

    dir: Path
    inputs: Path
    readme_code: str = ""  # the ```python block before the transcript's block, for those that run it

    @property
    def cache(self) -> Path:
        return self.dir.parent / f"{self.dir.name}.cache"

    def env(self) -> dict[str, str]:
        """The environment every command of the transcript runs in."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VITZOO_", "HF_", "FORCE_COLOR", "NO_COLOR"))}
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return {**env, "COLUMNS": "200", "VITZOO_CACHE": str(self.cache), "HF_HOME": str(self.cache / "hf"),
                "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": path,
                "TRANSCRIPT_PYTHON": sys.executable}  # fmt: skip

    def tidy(self, output: str) -> str:
        """``output`` with this folder's and the cache's paths cut, the plain progress lines left out and no line
        ending in spaces."""
        for path, shown in ((self.cache, CACHE_SHOWN), (self.dir, ".")):
            output = output.replace(f"{path}/", "" if shown == "." else f"{shown}/").replace(str(path), shown)
        lines = (line.rstrip() for line in output.splitlines())  # rich leaves a space where it wraps a title
        return "".join(f"{line}\n" for line in lines if not PROGRESS.match(line))

    def _run(self, argv: list[str], what: str, fails: bool) -> str:
        run = subprocess.run(argv, cwd=self.dir, env=self.env(), text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)  # fmt: skip
        if (run.returncode != 0) != fails:
            raise TranscriptError(f"{what}: exit code {run.returncode}, expected {'non-zero' if fails else 0}:\n"
                                  f"{run.stdout}")  # fmt: skip
        return self.tidy(run.stdout)

    def sh(self, line: str, *, fails: bool = False) -> str:
        """``$ LINE`` and what it printed; ``fails``: the command is expected to exit non-zero."""
        self.cache.mkdir(exist_ok=True)
        return f"$ {line}\n" + self._run(["bash", "-c", PRELUDE + line], line, fails)

    def python(self, code: str) -> str:
        """What a Python snippet prints, run as a script in this folder (the snippet itself is not shown)."""
        self.cache.mkdir(exist_ok=True)
        script = self.cache / "snippet.py"
        script.write_text(code)
        return self._run([sys.executable, str(script)], "the README's Python snippet", False)

    def input(self, name: str, make: Callable[[Path], object]) -> Path:
        """``name`` in this folder: made by ``make(path)`` once per session (a file or a folder), then linked here."""
        made = self.inputs / name
        if not made.exists():
            partial = self.inputs / ".partial"
            shutil.rmtree(partial, ignore_errors=True)
            staged = partial / name  # the same file name: makers may look at the suffix
            staged.parent.mkdir(parents=True)
            make(staged)
            made.parent.mkdir(parents=True, exist_ok=True)
            staged.rename(made)
        here = self.dir / name
        here.parent.mkdir(parents=True, exist_ok=True)
        if made.is_dir():
            shutil.copytree(made, here, copy_function=os.link)
        else:
            os.link(made, here)
        return here
