"""Advisory run-folder lock: one writer per output folder, stale locks taken over.

``with run_lock(folder):`` creates ``folder/.cellrobust.lock`` with ``O_CREAT | O_EXCL`` (atomic
on local and NFSv3+ file systems) holding the owner's pid, host and start time as JSON. A
second process asking for the same folder gets a :class:`~cellrobust._validation.DataError`
naming the owner; a lock left by a process that no longer runs *on this host* (killed with
SIGKILL, power loss) is stale and taken over, with a note on the ``notes`` callback. A lock
from another host is never taken over automatically: its owner cannot be checked from here.

The lock is advisory: it keeps cellrobust processes apart, not other programs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cellrobust._validation import DataError

LOCK_NAME = ".cellrobust.lock"


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "started_unix": time.time()}


def read_lock(folder: str | os.PathLike) -> dict | None:
    """The owner record of ``folder``'s lock (``pid``, ``host``, ``started``), or ``None``.

    An unreadable or damaged lock file gives ``{}`` (held by an unknown owner).
    """
    try:
        text = (Path(folder) / LOCK_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (signal 0; EPERM means it exists)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(owner: dict) -> bool:
    pid = owner.get("pid")
    if owner.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    return pid != os.getpid() and not pid_alive(pid)


def _create(lock: Path, owner: dict) -> bool:
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(owner, handle)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _refuse(folder: Path, owner: dict) -> DataError:
    if not owner:
        return DataError(f"{folder}: in use - its lock file {LOCK_NAME} is unreadable; if no "
                         "cellrobust process is writing there, delete that file, or choose "
                         "another folder")
    where = "" if owner.get("host") == socket.gethostname() else f" on host {owner.get('host')}"
    return DataError(f"{folder}: in use by pid {owner.get('pid')}{where} since "
                     f"{owner.get('started')}; wait for it to finish or choose another folder")


def acquire(folder: str | os.PathLike, *,
            notes: Callable[[str], None] | None = None) -> Path:
    """Take the lock of ``folder`` (created if needed); return the lock file's path.

    Parameters
    ----------
    folder : path-like
        The run folder to lock.
    notes : callable, optional
        Receives one line when a stale lock is taken over.

    Raises
    ------
    DataError
        When another live process (or a process on another host) holds the lock.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    lock = root / LOCK_NAME
    for _ in range(5):  # a few rounds: another process may take over a stale lock meanwhile
        owner = _owner()
        if _create(lock, owner):
            return lock
        current = read_lock(root)
        if current is None:
            continue  # released between our attempt and the read: try again
        if not _is_stale(current):
            raise _refuse(root, current)
        if _take_over(lock, current) and notes:
            notes(f"{root}: took over a stale lock of pid {current.get('pid')} (no longer "
                  f"running) from {current.get('started')}")
    raise _refuse(root, read_lock(root) or {})


def _take_over(lock: Path, stale: dict) -> bool:
    """Remove a stale lock, unless someone replaced it meanwhile (checked by its content)."""
    grave = lock.with_name(f"{lock.name}.stale-{os.getpid()}")
    try:
        os.rename(lock, grave)  # atomic: only one process wins the rename
    except FileNotFoundError:
        return False
    try:
        moved = json.loads(grave.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        moved = {}
    if moved != stale:  # we moved a fresh lock of another process: put it back
        with contextlib.suppress(OSError):
            os.link(grave, lock)
        grave.unlink(missing_ok=True)
        return False
    grave.unlink(missing_ok=True)
    return True


def release(folder: str | os.PathLike) -> None:
    """Remove ``folder``'s lock if this process holds it (a no-op otherwise)."""
    lock = Path(folder) / LOCK_NAME
    owner = read_lock(folder)
    if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, *,
             notes: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the advisory lock of ``folder`` for the duration of a ``with`` block.

    Re-entrant within one process is *not* supported: nest a second ``run_lock`` on the same
    folder and it is refused like any other writer would be.

    Examples
    --------
    >>> with run_lock(results_dir):          # doctest: +SKIP
    ...     run_sweep(config, samples, results_dir)
    """
    lock = acquire(folder, notes=notes)
    try:
        yield lock
    finally:
        release(folder)


__all__ = ["LOCK_NAME", "run_lock", "acquire", "release", "read_lock", "pid_alive"]
