"""Sweep worker processes exit when their parent is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith(("linux", "darwin")),
                                reason="POSIX signals")

PARENT = """
import os, sys, time
from cellrobust.sweep.runner import worker_pool

pool = worker_pool(2, (None, None, False), threads=1)
futures = [pool.submit(time.sleep, 0.2) for _ in range(2)]
[f.result() for f in futures]
print(" ".join(str(pid) for pid in pool._processes), flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for a reaper that may not exist)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def test_workers_exit_when_parent_is_sigkilled():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()
        workers = [int(p) for p in line.split()]
        assert len(workers) == 2 and all(_running(p) for p in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_running(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p for p in workers if _running(p)] == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_orphaned_before_initialiser_exits_at_once():
    code = ("import os, sys\n"
            "from cellrobust.sweep.runner import die_with_parent\n"
            "die_with_parent(os.getppid() + 10**6)\n"  # not our parent: already orphaned
            "print('survived')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and "survived" not in result.stdout
