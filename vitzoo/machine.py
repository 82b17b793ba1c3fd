"""What this machine has, read from the OS without torch: its CPU's ISA flags, RAM available, this process's memory."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os


@functools.cache
def cpu_flags() -> frozenset[str] | None:
    """The CPU's ISA flags (lower case) from ``/proc/cpuinfo``, or None where that file does not exist."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.lower().split())
    except OSError:
        pass
    return None


def available_ram() -> int | None:
    """Free RAM in bytes (``MemAvailable`` of /proc/meminfo), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def current_rss() -> int | None:
    """Resident set size of this process in bytes (Linux ``/proc/self/statm``), or None where unknown."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def trim_memory() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``), so that RSS deltas mean something."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
