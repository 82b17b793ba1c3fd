"""Several processes, one result: the torch.distributed machinery behind ``torchrun ... -m vitzoo`` and ``--nproc``.

* ``launch_info`` reads what torchrun (or any launcher that sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) says
  about this process; ``process_group`` initialises torch.distributed for it (gloo for CPU tensors, plus NCCL
  for CUDA tensors when the device is a GPU) with a configurable timeout.
* ``shard_range`` splits ``n`` items into disjoint contiguous shards that cover every item exactly once (no
  padding duplicates, unlike ``DistributedSampler``), aligned to whole batches so that every rank sees exactly
  the batches a single process would see.
* ``gather`` runs one step of work on every rank and hands every rank the list of all ranks' results in rank
  order; ``agree`` only checks that every rank succeeded. A rank whose step raises tells the others (the
  exchange carries its error, and a flag in the rendezvous store lets the others stop early), and every rank
  then raises the same ``RankError`` naming the first failing rank and the cause. A rank that dies or hangs
  makes the others fail when the connection drops or the timeout expires, naming the rank that never reached
  the exchange (each rank marks its arrival in the rendezvous store).
* ``vitzoo.parallel.spawn`` starts ``nproc`` copies of a command on this machine (``--nproc``).

Results travel as JSON plus raw numpy buffers, never as pickles (``vitzoo.parallel.wire``). Library code: nothing
is printed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from vitzoo import settings
from vitzoo.errors import VitzooError
from vitzoo.parallel.wire import decode, encode

T = TypeVar("T")

ENV_TIMEOUT = "VITZOO_DIST_TIMEOUT"  # seconds a collective waits for the slowest rank
DEFAULT_TIMEOUT_S = 1800.0
ABORTED = "\0aborted"  # the error a rank reports when it stopped because another one failed
_CHECK_EVERY_S = 0.5  # how often a working rank looks for another rank's failure flag


class RankError(VitzooError):
    """A step failed on some rank (every rank raises the same one), or the ranks lost contact."""

    def __init__(self, rank: int | None, cause: str) -> None:
        self.rank, self.cause = rank, cause
        super().__init__(f"rank {rank}: {cause}" if rank is not None else cause)


class PeerAborted(Exception):
    """Raised inside a rank's work when another rank has failed: stop, the exchange reports the cause."""


@dataclass(frozen=True)
class Launch:
    """Where this process stands in a launch: its global and local rank, and how many processes there are."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints, shows progress and writes to the results store."""
        return self.rank == 0


def launch_info(environ: dict[str, str] | None = None) -> Launch:
    """This process's place in a torchrun-style launch (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ...)."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return Launch()
    try:
        world = int(env["WORLD_SIZE"])
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
        local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError:
        raise VitzooError("RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers") from None
    if world < 1 or not 0 <= rank < world or not 0 <= local_rank < local_world:
        raise VitzooError(f"inconsistent launch: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local_rank}")
    return Launch(rank, world, local_rank, local_world)


def current() -> Launch:
    """The launch of this process when torch.distributed is initialised (by ``process_group``), else one process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return Launch()
    return _initialised()


def _initialised() -> Launch:
    import torch.distributed as dist

    info = launch_info()
    return Launch(dist.get_rank(), dist.get_world_size(), info.local_rank, info.local_world_size)


def resolve_timeout(seconds: float | None = None) -> float:
    """``seconds``, else ``$VITZOO_DIST_TIMEOUT``, else 30 minutes (the slowest rank's shard must fit in it)."""
    if seconds is None:
        seconds = settings.seconds(ENV_TIMEOUT, DEFAULT_TIMEOUT_S)
    if not (math.isfinite(seconds) and seconds > 0):
        raise VitzooError(f"the distributed timeout must be > 0 seconds and finite, not {seconds}")
    return float(seconds)


def rank_device(device: str, launch: Launch | None = None) -> str:
    """The device of this rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` in a launch; anything else is kept."""
    launch = launch_info() if launch is None else launch
    if device != "cuda" or not launch.is_distributed:
        return device
    import torch

    if torch.cuda.is_available() and launch.local_rank >= torch.cuda.device_count():
        raise VitzooError(
            f"local rank {launch.local_rank} has no GPU: {torch.cuda.device_count()} CUDA device(s) for "
            f"{launch.local_world_size} processes on this node"
        )
    return f"cuda:{launch.local_rank}"


_RUN_ID: str | None = None  # one id per process group, to name the failure flag in the store


@contextmanager
def process_group(device: str = "cpu", timeout_s: float | None = None) -> Iterator[Launch]:
    """torch.distributed initialised for this launch (nothing to do for one process); destroyed on exit.

    CPU tensors (everything vitzoo exchanges) go through gloo; with a CUDA device, CUDA tensors go through
    NCCL and the current device is ``cuda:LOCAL_RANK``. ``timeout_s`` bounds every collective.
    """
    global _RUN_ID
    launch = launch_info()
    if not launch.is_distributed:
        yield launch
        return
    import torch
    import torch.distributed as dist

    timeout = dt.timedelta(seconds=resolve_timeout(timeout_s))
    backend = "gloo"
    if device.split(":", 1)[0] == "cuda" and torch.cuda.is_available():
        if launch.local_rank < torch.cuda.device_count():  # else rank_device says so, on every rank
            torch.cuda.set_device(launch.local_rank)
        backend = "cpu:gloo,cuda:nccl"
    try:
        dist.init_process_group(backend, timeout=timeout)
    except Exception as e:  # rendezvous failures: missing MASTER_ADDR, a peer that never came, ...
        raise VitzooError(f"cannot join the process group of {launch.world_size} ranks: {_one_line(e)}") from None
    try:
        _EXCHANGES[0] = 0
        _RUN_ID = gather(lambda: uuid.uuid4().hex, "starting")[0]  # also checks that every rank is there
        yield _initialised()
    finally:
        _RUN_ID = None
        dist.destroy_process_group()


# -- shards -----------------------------------------------------------------------------------------------


def shard_range(n: int, rank: int, world_size: int, align: int = 1) -> range:
    """The items of ``rank``: a contiguous run of whole blocks of ``align`` items (the last block may be short).

    The ``ceil(n / align)`` blocks are dealt out as evenly as possible, the first ranks getting one more; the
    shards are disjoint, in rank order, and cover ``range(n)`` exactly once. A rank may get nothing.
    """
    if not 0 <= rank < world_size or align < 1 or n < 0:
        raise ValueError(f"bad shard request: n={n} rank={rank} world_size={world_size} align={align}")
    blocks = -(-n // align)
    per, extra = divmod(blocks, world_size)
    first = rank * per + min(rank, extra)
    count = per + (rank < extra)
    return range(min(n, first * align), min(n, (first + count) * align))


def shard_dataset(data: Any, launch: Launch, align: int = 1) -> Any:
    """This rank's contiguous shard of an ``ImageDataset`` (the same keys, labels and reader)."""
    from vitzoo.evaluate.data import ImageDataset

    r = shard_range(len(data), launch.rank, launch.world_size, align)
    sl = slice(r.start, r.stop)
    return ImageDataset(data.sources[sl], data.keys[sl], data.labels[sl], data.classes, data.description,
                        data.reader, data.preprocess)  # fmt: skip


# -- exchanging results -------------------------------------------------------------------------------------


def _one_line(e: BaseException) -> str:
    if isinstance(e, VitzooError):
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    text = str(e).strip().splitlines()
    first = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", text[0]) if text else ""  # gloo's source location
    return f"{type(e).__name__}: {first}".rstrip(": ")[:400]


def _all_gather_bytes(payload: bytes, what: str) -> list[bytes]:
    """Every rank's ``payload``, in rank order (two CPU all_gathers: the sizes, then the padded bytes)."""
    import torch
    import torch.distributed as dist

    world = dist.get_world_size()
    _EXCHANGES[0] += 1
    arrived = _arrivals(_EXCHANGES[0])
    try:
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([len(payload)], dtype=torch.int64))
        top = max(int(s) for s in sizes)
        mine = torch.zeros(top, dtype=torch.uint8)
        mine[: len(payload)] = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
        out = [torch.empty(top, dtype=torch.uint8) for _ in range(world)]
        dist.all_gather(out, mine)
    except RuntimeError as e:  # DistBackendError and gloo's errors: a peer died, or the timeout expired
        missing = arrived(world)
        if missing:
            raise RankError(missing[0], f"stopped answering while {what} ({_one_line(e)})") from None
        raise RankError(None, f"lost contact with another rank while {what} ({_one_line(e)})") from None
    return [bytes(o[: int(s)].numpy()) for o, s in zip(out, sizes, strict=True)]


_EXCHANGES = [0]  # exchanges so far in this process group: the same count on every rank


def _arrivals(exchange: int) -> Callable[[int], list[int]]:
    """Mark (in the store) that this rank reached ``exchange``; returns a function listing the ranks that did not."""
    import torch.distributed as dist

    store = _store() if _RUN_ID else None
    if store is None:
        return lambda world: []
    key = lambda r: _flag(f"arrived/{exchange}/{r}")  # noqa: E731
    with contextlib.suppress(Exception):
        store.set(key(dist.get_rank()), b"1")

    def missing(world: int) -> list[int]:
        try:
            return [r for r in range(world) if not store.check([key(r)])]
        except Exception:
            return []

    return missing


def _store() -> Any:
    """The rendezvous key-value store of the default process group (None if this torch hides it)."""
    try:
        from torch.distributed.distributed_c10d import _get_default_store

        return _get_default_store()
    except Exception:  # a private API: without it a failure is only noticed at the next exchange
        return None


def _flag(name: str) -> str:
    return f"vitzoo/{_RUN_ID}/{name}"


def raise_flag(message: str) -> None:
    """Tell the other ranks (through the store) that this rank failed, so that they stop early."""
    store = _store() if _RUN_ID else None
    if store is not None:
        with contextlib.suppress(Exception):  # the store is gone: the exchange still reports the failure
            store.set(_flag("abort"), message.encode())


def failure_watch() -> Callable[[], None]:
    """A check to call between batches: raises ``PeerAborted`` (at most every 0.5 s it asks) once a rank failed."""
    store = _store() if _RUN_ID else None
    last = [0.0]

    def check() -> None:
        now = time.monotonic()
        if store is None or now - last[0] < _CHECK_EVERY_S:
            return
        last[0] = now
        try:
            failed = store.check([_flag("abort")])
        except Exception:
            return
        if failed:
            raise PeerAborted()

    return check


def gather(work: Callable[[], T], what: str) -> list[T]:
    """``work()`` on every rank; every rank gets all ranks' results in rank order (``[work()]`` for one process).

    ``work`` returns JSON data and numpy arrays (see ``encode``). If it raises on any rank, every rank raises
    the same ``RankError``, naming the first rank that failed (not counting ranks that stopped because of it),
    or naming none when every rank failed in the same way.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [work()]
    try:
        blob = encode({"error": None, "result": work()})
    except PeerAborted:
        blob = encode({"error": ABORTED, "result": None})
    except Exception as e:
        if isinstance(e, RankError):  # an exchange inside ``work`` already failed on every rank
            raise
        cause = _one_line(e)
        raise_flag(cause)
        blob = encode({"error": cause, "result": None})
    outcomes = [decode(b) for b in _all_gather_bytes(blob, what)]
    errors = [o["error"] for o in outcomes]
    if len(set(errors)) == 1 and errors[0] not in (None, ABORTED):  # the same failure everywhere: a user mistake
        raise RankError(None, errors[0])
    for rank, error in enumerate(errors):
        if error is not None and error != ABORTED:
            raise RankError(rank, error)
    if any(o["error"] for o in outcomes):
        raise RankError(None, f"ranks stopped while {what}, but none said why")
    return [o["result"] for o in outcomes]


def agree(work: Callable[[], T], what: str) -> T:
    """``work()`` on this rank (its result stays here); raises ``RankError`` on every rank if any rank failed."""
    out: list[T] = []
    gather(lambda: out.append(work()), what)
    return out[0]


def report_failure(error: BaseException, what: str) -> RankError:
    """For a rank whose work failed outside ``gather``: join the others' next exchange with this error.

    Returns the ``RankError`` to raise (naming the first failing rank, which may be another one).
    """
    if isinstance(error, RankError):
        return error

    def fail() -> None:
        raise error

    try:
        gather(fail, what)
    except RankError as e:
        return e
    return RankError(launch_info().rank, _one_line(error))  # pragma: no cover (gather always raises here)


def finish_together(main_first: bool, wait_s: float = 10.0) -> None:
    """Rank 0 marks that it is done (e.g. printed the error); the others wait for that mark, at most ``wait_s``.

    So that a launcher that stops every worker when one exits does not stop rank 0 before it has spoken.
    """
    store = _store() if _RUN_ID else None
    if store is None:
        return
    try:
        if main_first:
            store.set(_flag("done"), b"1")
        else:
            store.wait([_flag("done")], dt.timedelta(seconds=wait_s))
    except Exception:
        pass
