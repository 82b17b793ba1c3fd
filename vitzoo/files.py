"""Where vitzoo keeps its files, and whether a file can be written somewhere, found out before any work starts.

No torch: the CLI's checks use it.

Files are written atomically (``atomic_path``): a full disk or a crash leaves the old file or none, never a
partial one. A missing folder counts as writable when its nearest existing ancestor is (it is created on write).
Writability is tried with a probe file that is removed at once, not guessed from the mode bits: those do not bind
root, and say nothing of ``/proc`` or a read-only mount.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vitzoo import settings
from vitzoo.errors import VitzooError


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


class OutputError(VitzooError):
    """A file that cannot be written where it was asked for (read-only, not a directory, a directory, ...)."""


def default_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the process umask (mkstemp's 0o600 would ignore it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:  # reading it does not change the umask
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(dst: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; on success it replaces ``dst`` atomically, else it is removed.

    The file gets the umask's default mode (as ``open()`` would give it), so a shared cache stays shared;
    a location that cannot be written raises ``OutputError``.
    """
    dst = Path(dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"{dst}: {unwritable_reason(dst) or e.strerror or type(e).__name__}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, dst)
    except OSError as e:  # a full disk (ENOSPC) included: one line, and the partial file is removed below
        why = "is a directory" if isinstance(e, IsADirectoryError) else f"writing failed ({e.strerror or repr(e)})"
        raise OutputError(f"{dst}: {why}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
