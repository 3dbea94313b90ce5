"""Process-wide settings, made once and explicitly by the application layer (never by the
library): CPU threads for torch and how idle OpenMP threads wait.

A library function never calls ``torch.set_num_threads``; the command line calls
:func:`configure_threads` once before a stage runs (before torch is imported, so the OpenMP
settings take effect). Threads default to the cores this process may run on (its CPU
affinity, which container and ``taskset`` limits respect) that other runnable processes do not
occupy, divided among the worker processes, so there are never more runnable compute threads
than cores. Idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``, unless
the user set it): on a shared machine spinning threads burn the cores other processes need. Compiled graphs persist
across processes in :func:`cellrobust.models.fastpath.compile_cache_dir` (inductor's
``TORCHINDUCTOR_CACHE_DIR``, unless the user set it), so compilation is paid once per machine.
Freed memory is kept for reuse instead of being faulted in again
(:func:`cellrobust._allocator.retain_freed_memory`, unless the user set glibc's malloc policy).
"""

from __future__ import annotations

import os

from cellrobust._threads import available_cores, default_threads, set_compute_threads

__all__ = ["available_cores", "configure_threads"]


def configure_threads(*, workers: int = 1, threads: int | None = None) -> int:
    """Set the OpenMP wait policy, torch's and OpenCV's threads, the persistent compile
    cache and the malloc policy; return the thread count.

    Parameters
    ----------
    workers : int
        Worker processes that will share the cores (each gets ``free cores // workers``,
        :func:`cellrobust._threads.default_threads`).
    threads : int, optional
        Explicit thread count (overrides the division).
    """
    from cellrobust._allocator import retain_freed_memory
    from cellrobust.models.fastpath import compile_cache_dir

    retain_freed_memory()
    count = max(1, int(threads)) if threads else default_threads(workers)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when OpenMP starts
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(compile_cache_dir()))
    os.environ.setdefault("OMP_NUM_THREADS", str(count))
    return set_compute_threads(count)
