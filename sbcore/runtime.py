"""Process-wide settings for programs that own their process: the app, the ``sbcore`` command, the benchmarks."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from functools import cache

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MAX_MMAP_THRESHOLD = 32 * 2**20  # glibc's ceiling on 64-bit systems
_TRIM_THRESHOLD = 256 * 2**20
OPT_OUT = "SBCORE_GLIBC_MALLOC_DEFAULTS"  # set to 1 to leave glibc's malloc as it is


@cache
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (``find_library`` runs ``ldconfig``: milliseconds per call)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse rather than hand it back to the system at once.

    By default glibc maps every allocation of 128 KiB or more on its own and unmaps it when it is freed, so each
    forward pass on the CPU page-faults its activations in again. On this project's 2-vCPU machine that made
    a ResNet-38 forward pass at batch 8 about 1.3x slower (``benchmarks/allocator.py``). This raises the
    mmap threshold to glibc's maximum (32 MiB) and the trim threshold to 256 MiB: each malloc arena (one per
    thread that allocates, up to 8 per core) keeps up to 256 MiB of freed memory for its next allocations.
    Returns False where the C library is not glibc or ``SBCORE_GLIBC_MALLOC_DEFAULTS=1`` is set; then nothing
    changed, except where glibc took the first setting and refused the second.
    """
    mallopt = getattr(_libc(), "mallopt", None)
    if os.environ.get(OPT_OUT) == "1" or mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MAX_MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def release_freed_memory() -> bool:
    """Hand the memory malloc holds freed back to the system now (glibc's ``malloc_trim``), for instance when a
    server goes idle after a request. Returns False where the C library is not glibc."""
    malloc_trim = getattr(_libc(), "malloc_trim", None)
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True


def cpu_sample() -> tuple[float, float, float] | None:
    """(busy CPU seconds of the whole machine, CPU seconds of this process, monotonic seconds) now, from Linux's
    ``/proc/stat``; the difference of two samples tells how busy other processes kept the cores. None without
    ``/proc``."""
    try:
        with open("/proc/stat") as handle:
            fields = [float(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # user..steal, without guest time counted twice
    return busy, sum(os.times()[:2]), time.monotonic()
