"""glibc's malloc for a compute process: keep freed memory for reuse (application layer only).

By default glibc serves every allocation above a threshold (128 KiB, raised as large blocks
are freed, to at most 32 MiB) with a fresh ``mmap`` and returns it to the system on ``free``,
and it hands memory freed at the top of its heap back beyond a trim threshold. The next array
of that size then faults every one of its 4 KiB pages in again, and the kernel zeroes each.
On a virtual machine a fault is dear: a U-Net forward pass on a 576×720 frame allocates
activations of up to 106 MB each, and on this project's 2-core KVM machine 2 frames caused
65,000-90,000 minor faults a call and ran at 2.4-2.9 frames/s; with freed memory kept,
540-2,700 faults and 3.2-3.5 frames/s (interleaved runs, 2026-12-03). The DoG baseline's
float32 frames cost 14 ms a frame with the default policy and 8 ms with this one.

:func:`retain_freed_memory` raises the ``mmap`` threshold and the trim threshold to
:data:`RETAIN_BYTES` (at most a quarter of the available memory): blocks up to that size come
from the heap and freed ones are reused. The price is memory: a process keeps up to that much
freed memory mapped instead of returning it. Transparent huge pages (``THP_MEM_ALLOC_ENABLE``)
were measured too and ran slower (2.6 frames/s: the kernel zeroes 2 MiB at a time).

A user's own settings win: nothing is changed when ``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_`` or a ``glibc.malloc``
tunable in ``GLIBC_TUNABLES`` is set, and nothing outside glibc (musl, macOS, Windows).
Library code never calls this: the command line does, once per process, as it sets threads.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["RETAIN_BYTES", "allocator_record", "retain_freed_memory"]

#: Largest block served from (and freed memory kept on) the heap; a quarter of the available
#: memory where that is smaller.
RETAIN_BYTES = 1 << 30

#: ``mallopt`` parameters (glibc's ``malloc.h``).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Environment variables through which a user sets glibc's malloc policy themselves.
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                 "MALLOC_MMAP_MAX_")

_applied: dict = {}


def retain_freed_memory(*, limit_bytes: int | None = None) -> dict:
    """Make this process's malloc keep freed blocks of up to ``limit_bytes`` for reuse.

    Parameters
    ----------
    limit_bytes : int, optional
        Threshold in bytes for both ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``; default
        :data:`RETAIN_BYTES`, bounded by a quarter of the available memory.

    Returns
    -------
    dict
        What was done (:func:`allocator_record`): ``policy`` is ``"retain"`` with the
        threshold in bytes, ``"user"`` (the user's environment decides) or ``"system"``
        (not glibc, or ``mallopt`` refused).
    """
    reason = _unchanged_reason()
    if reason is not None:
        return _record(policy=reason)
    limit = RETAIN_BYTES if limit_bytes is None else int(limit_bytes)
    limit = min(limit, _quarter_of_memory(), 2**31 - 1)  # mallopt takes a C int
    libc = ctypes.CDLL(None)
    if limit <= 0 or not all(libc.mallopt(param, ctypes.c_int(limit))
                             for param in (_M_MMAP_THRESHOLD, _M_TRIM_THRESHOLD)):
        return _record(policy="system")
    return _record(policy="retain", threshold_bytes=limit)


def allocator_record() -> dict:
    """The malloc policy this process runs with (for provenance): what
    :func:`retain_freed_memory` did, or ``{"policy": "system"}`` when it was not called."""
    return dict(_applied) if _applied else {"policy": "system"}


def _unchanged_reason() -> str | None:
    if any(name in os.environ for name in USER_SETTINGS) or (
            "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")):
        return "user"
    if not sys.platform.startswith("linux"):
        return "system"
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return "system"
    return None


def _quarter_of_memory() -> int:
    from cellrobust._threads import available_memory

    memory = available_memory()
    return RETAIN_BYTES if memory is None else memory // 4


def _record(**fields) -> dict:
    _applied.clear()
    _applied.update(fields)
    return dict(_applied)
