"""Where vitzoo keeps its files, and whether a file can be written somewhere, found out before any work starts.

No torch: the CLI's checks use it.

A missing folder counts as writable when its nearest existing ancestor is (it is created on write). Writability is
tried with a probe file that is removed at once, not guessed from the mode bits: those do not bind root, and say
nothing of ``/proc`` or a read-only mount.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from vitzoo import settings


def cache_dir() -> Path:
    """vitzoo's own folder: ``$VITZOO_CACHE``, else ``vitzoo`` in the user cache (``$XDG_CACHE_HOME`` or ``~/.cache``).

    Converted checkpoints, downloaded originals and (unless ``$VITZOO_DB`` says otherwise) the results database
    live there.
    """
    if env := settings.path("VITZOO_CACHE"):
        return env
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "vitzoo"


def unwritable_reason(dst: str | os.PathLike) -> str | None:
    """Why no file can be written at ``dst`` (None if one can)."""
    dst = Path(dst)
    if dst.is_dir():
        return "is a directory"
    folder = nearest_existing(dst.parent)
    if not folder.is_dir():
        return f"{folder} is not a directory"
    if why := probe_folder(folder):
        return f"cannot write in {folder} ({why})"
    return None


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists (a link counts), else its closest ancestor that does."""
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def probe_folder(folder: Path) -> str | None:
    """Why no file can be created in the existing ``folder`` (the OS's reason), or None if one can."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".vitzoo-probe-")
    except OSError as e:
        return e.strerror or type(e).__name__
    os.close(fd)
    os.remove(probe)
    return None


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
