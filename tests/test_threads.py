"""One home for the thread rule: the application sets torch's and OpenCV's threads together;
library thread pools (JPEG stacks, FFT blur) follow that setting and give the same result on
any count."""

from __future__ import annotations

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
