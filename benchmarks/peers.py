"""Peer environments: one virtual environment per group of peer libraries.

``python -m benchmarks setup`` creates ``.venv-peers-<name>`` at the repository root for every
``benchmarks/requirements-peers-<name>.txt`` and installs that file into it with
``benchmarks/constraints-peers.txt`` (which pins torch to the CPU build). The project's own
``.venv`` is never touched. A stamp file records a hash of the requirements, so a second
``setup`` only reinstalls environments whose requirements changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONSTRAINTS = HERE / "constraints-peers.txt"
STAMP = ".benchmarks-stamp"


def peer_names() -> list[str]:
    """Names of the peer environments, from ``requirements-peers-<name>.txt`` files."""
    prefix, suffix = "requirements-peers-", ".txt"
    return sorted(p.name[len(prefix):-len(suffix)] for p in HERE.glob(f"{prefix}*{suffix}"))


def venv_dir(name: str) -> Path:
    """Directory of the peer environment ``name`` (``<repo>/.venv-peers-<name>``)."""
    return REPO / f".venv-peers-{name}"


def _requirements(name: str) -> Path:
    return HERE / f"requirements-peers-{name}.txt"


def _digest(name: str) -> str:
    text = _requirements(name).read_bytes() + CONSTRAINTS.read_bytes()
    return hashlib.sha256(text).hexdigest()[:16]


def peer_python(name: str) -> Path | None:
    """Python of an installed, up-to-date peer environment, or None when absent or stale."""
    venv = venv_dir(name)
    python = venv / "bin" / "python"
    stamp = venv / STAMP
    if not python.exists() or not stamp.exists():
        return None
    if stamp.read_text().strip() != _digest(name):
        return None
    return python


def missing_reason(name: str) -> str:
    """One line explaining why ``name`` cannot run (for skipped benchmark rows)."""
    return (f"peer environment {venv_dir(name).name} is not installed or is out of date; "
            f"run `python -m benchmarks setup {name}` (or `make bench-setup`)")


def _base_python() -> str:
    """Interpreter to create peer venvs from (the base of the running venv)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _install_commands(name: str) -> list[list[str]]:
    venv = venv_dir(name)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    return [
        pip + ["install", "--upgrade", "pip"],
        pip + ["install", "-r", str(_requirements(name)), "-c", str(CONSTRAINTS)],
    ]


def _start(name: str, log_path: Path) -> subprocess.Popen:
    """Create the venv, then install ``name`` in the background, logging to ``log_path``."""
    subprocess.run([_base_python(), "-m", "venv", "--clear", str(venv_dir(name))], check=True)
    script = " && ".join(" ".join(_quote(a) for a in cmd) for cmd in _install_commands(name))
    log = open(log_path, "w")  # noqa: SIM115
    env = {**os.environ, "PIP_PROGRESS_BAR": "off"}
    return subprocess.Popen(["bash", "-c", script], stdout=log, stderr=subprocess.STDOUT,
                            env=env, cwd=REPO)


def _quote(arg: str) -> str:
    import shlex
    return shlex.quote(arg)


def setup(names: list[str] | None = None, *, force: bool = False) -> int:
    """Create and install the peer environments (in parallel); return an exit code.

    Parameters
    ----------
    names : list of str, optional
        Peer environments to install (default: all of :func:`peer_names`).
    force : bool
        Reinstall even when the stamp says the environment is up to date.
    """
    known = peer_names()
    names = names or known
    unknown = sorted(set(names) - set(known))
    if unknown:
        print(f"unknown peer environment(s) {unknown}; valid: {known}", file=sys.stderr)
        return 2
    running: dict[str, tuple[subprocess.Popen, Path, float]] = {}
    for name in names:
        if not force and peer_python(name) is not None:
            print(f"[setup] {name}: up to date ({venv_dir(name).name})")
            continue
        log_path = venv_dir(name) / "setup.log"
        print(f"[setup] {name}: installing into {venv_dir(name).name} (log: {log_path})")
        running[name] = (_start(name, log_path), log_path, time.perf_counter())
    failed = []
    for name, (proc, log_path, t0) in running.items():
        rc = proc.wait()
        if rc == 0:
            (venv_dir(name) / STAMP).write_text(_digest(name) + "\n")
            print(f"[setup] {name}: done in {time.perf_counter() - t0:.0f} s")
        else:
            failed.append(name)
            tail = log_path.read_text(errors="replace").splitlines()[-15:]
            print(f"[setup] {name}: FAILED (exit {rc}); last lines of {log_path}:",
                  *tail, sep="\n  ", file=sys.stderr)
    return 1 if failed else 0
