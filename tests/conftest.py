"""Shared fixtures, and the order the suite runs in."""

from __future__ import annotations

import pytest
import torch

# Run last: the deployment matrix loads every runtime's native thread pools into this process (OpenVINO + NNCF,
# ONNX Runtime's quantizer, torch.compile's Inductor for the int8 paths). In a full run, the next test that starts a
# subprocess after them crashed the pytest process itself with SIGSEGV inside the fork (seen twice, at the same
# test; each file passes on its own, and a `vitzoo` command runs one matrix per process). Nothing runs after them.
RUN_LAST = ("test_matrix.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name in RUN_LAST)  # stable: the order is otherwise unchanged


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread (and do not stall when other processes load the CPUs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
