"""The C allocator's thresholds for the daemon's large short-lived buffers (glibc only).

A bulk transfer allocates and frees a few buffers of 128 KiB–16 MiB per block: socket
reads, TLS records, blocks read from and written to disk, messages. glibc starts by
serving such sizes with ``mmap`` and raises that threshold only as it sees them freed,
and it gives the top of its heap back to the kernel whenever more than twice that
threshold is free there. Which of the two happens depends on the order of allocations,
so a transfer either reuses its memory or, in the unlucky order, maps, faults in (the
kernel zeroes each page) and unmaps again every buffer: moving 512 MiB through a
loopback TLS pair took 220,000-330,000 page faults in that order and 7,400 (mostly the
interpreter's start) with the thresholds fixed. The daemon fixes them at start
(``mallopt``) at glibc's own dynamic maxima: buffers up to 32 MiB come from the heap,
and up to 64 MiB of free heap top is kept.

Nothing is changed when the C library is not glibc, or when the user already set the
thresholds through glibc's ``MALLOC_*_`` environment variables.
"""

from __future__ import annotations

import ctypes
import os
import platform
from dataclasses import dataclass

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc refuses more than HEAP_MAX_SIZE / 2
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # as glibc's dynamic rule keeps it

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


@dataclass(frozen=True, slots=True)
class AllocatorTuning:
    """What :func:`keep_freed_memory` did; ``reason`` says why not when not applied."""

    applied: bool
    reason: str = ""


def keep_freed_memory() -> AllocatorTuning:
    """Fix glibc's mmap and trim thresholds (see the module docstring)."""
    if platform.libc_ver()[0] != "glibc":
        return AllocatorTuning(False, "not glibc")
    if any(name in os.environ for name in _USER_SETTINGS):
        return AllocatorTuning(False, "set by the environment")
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - glibc always has it
        return AllocatorTuning(False, "no mallopt")
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if not mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        return AllocatorTuning(False, "mallopt refused the mmap threshold")
    if not mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD):  # pragma: no cover
        return AllocatorTuning(False, "mallopt refused the trim threshold")
    return AllocatorTuning(True)
