"""Files from the network: the Hugging Face Hub (through huggingface_hub and its cache) and plain HTTPS URLs.

The Hub side honours everything huggingface_hub does (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``,
tokens); vitzoo's own cache of converted checkpoints lives under ``VITZOO_CACHE`` (default
``~/.cache/vitzoo``), keyed by repository, commit and the downloaded file's hash.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from vitzoo.errors import VitzooError
from vitzoo.files import cache_dir, sha256_of, unwritable_reason
from vitzoo.zoo.registry import HubFile

Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


OFFLINE_HELP = "offline: README, Offline and air-gapped use"  # where every offline failure points
PROBE_TIMEOUT_S = 3.0  # how long a TCP connection to the Hub (or its proxy) may take before it counts as unreachable


class HubError(VitzooError):
    """A file that could not be fetched; the message says which and what to do.

    ``download_message`` is the same error as `vitzoo download` words it (its hint cannot be "run vitzoo download").
    """

    def __init__(self, message: str, download_message: str | None = None) -> None:
        super().__init__(message)
        self.download_message = download_message or message


@functools.cache
def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``url``'s host (or to the proxy the environment sets for it) opens in time.

    Asked once per process and URL: an unreachable Hub then costs one short wait instead of huggingface_hub's
    retries (about half a minute and a warning line per retry). Name resolution counts towards the timeout.
    """
    outcome: list[bool] = []

    def connect() -> None:
        parts = urllib.parse.urlsplit(url)
        proxy = None
        if not urllib.request.proxy_bypass_environment(parts.hostname or ""):
            proxy = urllib.request.getproxies_environment().get(parts.scheme)
        target = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}") if proxy else parts
        try:
            port = target.port or (443 if target.scheme == "https" else 80)
            socket.create_connection((target.hostname or "", port), timeout=timeout).close()
            outcome.append(True)
        except (OSError, ValueError):
            outcome.append(False)

    thread = threading.Thread(target=connect, name="vitzoo-hub-probe", daemon=True)  # getaddrinfo has no timeout
    thread.start()
    thread.join(timeout)
    return bool(outcome and outcome[0])


def cache_problem(*parts: str) -> str | None:
    """Why vitzoo cannot write in ``cache_dir() / parts`` (one line naming VITZOO_CACHE), or None if it can."""
    root = cache_dir()
    if why := unwritable_reason(root.joinpath(*parts) / ".write-check"):
        source = "VITZOO_CACHE" if os.environ.get("VITZOO_CACHE") else "the default location"
        return f"vitzoo's cache {root} ({source}) is not usable: {why}; set VITZOO_CACHE to a writable directory"
    return None


def writable_cache(*parts: str) -> Path:
    """``cache_dir() / parts``, checked to be a place vitzoo can write in before any download or conversion."""
    if problem := cache_problem(*parts):
        raise HubError(problem)
    return cache_dir().joinpath(*parts)


def fetch(hub: HubFile, name: str) -> Path:
    """Download (or find in the Hugging Face cache) one registry file; errors name the repo and what to do."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{hub.repo_id}/{hub.filename}@{hub.revision}"
    offline = constants.is_offline_mode() or not reachable(constants.ENDPOINT)  # then only the cache is asked
    try:
        path = Path(hf_hub_download(hub.repo_id, hub.filename, revision=hub.revision, local_files_only=offline))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        hf_offline = constants.is_offline_mode()
        why = "HF_HUB_OFFLINE is set" if hf_offline else f"the Hub ({constants.ENDPOINT}) is unreachable"
        problem = f"{name}: {where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}"
        retry = "unset HF_HUB_OFFLINE" if hf_offline else "check the network (or HF_ENDPOINT)"
        raise HubError(
            f"{problem}; run `vitzoo download {name}` where the Hub is reachable, or point HF_HOME at a cache that "
            f"has it ({OFFLINE_HELP})",
            f"{problem}; {retry} and retry, or point HF_HOME at a Hugging Face cache that has it ({OFFLINE_HELP})",
        ) from None
    except GatedRepoError:
        raise HubError(f"{name}: {hub.repo_id} is gated; accept its terms on the Hub and log in (HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise HubError(f"{name}: Hub repository {hub.repo_id} not found (or private: set HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise HubError(f"{name}: revision {hub.revision!r} not found in {hub.repo_id}") from None
    except EntryNotFoundError:
        raise HubError(f"{name}: {hub.filename} not found in {hub.repo_id}@{hub.revision}") from None
    except (HfHubHTTPError, OSError) as e:
        raise HubError(f"{name}: downloading {where} failed: {str(e).splitlines()[0] if str(e) else e!r}") from None
    if hub.sha256 and sha256_of(path) != hub.sha256:
        raise HubError(f"{name}: {where} does not match its recorded sha256; delete it from the HF cache and retry")
    return path


def cache_key(downloaded: Path, hub: HubFile) -> Path:
    """Where the converted copy of a downloaded Hub file lives: repo / commit / file hash."""
    commit = downloaded.parent.name if downloaded.parent.parent.name == "snapshots" else hub.revision
    blob = downloaded.resolve().name  # the blob's name in the HF cache is the file's etag (sha256 for LFS files)
    repo = "models--" + hub.repo_id.replace("/", "--")
    return cache_dir() / "converted" / repo / commit / f"{blob}.safetensors"


def download_url(url: str, dst_dir: Path, sha256: str | None = None, progress: Progress | None = None) -> Path:
    """Download ``url`` into ``dst_dir``, resuming a partial ``.part`` file; size and (if given) sha256 checked.

    A file lock (``<file>.lock``) serialises concurrent downloads of one URL into one folder: a second
    process waits, then finds the finished file instead of appending to the same ``.part``.
    """
    from filelock import FileLock

    dst = dst_dir / url.rstrip("/").rsplit("/", 1)[-1]
    if dst.is_file() and (sha256 is None or sha256_of(dst) == sha256):
        return dst
    try:
        dst_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HubError(f"{url}: cannot create {dst_dir} ({e.strerror or type(e).__name__})") from None
    with FileLock(str(dst) + ".lock"):
        if dst.is_file() and (sha256 is None or sha256_of(dst) == sha256):  # another process finished it
            return dst
        return _download(url, dst, sha256, progress)


def _download(url: str, dst: Path, sha256: str | None, progress: Progress | None) -> Path:
    """The download itself (the caller holds the lock): resume ``dst.part``, check, then rename to ``dst``."""
    part = dst.with_name(dst.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if have and response.status != 206:  # server ignored the range: start over
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(part, "ab" if have else "wb") as f:
                done = have
                while block := response.read(1 << 20):
                    f.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the partial file is already complete
            total = done = have
        else:
            raise HubError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise HubError(f"{url}: download failed ({getattr(e, 'reason', e)}); run again to resume") from None
    if total is not None and done != total:
        raise HubError(f"{url}: got {done} of {total} bytes; run again to resume")
    if sha256 and sha256_of(part) != sha256:
        part.unlink()
        raise HubError(f"{url}: sha256 mismatch (expected {sha256}); the partial file was removed")
    os.replace(part, dst)
    return dst
