"""The advisory run-folder lock: a second writer is refused, a dead owner's lock taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cellrobust._lock import LOCK_NAME, acquire, read_lock, release, run_lock
from cellrobust._validation import DataError

HOLDER = """
import sys
from cellrobust._lock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


def _start_holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_refused_while_first_holds_the_lock(tmp_path: Path):
    proc = _start_holder(tmp_path)
    try:
        with pytest.raises(DataError, match=rf"in use by pid {proc.pid} since .*; wait for it"):
            with run_lock(tmp_path):
                pass
        assert read_lock(tmp_path)["pid"] == proc.pid  # the refused writer left it alone
    finally:
        proc.communicate("\n", timeout=30)
    assert proc.returncode == 0 and not (tmp_path / LOCK_NAME).exists()
    with run_lock(tmp_path) as lock:  # free again
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_lock_of_a_killed_process_is_taken_over_with_a_note(tmp_path: Path):
    proc = _start_holder(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    notes: list[str] = []
    with run_lock(tmp_path, notes=notes.append):
        assert read_lock(tmp_path)["pid"] == os.getpid()
    assert len(notes) == 1 and f"stale lock of pid {proc.pid}" in notes[0]


def test_other_host_and_damaged_locks_are_not_taken_over(tmp_path: Path):
    owner = {"pid": 1, "host": socket.gethostname() + "-elsewhere", "started": "then"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(owner))
    with pytest.raises(DataError, match="in use by pid 1 on host .*-elsewhere since then"):
        acquire(tmp_path)
    (tmp_path / LOCK_NAME).write_text("{not json")
    with pytest.raises(DataError, match="lock file .* is unreadable"):
        acquire(tmp_path)
    release(tmp_path)  # not ours: left in place
    assert (tmp_path / LOCK_NAME).exists()


def test_same_process_cannot_nest_and_lock_is_released_on_error(tmp_path: Path):
    with pytest.raises(RuntimeError):
        with run_lock(tmp_path):
            with pytest.raises(DataError, match=f"in use by pid {os.getpid()}"):
                acquire(tmp_path)
            raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    with run_lock(tmp_path / "new" / "folder"):  # created on demand
        assert (tmp_path / "new" / "folder" / LOCK_NAME).is_file()
    assert not (tmp_path / "new" / "folder" / LOCK_NAME).exists()
