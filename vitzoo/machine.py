"""What this machine has, read from the OS without torch: its CPU's ISA flags, RAM available, this process's memory,
and how its allocator hands memory back."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import platform

from vitzoo import settings


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


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


@functools.cache
def reuse_freed_memory() -> bool:
    """Make this process keep the memory it frees for its next allocations (glibc only); True where set.

    By default glibc maps every block over its mmap threshold (at most 32 MiB) afresh and unmaps it when freed, and
    trims the heap, so each CPU forward pass page-faults its big activations in again and the kernel zeroes them:
    with mmap off and no trimming, freed blocks are reused, for a somewhat larger RSS (faults, RSS and speed
    measured in benchmarks/results/heap-reuse-*.md). ONNX Runtime's arena does the same. A block
    allocated again and again between small allocations may be kept up to about eight times over before its
    copies are reused.

    The setting is for the whole process and stays, so only a command that measures calls it (``vitzoo bench``,
    the harness's entry points), never a query; ``heap_mode`` reports it. ``trim_memory`` still hands free pages
    back. Without glibc
    (musl, macOS) this does nothing and returns False; under a preloaded jemalloc or tcmalloc, which keep freed
    memory anyway, it is harmless. ``VITZOO_HEAP=system`` leaves glibc's defaults (False). The same from outside
    Python: ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647``.
    """
    if settings.choice("VITZOO_HEAP", "reuse") == "system" or platform.libc_ver()[0] != "glibc":
        return False
    global _HEAP_REUSED
    try:
        libc = ctypes.CDLL("libc.so.6")
        _HEAP_REUSED = bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False
    return _HEAP_REUSED


_HEAP_REUSED = False  # set by reuse_freed_memory


def heap_mode() -> str:
    """``"reuse"`` once ``reuse_freed_memory`` has changed this process's heap, else ``"system"`` (glibc's defaults,
    or no glibc); a query: it changes nothing."""
    return "reuse" if _HEAP_REUSED else "system"
