"""A registry checkpoint fetched from the first of its sources that works, converted once, checked against a lock.

A tag lists its sources in order of preference (Hub safetensors, Hub ``.bin``, a second Hub port, the original
``.npz`` URL). Each is tried in turn; one that fails — not found (404), refused (403), unreachable or offline,
checksum mismatch, or a file that does not convert to the registered model — falls through to the next, and a
``SourceFallbackWarning`` says which source was used and why the earlier ones were skipped. The file used is
converted once into vitzoo's cache; its size, sha256 and Hub commit are kept in the converted file's metadata,
so they are known without hashing again.

With a lock (``vitzoo.weights.lock``), only the locked source is used, at its locked Hub commit, and a file whose
commit, size or sha256 differs from the lock raises ``LockError`` saying what differs.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from vitzoo.errors import VitzooError
from vitzoo.files import cache_dir, sha256_of
from vitzoo.weights import hub
from vitzoo.weights.checkpoint import CheckpointError, save_vitzoo
from vitzoo.weights.convert import Converted, check_architecture, convert_file
from vitzoo.weights.lock import LockEntry, LockError, entry_for, lock_path, read_lock
from vitzoo.zoo.catalog import REGISTRY
from vitzoo.zoo.checkpoint import Checkpoint
from vitzoo.zoo.configs import ViTConfig
from vitzoo.zoo.lookup import resolve_one
from vitzoo.zoo.registry import HubFile, ModelSpec, Source, UrlFile, Weights


class SourceFallbackWarning(UserWarning):
    """A checkpoint came from a later source because the earlier ones failed (the message says which and why)."""


class SourcesError(hub.HubError):
    """Every source of a checkpoint failed; the message lists each with its reason."""


@dataclass(frozen=True)
class Fetched:
    """A checkpoint in vitzoo's cache and the file it came from."""

    name: str  # arch.tag
    path: Path  # the converted canonical safetensors
    spec: ModelSpec
    weights: Weights
    source: Source  # the source used
    entry: LockEntry  # what a lock records for it: commit or URL, size, sha256
    skipped: tuple[str, ...] = ()  # "source: why" for each source that failed before it


def fetch_checkpoint(name: str | Checkpoint, lock: str | os.PathLike | Literal[False] | None = None) -> Fetched:
    """Fetch ``arch[.tag]`` (or a resolved catalogue ``Checkpoint``) from its sources in order and convert it once.

    ``lock``: a lock file whose entry the file must match (default ``$VITZOO_LOCK``); False: no lock at all
    (what ``vitzoo download --lock`` uses to record a new entry).
    """
    checkpoint = name if isinstance(name, Checkpoint) else resolve_one(name)
    if checkpoint.arch is None or checkpoint.tag is None:
        raise hub.HubError(f"{checkpoint.name} is not a catalogue checkpoint; nothing to download")
    spec, weights = REGISTRY.entry(checkpoint.arch, checkpoint.tag)
    assert weights is not None
    full = checkpoint.name
    check_cache()
    path = None if lock is False else lock_path(lock)
    if path is not None:
        return _fetch_locked(full, spec, weights, path)
    skipped: list[tuple[Source, VitzooError]] = []
    for source in weights.sources:
        try:
            fetched = _fetch_one(full, spec, weights, source)
        except (hub.HubError, CheckpointError) as e:
            skipped.append((source, e))
            continue
        if skipped:
            why = "; ".join(f"{s.label} failed ({_reason(e, full, s)})" for s, e in skipped)
            warnings.warn(f"{full}: used {source.label}: {why}", SourceFallbackWarning, stacklevel=3)
        return replace(fetched, skipped=tuple(f"{s.label}: {_reason(e, full, s)}" for s, e in skipped))
    if not any(isinstance(e, CheckpointError) for _, e in skipped):  # not found anywhere: a file no one publishes?
        check_published(full)
    if len(skipped) == 1:
        raise skipped[0][1]
    raise SourcesError(_all_failed(full, skipped), _all_failed(full, skipped, for_download=True))


def check_cache() -> None:
    """Raise one line when vitzoo's cache cannot hold checkpoints at all (a file, or nowhere to create it), before
    any download. A read-only cache passes: it may already hold what is asked for."""
    problem = hub.cache_problem("converted")
    if problem and not cache_dir().is_dir():
        raise hub.HubError(problem)


def check_published(name: str) -> None:
    """One line for a checkpoint no one can download (the ``testing`` architecture's), instead of advice to
    download it."""
    checkpoint = resolve_one(name)
    if checkpoint.arch is None or checkpoint.tag is None:
        return
    _, weights = REGISTRY.entry(checkpoint.arch, checkpoint.tag)
    if weights is not None and not weights.published:
        why = weights.notes or "its weights are not published"
        raise hub.HubError(f"{checkpoint.name} cannot be downloaded: {why}")


def _all_failed(full: str, skipped: list[tuple[Source, VitzooError]], for_download: bool = False) -> str:
    """One line for a checkpoint none of whose sources could be fetched (worded for `vitzoo download` or not)."""
    grouped: dict[str, list[str]] = {}  # the same reason (offline, say) is given once for all its sources
    for s, e in skipped:
        error = VitzooError(e.download_message) if for_download and isinstance(e, hub.HubError) else e
        grouped.setdefault(_reason(error, full, s), []).append(s.label)
    reasons = " | ".join(f"{', '.join(labels)}: {reason}" for reason, labels in grouped.items())
    return f"{full}: none of its {len(skipped)} sources could be fetched: {reasons}"


def _reason(error: Exception, full: str, source: Source) -> str:
    """The error without the names the message around it already gives (the checkpoint, the source)."""
    text = str(error).removeprefix(f"{full}: ")
    return text.removeprefix(f"{source.label}: ").removeprefix(f"{source.label} ")


def _fetch_locked(full: str, spec: ModelSpec, weights: Weights, path: Path) -> Fetched:
    """The locked file of ``full``, or ``LockError`` saying what differs."""
    entries = read_lock(path)
    if full not in entries:
        raise LockError(f"{full} is not in the lock file {path}; add it with `vitzoo download {full} --lock {path}`")
    locked = entries[full]
    source = next((s for s in weights.sources if locked.matches(s)), None)
    if source is None:
        listed = ", ".join(s.label for s in weights.sources)
        raise LockError(f"{full}: {path} locks {locked.label}, which is not one of its sources ({listed})")
    pinned = locked.commit if isinstance(source, HubFile) else None
    try:
        fetched = _fetch_one(full, spec, weights, source, revision=pinned)
    except (hub.HubError, CheckpointError) as e:
        why = _reason(e, full, source)
        try:  # what the source holds now, to say what differs
            now = _fetch_one(full, spec, weights, source)
        except (hub.HubError, CheckpointError):
            raise LockError(f"{full}: the locked file {locked.label} could not be fetched ({why})") from None
        diffs = locked.differences(now.entry) or [f"the locked file could not be fetched ({why})"]
        raise LockError(f"{full} differs from the lock {path}: " + "; ".join(diffs)) from None
    diffs = locked.differences(fetched.entry)
    if diffs:
        raise LockError(
            f"{full} differs from the lock {path}: {'; '.join(diffs)}; "
            f"if the new file is intended, re-lock it with `vitzoo download {full} --lock {path}`"
        )
    return fetched


def _fetch_one(full: str, spec: ModelSpec, weights: Weights, source: Source, revision: str | None = None) -> Fetched:
    """Download one source (at ``revision`` for a Hub file) and convert it into the cache, once."""
    from filelock import FileLock
    from safetensors import safe_open

    if isinstance(source, HubFile):
        downloaded = hub.fetch(source if revision is None else replace(source, revision=revision), full)
        commit = downloaded.parent.name if downloaded.parent.parent.name == "snapshots" else None
        target = hub.cache_key(downloaded, source)
        sha = None
    else:
        downloaded, commit = _download_url(source, full), None
        sha = sha256_of(downloaded)
        stem = source.url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".npz")  # laid out as `vitzoo cache` reads
        target = cache_dir() / "converted" / "urls" / sha / f"{stem}.safetensors"
    if not target.is_file():  # written atomically, so complete: a complete cache is only read (it may be read-only)
        if problem := hub.cache_problem("converted"):
            raise VitzooError(problem)  # not this source's failure: no other source would fare better
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):  # a second process waits, then finds the file
            if not target.exists():
                result = convert_file(downloaded, expected=spec.config_for(weights))
                result = fit_to_registry(result, spec, weights, source)
                sha = sha or sha256_of(downloaded)
                extra = {"name": full, "source_format": result.source_format, "source": source.label,
                         "source_sha256": sha, "source_size": downloaded.stat().st_size,
                         "source_commit": commit or ""}  # fmt: skip
                save_vitzoo(target, result.state_dict, result.config, extra)
    with safe_open(str(target), "pt") as f:
        meta = f.metadata() or {}
    sha = meta.get("source_sha256") or sha or sha256_of(downloaded)
    size = int(meta.get("source_size") or downloaded.stat().st_size)
    entry = entry_for(source, size=size, sha256=sha, commit=commit)
    return Fetched(full, target, spec, weights, source, entry)


def _download_url(source: UrlFile, full: str) -> Path:
    """An original file, from vitzoo's download folder or its URL (never while HF_HUB_OFFLINE is set)."""
    from huggingface_hub import constants

    folder = cache_dir() / "downloads"
    name = source.url.rstrip("/").rsplit("/", 1)[-1]
    if not (folder / name).exists():
        if constants.is_offline_mode():
            raise hub.HubError(f"{full}: {source.url} was never downloaded and HF_HUB_OFFLINE is set; copy the "
                               f"original {name} into {folder} ({hub.OFFLINE_HELP})")  # fmt: skip
        if not hub.reachable(source.url):  # one short probe instead of a hanging download
            raise hub.HubError(f"{full}: {source.url} is unreachable; copy the original {name} into {folder} "
                               f"({hub.OFFLINE_HELP})")  # fmt: skip
    return hub.download_url(source.url, folder, source.sha256)


def fit_to_registry(result: Converted, spec: ModelSpec, weights: Weights, source: Source | None = None) -> Converted:
    """Check a converted file against its registry entry, dropping the layers the entry says were removed.

    The 2020 ImageNet-21k originals keep the head their authors zeroed (and, for R50+ViT-B/16, the pre_logits
    layer timm removed); their registry entries have no head, so an all-zero head (and that pre_logits layer) is
    dropped. Anything else that differs — layout (``source``'s), architecture, classes, representation — raises.
    """
    full = spec.full_name(weights)
    expected = spec.config_for(weights)
    config, sd = result.config, dict(result.state_dict)
    head = sd.get("head.weight")
    if weights.zero_head and expected.num_classes == 0 and config.num_classes and head is not None and not head.any():
        sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
        config = config.replace(num_classes=0)
        if isinstance(config, ViTConfig) and config.representation_size and not expected.representation_size:
            sd = {k: v for k, v in sd.items() if not k.startswith("pre_logits.")}
            config = config.replace(representation_size=None)
    if source is not None and result.source_format != source.format:
        found, declared = result.source_format, source.format
        raise CheckpointError(f"{full}: {source.label} is in {found} layout, the registry says {declared}")
    check_architecture(config, expected, full)
    if config.num_classes != expected.num_classes:
        found, declared = config.num_classes, expected.num_classes
        raise CheckpointError(f"{full}: checkpoint has {found} classes, registry says {declared}")
    found_rep = getattr(config, "representation_size", None)
    if found_rep != getattr(expected, "representation_size", None):
        raise CheckpointError(
            f"{full}: checkpoint has representation (pre_logits) size {found_rep}, "
            f"registry says {getattr(expected, 'representation_size', None)}"
        )
    return Converted(config, sd, result.source_format, result.ignored)
