"""``--nproc N``: start N ranks of a vitzoo command on this machine, as ``torchrun --standalone`` would.

torchrun's own launcher (the elastic agent, a standalone c10d rendezvous on a free port, no restarts) runs the
workers and stops every one as soon as one fails; ``spawn`` returns who failed and how.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from vitzoo.errors import VitzooError
from vitzoo.parallel.distributed import ENV_TIMEOUT, resolve_timeout

SPAWNED = "VITZOO_SPAWNED"  # set in the workers that ``spawn`` starts
SPOKE = "VITZOO_SPOKE_FILE"  # rank 0 creates this file once it has printed why the run failed (``--nproc``)


@dataclass(frozen=True)
class WorkerFailure:
    """A worker that did not exit cleanly: its rank and exit code (negative: killed by that signal)."""

    rank: int
    exit_code: int
    signal: str | None = None

    def describe(self) -> str:
        how = f"was killed by {self.signal}" if self.signal else f"exited with code {self.exit_code}"
        return f"rank {self.rank} {how}"


def spawn(nproc: int, args: Sequence[str], timeout_s: float | None = None) -> list[WorkerFailure]:
    """Run ``python ARGS`` as ``nproc`` ranks on this machine, as ``torchrun --standalone`` would.

    Returns the failures, the first observed one first (empty: every rank exited 0). The launcher stops every
    worker as soon as one fails. Workers get ``OMP_NUM_THREADS`` = CPUs / nproc unless it is set, and
    ``VITZOO_DIST_TIMEOUT`` = ``timeout_s`` when given.
    """
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise VitzooError(f"--nproc must be >= 1, not {nproc}")
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its failure report is ours to give
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    os.environ[SPAWNED] = "1"
    if timeout_s is not None:
        os.environ[ENV_TIMEOUT] = str(resolve_timeout(timeout_s))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          monitor_interval=0.1)  # fmt: skip
    try:
        elastic_launch(config, sys.executable)(*args)
    except ChildFailedError as e:
        first = e.get_first_failure()[1]
        ordered = [first] + [f for f in e.failures.values() if f is not first]
        return [WorkerFailure(f.local_rank, f.exitcode, f.signal_name() if f.exitcode < 0 else None) for f in ordered]
    return []
