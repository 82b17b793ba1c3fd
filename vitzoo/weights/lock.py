"""Lock files: for every checkpoint fetched, the exact file used (Hub commit or URL, size, sha256).

``vitzoo download NAMES --lock vitzoo.lock`` writes one; ``vitzoo.load(name, lock="vitzoo.lock")`` (or
``VITZOO_LOCK``) then refuses any file that differs from it and says what differs. A lock is JSON::

    {"vitzoo_lock": 1,
     "checkpoints": {"vit-b16.orig-in21k-ft-in1k": {"source": "hub", "repo_id": "google/vit-base-patch16-224",
                     "filename": "model.safetensors", "revision": "main", "commit": "…", "size": 346…,
                     "sha256": "…"}}}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

from vitzoo import settings
from vitzoo.errors import VitzooError
from vitzoo.weights.checkpoint import atomic_path
from vitzoo.zoo.registry import HubFile, Source, UrlFile, same_url

LOCK_VERSION = 1
ENV_VAR = "VITZOO_LOCK"


class LockError(VitzooError):
    """A lock file that cannot be read, lacks a checkpoint, or disagrees with the file found."""


@dataclass(frozen=True)
class LockEntry:
    """The file one checkpoint was loaded from."""

    source: Literal["hub", "url"]
    size: int
    sha256: str
    repo_id: str | None = None  # hub
    filename: str | None = None  # hub
    revision: str | None = None  # hub: the revision asked for (the registry's, usually "main")
    commit: str | None = None  # hub: the commit it resolved to
    url: str | None = None  # url

    @property
    def label(self) -> str:
        """``repo/file@commit`` or the URL."""
        if self.source == "hub":
            return f"{self.repo_id}/{self.filename}@{(self.commit or self.revision or '')[:12]}"
        return str(self.url)

    def matches(self, source: Source) -> bool:
        """Whether this entry was fetched from ``source`` (a registry source of the checkpoint)."""
        if isinstance(source, HubFile):
            return self.source == "hub" and (self.repo_id, self.filename) == (source.repo_id, source.filename)
        return self.source == "url" and self.url is not None and same_url(self.url, source.url)

    def differences(self, found: LockEntry) -> list[str]:
        """What differs between this (locked) entry and the file ``found``, one phrase per field."""
        out = []
        if self.label.split("@")[0] != found.label.split("@")[0]:
            out.append(f"source {self.label.split('@')[0]} (lock) vs {found.label.split('@')[0]}")
        if self.source == "hub" and self.commit != found.commit:
            out.append(f"commit {self.commit} (lock) vs {found.commit}")
        if self.size != found.size:
            out.append(f"size {self.size} (lock) vs {found.size} bytes")
        if self.sha256 != found.sha256:
            out.append(f"sha256 {self.sha256} (lock) vs {found.sha256}")
        return out


def entry_for(source: Source, *, size: int, sha256: str, commit: str | None = None) -> LockEntry:
    """The lock entry of a file fetched from ``source``."""
    if isinstance(source, HubFile):
        return LockEntry("hub", size, sha256, source.repo_id, source.filename, source.revision, commit)
    assert isinstance(source, UrlFile)
    return LockEntry("url", size, sha256, url=source.url)


def lock_path(lock: str | os.PathLike | None) -> Path | None:
    """The lock to honour: the argument, else ``$VITZOO_LOCK``, else None."""
    if lock is not None:
        return Path(lock).expanduser()
    return settings.path(ENV_VAR)


def read_lock(path: str | os.PathLike) -> dict[str, LockEntry]:
    """``arch.tag`` -> entry; a missing, unreadable or foreign file raises ``LockError``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        hint = f"write it with `vitzoo download NAME --lock {path}`"
        raise LockError(f"lock file {path} does not exist; {hint}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LockError(f"lock file {path} is not readable JSON ({e})") from None
    if not isinstance(data, dict) or data.get("vitzoo_lock") != LOCK_VERSION:
        raise LockError(f"{path} is not a vitzoo lock file (version {LOCK_VERSION})")
    names = {f.name for f in fields(LockEntry)}
    out = {}
    for name, raw in (data.get("checkpoints") or {}).items():
        if not isinstance(raw, dict) or not {"source", "size", "sha256"} <= raw.keys() or not raw.keys() <= names:
            raise LockError(f"{path}: the entry of {name} is malformed")
        out[name] = LockEntry(**raw)
    return out


def write_lock(path: str | os.PathLike, entries: dict[str, LockEntry]) -> Path:
    """Add (or replace) ``entries`` in the lock at ``path``, creating it if needed; written atomically."""
    path = Path(path)
    current = read_lock(path) if path.exists() else {}
    current.update(entries)
    data = {
        "vitzoo_lock": LOCK_VERSION,
        "checkpoints": {
            name: {k: v for k, v in asdict(e).items() if v is not None} for name, e in sorted(current.items())
        },
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return path
