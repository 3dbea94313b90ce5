"""Run a sweep serially, on local processes, or on a Dask distributed cluster; resumably.

Only the coordinating process writes files: workers return each cell's rows, and the
coordinator stores them atomically as they arrive (:class:`~cellrobust.sweep.store.ResultStore`),
so workers on other machines need no shared file system. The table is assembled in a fixed
order, so serial, process-parallel and distributed runs give the same table.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cellrobust._threads import default_threads, default_workers, set_compute_threads
from cellrobust._validation import InputError, collect_errors, is_count
from cellrobust.sweep.engine import (
    SweepConfig,
    cell_list,
    columns,
    build_segmenters,
    frame_level,
    resolve_severities,
    run_cell,
)
from cellrobust.sweep.store import ResultStore

__all__ = ["AUTO", "Execution", "preflight", "run_sweep", "worker_count"]


@dataclass(frozen=True)
class Execution:
    """How to run: ``workers`` local processes (1 = in this process; ``"auto"`` = one per free
    core, bounded by the cells and the memory, :func:`worker_count`) or a Dask ``scheduler``
    address (``"tcp://host:8786"``; workers must have cellrobust installed). The table does not
    depend on the choice.

    ``allow_code`` permits ``py:`` segmenters (they import and run Python code): a permission
    of whoever starts the run, never read from a configuration file.
    """

    workers: int | str = 1
    scheduler: str | None = None
    threads_per_worker: int | None = None
    overwrite: bool = False
    allow_code: bool = False

    def __post_init__(self) -> None:
        errors = [problem for problem in (workers_problem(self.workers),) if problem]
        if not (self.threads_per_worker is None or is_count(self.threads_per_worker)):
            errors.append(f"threads_per_worker: expected a positive integer or None, "
                          f"got {self.threads_per_worker!r}")
        collect_errors(errors, "execution options")


#: ``Execution(workers=AUTO)``: the worker count is chosen for the machine and the run.
AUTO = "auto"
def workers_problem(workers) -> str | None:
    """What is wrong with a ``workers`` setting (a positive integer or :data:`AUTO`), or None."""
    if workers == AUTO or is_count(workers):
        return None
    return f"workers: expected a positive integer or {AUTO!r}, got {workers!r}"


#: ``workers="auto"`` starts worker processes only for a sweep whose estimated serial time is
#: at least this many seconds: a worker is a new Python process that imports torch and builds
#: the segmenters (seconds) before its first cell, which a short sweep would not repay.
POOL_AFTER_S = 20.0


def worker_count(execution: Execution, cells: int, *,
                 estimate: Callable[[], float] | None = None) -> int:
    """Local worker processes for a run of ``cells`` cells: ``execution.workers`` (at most one
    per cell); for ``"auto"``, :func:`cellrobust._threads.default_workers` (free cores, cells,
    memory), or 1 when ``estimate()`` (the serial seconds; called only when processes would
    start) is below :data:`POOL_AFTER_S`."""
    if execution.workers != AUTO:
        return max(1, min(int(execution.workers), int(cells)))
    workers = default_workers(cells)
    if workers > 1 and estimate is not None and estimate() < POOL_AFTER_S:
        return 1
    return workers


def _serial_estimate(segmenters: dict, samples: Sequence, cells: int) -> float:
    """Seconds the cells would take in one process: one timed (warm) call of every segmenter
    on the first image, times the images of a cell and the cells (frame-level cells, which cut
    more windows, make it a lower bound)."""
    import time

    probe = np.asarray(samples[0].image, dtype=np.float32)[None]
    start = time.perf_counter()
    for segmenter in segmenters.values():
        segmenter.segment(probe)
    return (time.perf_counter() - start) * len(samples) * cells


def _data_digest(samples: Sequence) -> str:
    h = hashlib.sha256()
    for s in samples:
        h.update(s.name.encode())
        h.update(np.ascontiguousarray(s.image).tobytes())
        h.update(np.ascontiguousarray(s.labels).tobytes())
    return h.hexdigest()


def _spec_digest(spec) -> str:
    """The model's content digest (file or folder) when the spec names one, else the spec."""
    from cellrobust.segmenters import file_sha256

    path = Path(spec.target)
    if spec.kind != "py" and path.exists():
        return file_sha256(path)
    return spec.spec


def _check_labelled(what: str, samples: Sequence) -> None:
    if not samples:
        raise InputError(f"{what}: empty selection, no images to sweep")
    unlabelled = [s.name for s in samples if s.labels is None]
    if unlabelled:
        raise InputError(f"{what}: {len(unlabelled)} images have no labels (e.g. "
                         f"{unlabelled[0]}); the sweep scores against annotations")


def preflight(config: SweepConfig, samples: Sequence, frames: Sequence | None = None, *,
              allow_code: bool = False) -> dict:
    """Check everything that can fail before any work starts.

    Unknown artefacts/severities, empty selections, unlabelled images, frame-level artefacts
    without frames, unknown segmenters, and segmenters that cannot process the images (e.g. an
    input size the model cannot take) are reported here, by running each segmenter once on the
    first image. Returns the segmenters built (name -> segmenter) for the run to use.
    """
    _check_labelled("samples", samples)
    resolve_severities(config)
    needs_frames = frame_level(config)
    if needs_frames:
        if not frames:
            raise InputError(f"artefacts {needs_frames} cut their patches from whole frames; "
                             "pass the evaluation frames (frames=...) or use 'zoom' to scale "
                             "the fixed patches")
        _check_labelled("frames", frames)
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        raise InputError("samples: names must be unique (they seed the corruption streams)")
    probe = np.asarray(samples[0].image, dtype=np.float32)[None]
    segmenters = build_segmenters(config, allow_code=allow_code)
    for spec in config.segmenters:
        segmenter = segmenters[spec.name]
        try:
            out = np.asarray(segmenter.segment(probe))
        except InputError as exc:
            raise InputError(f"segmenter {spec.name!r} cannot process images of shape "
                             f"{probe.shape[1:]}: {exc}") from exc
        if out.shape != probe.shape:
            raise InputError(f"segmenter {spec.name!r}: returned shape {out.shape} for images "
                             f"of shape {probe.shape}; it must return one label image each")
    return segmenters


def run_sweep(
    config: SweepConfig,
    samples: Sequence,
    results_dir: str | Path,
    *,
    frames: Sequence | None = None,
    execution: Execution = Execution(),
    progress: Callable[[list], None] | None = None,
) -> pd.DataFrame:
    """Run (or resume) a sweep into ``results_dir``; return the assembled table.

    Parameters
    ----------
    config : SweepConfig
    samples : sequence of Sample
        Labelled images (all segmenters see the same corrupted copies).
    results_dir : path
        Results folder; finished cells found there are reused (resume).
    frames : sequence of Sample, optional
        The whole labelled frames the samples were cut from; required by frame-level
        artefacts (``cell_size``), ignored otherwise.
    execution : Execution
        Serial, local processes, or a Dask scheduler.
    progress : callable, optional
        Called with the list of ``(artefact, severity index)`` cells just finished (also once
        with the reused ones).

    Returns
    -------
    DataFrame
        The tidy table (also written as ``results.parquet`` and ``results.csv``);
        ``attrs["workers"]``: the local processes that ran the cells (1: this process, 0: a
        Dask cluster).
    """
    samples = list(samples)
    frames = list(frames or []) if frame_level(config) else None
    segmenters = preflight(config, samples, frames, allow_code=execution.allow_code)
    store = ResultStore(results_dir)
    description = {**config.describe(), "data": _data_digest(samples),
                   "models": {s.name: _spec_digest(s) for s in config.segmenters},
                   "samples": [s.name for s in samples]}
    if frames is not None:
        description["frames"] = {"data": _data_digest(frames), "names": [f.name for f in frames]}
    store.open(description, overwrite=execution.overwrite)
    cells = cell_list(config)
    todo = [c for c in cells if c not in store.done(cells)]
    if progress and len(cells) > len(todo):
        progress([c for c in cells if c not in todo])
    workers = 1
    if todo:
        workers = 1 if execution.scheduler else worker_count(
            execution, len(todo), estimate=lambda: _serial_estimate(segmenters, samples,
                                                                    len(todo)))
        _dispatch(config, (samples, frames), todo, store, execution, progress, segmenters,
                  workers=workers)
    table = store.assemble(cells, columns(config))
    table.attrs["workers"] = 0 if execution.scheduler else workers  # 0: a Dask cluster's
    return table


def _dispatch(config, data, todo, store, execution, progress, segmenters, *,
              workers: int) -> None:
    """Run the ``todo`` cells; ``data`` = (samples, frames or None)."""
    def done(cell, rows):
        store.write(*cell, rows)
        if progress:
            progress([cell])

    if execution.scheduler:
        _run_dask(config, data, todo, execution, done)
    elif workers > 1:
        _run_processes(config, data, todo, execution, done, workers=workers)
    else:
        for cell in todo:
            done(cell, run_cell(config, data[0], *cell, frames=data[1],
                                segmenters=segmenters))


_WORKER: dict = {}
#: Seconds between the worker watchdog's checks that its parent is still alive.
WATCHDOG_INTERVAL = 0.5
_PR_SET_PDEATHSIG = 1


def _init_worker(config, data, allow_code, threads, parent=None) -> None:
    from cellrobust._allocator import retain_freed_memory

    die_with_parent(parent)
    retain_freed_memory()
    os.environ["OMP_NUM_THREADS"] = str(max(1, threads))  # read by torch at import
    set_compute_threads(threads)
    _WORKER.clear()
    _WORKER.update(config=config, data=data, allow_code=allow_code)


def die_with_parent(parent: int | None) -> None:
    """Make this worker process exit when its parent ``parent`` dies, even by SIGKILL.

    On Linux the kernel delivers SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``);
    everywhere, a daemon thread also polls :func:`os.getppid` every
    :data:`WATCHDOG_INTERVAL` seconds and exits when the process was re-parented. A parent
    that died before this call is detected at once.
    """
    import signal
    import sys
    import threading

    if parent is None:
        return
    if sys.platform.startswith("linux"):
        import contextlib
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # already orphaned before the kernel hook was set
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="cellrobust-parent-watchdog",
                     daemon=True).start()


def _watch_parent(parent: int) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(WATCHDOG_INTERVAL)
    os._exit(1)  # the coordinator is gone: nobody will read this worker's results


def _worker_cell(cell):
    samples, frames = _WORKER["data"]
    return cell, run_cell(_WORKER["config"], samples, *cell, frames=frames,
                          segmenters=_worker_segmenters())


def _worker_segmenters() -> dict:
    """This worker's segmenters, built at its first cell and kept for the pool's life (one
    sweep run): a U-Net's inference path, its per-process correctness re-check and its
    compile tier then carry over from cell to cell instead of restarting with every cell."""
    if "segmenters" not in _WORKER:
        _WORKER["segmenters"] = build_segmenters(_WORKER["config"],
                                                 allow_code=_WORKER["allow_code"])
    return _WORKER["segmenters"]


def worker_pool(workers: int, initargs: tuple, *, threads: int) -> ProcessPoolExecutor:
    """A spawn-context process pool whose workers exit when this process dies.

    ``initargs`` = ``(config, data, allow_code)`` for :func:`_init_worker`; the worker's
    thread count and this process's pid (for :func:`die_with_parent`) are appended.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(*initargs, threads, os.getpid()))


def _run_processes(config, data, todo, execution, done, *, workers: int) -> None:
    threads = execution.threads_per_worker or default_threads(workers)
    initargs = (config, data, execution.allow_code)
    with worker_pool(workers, initargs, threads=threads) as pool:
        futures = [pool.submit(_worker_cell, cell) for cell in todo]
        for fut in as_completed(futures):
            done(*fut.result())


def _dask_cell(config, samples, frames, cell, allow_code=False):
    return cell, run_cell(config, samples, *cell, frames=frames, allow_code=allow_code)


def _run_dask(config, data, todo, execution, done) -> None:
    from distributed import Client
    from distributed import as_completed as dask_completed

    with Client(execution.scheduler) as client:
        samples = client.scatter(data[0], broadcast=True)
        frames = None if data[1] is None else client.scatter(data[1], broadcast=True)
        futures = [client.submit(_dask_cell, config, samples, frames, cell,
                                 execution.allow_code, pure=False)
                   for cell in todo]
        for fut in dask_completed(futures):
            done(*fut.result())
