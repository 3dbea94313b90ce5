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
import threading
from collections.abc import Callable

__all__ = ["WORKER_MEMORY_BYTES", "available_cores", "available_memory", "compute_threads",
           "default_threads", "default_workers", "for_each", "free_cores", "set_compute_threads",
           "thread_record"]

#: Memory one sweep worker process is allowed for (torch, the segmenters, a batch of windows
#: and its copy of the data; the paper preset's PSC sweep peaked at 0.93 GiB RSS a process):
#: automatic worker counts never exceed the available memory divided by this.
WORKER_MEMORY_BYTES = 2 * 2**30


def available_cores() -> int:
    """Cores this process may run on (CPU affinity; ``os.cpu_count()`` where unsupported)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def free_cores(*, samples: int = 5, interval_s: float = 0.02) -> int:
    """Cores not taken by other runnable tasks right now: the available cores minus the
    runnable tasks of other processes (``/proc/loadavg``'s running count, the smallest of
    ``samples`` readings ``interval_s`` apart, so a task that only passes by is not counted;
    minus the reading thread itself), at least 1. Where ``/proc`` is not readable: all the
    available cores."""
    import time

    cores = available_cores()
    readings = []
    for i in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as fh:
                readings.append(int(fh.read().split()[3].split("/")[0]))
        except (OSError, ValueError, IndexError):
            return cores
        if i + 1 < samples:
            time.sleep(interval_s)
    others = max(0, min(readings) - 1)
    return max(1, min(cores, (os.cpu_count() or cores) - others))


def default_threads(workers: int = 1) -> int:
    """Threads per process when ``workers`` processes share the machine: the free cores
    (:func:`free_cores`) divided among them, at least 1, so that by default there are never
    more runnable compute threads than cores - on a loaded machine an OpenMP team larger
    than its share of cores waits at every barrier for a descheduled member."""
    return max(1, free_cores() // max(1, int(workers)))


def default_workers(tasks: int) -> int:
    """Worker processes for ``tasks`` independent tasks (a sweep's cells) when the user did
    not choose: one per free core (:func:`free_cores`; each then runs one compute thread, which
    also runs the single-threaded parts of a task - corruption, counting - in parallel), at most
    one per task and one per :data:`WORKER_MEMORY_BYTES` of available memory, at least 1."""
    workers = min(free_cores(), max(1, int(tasks)))
    memory = available_memory()
    if memory is not None:
        workers = min(workers, memory // WORKER_MEMORY_BYTES)
    return max(1, int(workers))


def available_memory() -> int | None:
    """Bytes of memory available to new processes (``MemAvailable`` of ``/proc/meminfo``);
    None where that is not readable."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def thread_record() -> dict:
    """What a result's provenance records about threads: cores, free cores, torch's and
    OpenCV's thread counts, the OpenMP wait policy and the load average."""
    record = {"available_cores": available_cores(), "free_cores": free_cores(samples=1),
              "compute_threads": compute_threads(),
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    if "torch" in sys.modules:
        record["torch_threads"] = sys.modules["torch"].get_num_threads()
    try:
        record["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return record


def compute_threads() -> int:
    """Threads a library call may use for its own pools: OpenCV's thread count (set by the
    application through :func:`set_compute_threads`; OpenCV's default is the cores)."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        return available_cores()
    return max(1, min(int(cv2.getNumThreads()), available_cores()))


def for_each(work: Callable[[int], None], n: int, *, parallel: bool = True) -> None:
    """Call ``work(i)`` for i in 0..n-1: in :func:`compute_threads` threads when ``parallel``
    (the calls must be independent and release the GIL in their heavy part: OpenCV, numpy's
    random fills), else in order. Exceptions propagate (the first index's, once every thread
    has finished).

    Each thread loops over one contiguous run of indices: one task per thread, not per
    index (measured on 32 JPEG round trips of 256^2: 1.85x serial with runs, 1.0x with a task
    per image, whose hand-offs cost as much as the work). The caller runs the first run
    itself and starts threads only for the others (32 JPEG round trips: 4.5 ms, as with a
    persistent pool; 5.0-7.1 ms through a ``ThreadPoolExecutor`` made per call)."""
    workers = min(n, compute_threads()) if parallel and n > 1 else 1
    if workers == 1:
        for i in range(n):
            work(i)
        return
    bounds = [n * k // workers for k in range(workers + 1)]
    failures: dict[int, BaseException] = {}

    def run(k: int) -> None:
        try:
            for i in range(bounds[k], bounds[k + 1]):
                work(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller below
            failures[k] = exc

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(1, workers)]
    for thread in threads:
        thread.start()
    run(0)
    for thread in threads:
        thread.join()
    if failures:
        raise failures[min(failures)]


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
