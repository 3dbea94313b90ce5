"""One home for the thread rule: the application sets torch's and OpenCV's threads together;
library thread pools (JPEG stacks, FFT blur) follow that setting and give the same result on
any count."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch

from cellrobust import artefacts
from cellrobust._threads import available_cores, compute_threads, set_compute_threads
from cellrobust.artefacts.blur import disk_blur, disk_kernel


@pytest.fixture
def restore_threads():
    before = (torch.get_num_threads(), cv2.getNumThreads())
    yield
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])


def test_set_compute_threads_sets_torch_and_opencv(restore_threads):
    assert set_compute_threads(1) == 1
    assert (torch.get_num_threads(), cv2.getNumThreads(), compute_threads()) == (1, 1, 1)
    set_compute_threads(0)  # at least one thread
    assert compute_threads() == 1
    set_compute_threads(available_cores() + 7)  # never more than the cores for our pools
    assert compute_threads() == available_cores()


@pytest.mark.parametrize("threads", [1, 2])
def test_fft_disk_blur_does_not_depend_on_threads(restore_threads, threads):
    images = np.random.default_rng(0).random((5, 64, 80)).astype(np.float32)
    kern = disk_kernel(7.0)
    set_compute_threads(1)
    one = disk_blur(images, kern)
    set_compute_threads(threads)
    np.testing.assert_array_equal(disk_blur(images, kern), one)


def test_runtime_configure_threads_uses_the_one_rule(restore_threads, monkeypatch):
    from cellrobust.stages._runtime import configure_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert configure_threads(threads=1) == 1 and compute_threads() == 1
    out, _, _ = artefacts.apply_batch(np.full((3, 32, 32), 100, np.uint8), "jpeg", 10.0, rng=0)
    assert out.shape == (3, 32, 32)


def _running_now(readings):
    """A fake /proc/loadavg whose running count follows ``readings``."""
    it = iter(readings)

    def fake_open(path, *args, **kwargs):
        import io

        assert path == "/proc/loadavg"
        return io.StringIO(f"1.00 1.00 1.00 {next(it)}/300 4242\n")
    return fake_open


@pytest.mark.parametrize("readings, cores, expected", [
    ([1, 1, 1, 1, 1], 2, 2),        # only the reader runs: every core is free
    ([3, 3, 3, 3, 3], 2, 1),        # two busy loops on two cores: one thread (never 0)
    ([2, 5, 2, 4, 2], 4, 3),        # passing tasks are not counted: the smallest reading
    ([3, 3, 3, 3, 3], 8, 6),
])
def test_free_cores_subtracts_other_runnable_tasks(monkeypatch, readings, cores, expected):
    import builtins

    from cellrobust import _threads

    monkeypatch.setattr(_threads, "available_cores", lambda: cores)
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(builtins, "open", _running_now(readings))
    assert _threads.free_cores(interval_s=0) == expected
    monkeypatch.setattr(builtins, "open", _running_now(readings))
    assert _threads.default_threads(2) == max(1, expected // 2)


def test_provenance_records_the_threads():
    from cellrobust.stages._record import provenance

    record = provenance("sweep", {"x": 1})["threads"]
    assert record["available_cores"] == available_cores() and record["compute_threads"] >= 1
    assert 1 <= record["free_cores"] <= available_cores()


GIB = 2**30


@pytest.mark.parametrize("free, tasks, memory, expected", [
    (2, 127, 20 * GIB, 2),       # one worker per free core
    (2, 1, 20 * GIB, 1),         # never more workers than cells
    (8, 100, 5 * GIB, 2),        # 2 GiB a worker: 5 GiB available allow two
    (8, 100, 1 * GIB, 1),        # too little memory for one more process: still one
    (1, 50, None, 1),            # a loaded machine (one free core); /proc/meminfo unreadable
    (4, 0, 20 * GIB, 1),         # nothing to do: at least one
])
def test_default_workers_bounds(monkeypatch, free, tasks, memory, expected):
    from cellrobust import _threads

    monkeypatch.setattr(_threads, "free_cores", lambda: free)
    monkeypatch.setattr(_threads, "available_memory", lambda: memory)
    assert _threads.default_workers(tasks) == expected


def test_available_memory_reads_memavailable():
    from cellrobust._threads import available_memory

    memory = available_memory()
    assert memory is None or 0 < memory <= os.sysconf("SC_PAGE_SIZE") * os.sysconf(
        "SC_PHYS_PAGES")


@pytest.mark.parametrize("workers, threads", [(0, None), (-2, None), (1.5, None), (True, None),
                                              ("many", None), (2, 0), (2, "1")])
def test_execution_refuses_bad_worker_counts(workers, threads):
    from cellrobust import InputError
    from cellrobust.sweep import Execution

    with pytest.raises(InputError, match="workers: expected|threads_per_worker: expected"):
        Execution(workers=workers, threads_per_worker=threads)


def test_auto_workers_follow_the_rule(monkeypatch):
    from cellrobust import _threads
    from cellrobust.sweep import AUTO, Execution, worker_count

    monkeypatch.setattr(_threads, "free_cores", lambda: 2)
    monkeypatch.setattr(_threads, "available_memory", lambda: 64 * GIB)
    assert worker_count(Execution(workers=AUTO), 127) == 2
    assert worker_count(Execution(workers=AUTO), 1) == 1
    assert worker_count(Execution(workers=AUTO), 127, estimate=lambda: 5.0) == 1  # too short
    assert worker_count(Execution(workers=AUTO), 127, estimate=lambda: 60.0) == 2
    assert worker_count(Execution(workers=3), 5) == 3  # an explicit count is kept
    assert worker_count(Execution(workers=3), 1) == 1  # ... up to one worker per cell


ZOOM_LABELS = """
import os, sys
os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})  # one core, before OpenCV loads
import numpy as np
from cellrobust import artefacts
labels = np.load({src!r})
_, out, _ = artefacts.apply_batch(np.zeros(labels.shape, np.float32), "zoom", 0.7, rng=0,
                                  labels=labels)
np.save({dst!r}, out)
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or available_cores() < 2,
                    reason="needs CPU affinity and two cores")
def test_zoom_labels_do_not_depend_on_the_cores(tmp_path, psc_dir):
    """OpenCV's nearest warp rounded ties differently on one core: the sweep table changed
    with the worker count (PSC validation t235, zoom 0.7)."""
    import subprocess
    import sys

    import tifffile

    frame = tifffile.imread(psc_dir / "validation" / "output" / "man_seg235.tif").astype(np.int32)
    labels = np.stack([frame[y:y + 256, x:x + 256] for y, x in
                       ((0, 0), (100, 200), (320, 464), (200, 97))])
    src, dst = tmp_path / "labels.npy", tmp_path / "one-core.npy"
    np.save(src, labels)
    code = ZOOM_LABELS.format(src=str(src), dst=str(dst))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    _, here, _ = artefacts.apply_batch(np.zeros(labels.shape, np.float32), "zoom", 0.7, rng=0,
                                       labels=labels)
    np.testing.assert_array_equal(np.load(dst), here)


@pytest.mark.parametrize("n", [0, 1, 2, 5, 33])
@pytest.mark.parametrize("parallel", [True, False])
def test_for_each_calls_every_index_once_in_the_caller_and_at_most_the_compute_threads(
        restore_threads, n, parallel):
    import threading

    from cellrobust._threads import for_each

    set_compute_threads(2)
    calls, idents = [], set()

    def work(i):
        calls.append(i)
        idents.add(threading.get_ident())

    for_each(work, n, parallel=parallel)
    assert sorted(calls) == list(range(n))
    if n:
        assert threading.get_ident() in idents
        assert len(idents) <= (min(n, compute_threads()) if parallel else 1)
    if not parallel:
        assert calls == list(range(n))


def test_for_each_raises_the_first_runs_error_after_every_thread_finished(restore_threads):
    from cellrobust._threads import for_each

    set_compute_threads(2)
    finished = []

    def work(i):
        if i in (1, 7):
            raise ValueError(f"bad {i}")
        finished.append(i)

    with pytest.raises(ValueError, match="bad 1"):
        for_each(work, 10)
    assert sorted(finished) == [0, 5, 6]  # runs 0..4 and 5..9 each stop at their error
