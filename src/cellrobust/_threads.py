"""How many threads compute may use: the one home of the rule.

``available_cores()`` counts the cores this process may run on (its CPU affinity, which
containers and ``taskset`` respect). The application layer decides a process's thread count
once (:func:`cellrobust.stages._runtime.configure_threads`, a sweep worker's initialiser) and
applies it with :func:`set_compute_threads` to every library that keeps its own pool (torch's
intra-op threads, OpenCV's). Library code never sets threads; it asks :func:`compute_threads`
for the count its own thread pools and ``scipy.fft(workers=...)`` calls may use - OpenCV's
setting, which the application set, or the available cores when nobody did.
"""

from __future__ import annotations

import os
import sys

__all__ = ["available_cores", "compute_threads", "set_compute_threads"]


def available_cores() -> int:
    """Cores this process may run on (CPU affinity; ``os.cpu_count()`` where unsupported)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def compute_threads() -> int:
    """Threads a library call may use for its own pools: OpenCV's thread count (set by the
    application through :func:`set_compute_threads`; OpenCV's default is the cores)."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        return available_cores()
    return max(1, min(int(cv2.getNumThreads()), available_cores()))


def set_compute_threads(count: int) -> int:
    """Application layer only: give torch (if imported) and OpenCV ``count`` threads each."""
    count = max(1, int(count))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
    try:
        import cv2
    except ImportError:  # pragma: no cover
        return count
    cv2.setNumThreads(count)
    return count
