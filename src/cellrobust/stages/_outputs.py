"""Every stage's output folder: checked before anything is written, locked while written,
and its new entries recorded as cellrobust's afterwards.

:func:`guarded_output` puts together the two promises of :mod:`cellrobust._guard` (never write
over an input or beside files cellrobust did not write, unless ``overwrite``) and the advisory
run lock of :mod:`cellrobust._lock` (a second writer of the same folder is refused).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["guarded_output"]


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _note(message: str) -> None:
    print(f"cellrobust: note: {message}", file=sys.stderr)


@contextlib.contextmanager
def guarded_output(out: str | os.PathLike, *, owner: str,
                   inputs: Sequence[str | os.PathLike | None] = (), overwrite: bool = False,
                   reuse: bool = True, lock: bool = True,
                   expected: Sequence[str] = ()) -> Iterator[Path]:
    """Check, lock and (on success) record ``out`` for stage ``owner``.

    Parameters
    ----------
    out : path-like
        The stage's output folder (created here once the checks pass).
    owner : str
        The stage name recorded as the folder's owner.
    inputs : sequence of path-like or None
        Everything the stage reads (None entries are skipped): ``out`` may not be, contain or
        lie inside one of them.
    overwrite : bool
        Allow writing beside foreign files or another stage's results.
    reuse : bool
        Allow an earlier run of the same stage in ``out`` (resume, re-run).
    lock : bool
        Hold the folder's run lock while the block runs.
    expected : sequence of str
        Names the stage writes, recorded as its own before it starts: a run killed with
        SIGKILL (no chance to record) can then be resumed without ``overwrite``.
    """
    from cellrobust._guard import check_output, record_outputs
    from cellrobust._lock import run_lock

    folder = Path(out)
    check_output(folder, inputs=[p for p in inputs if p is not None], overwrite=overwrite,
                 owner=owner, reuse=reuse)
    before = _entries(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with run_lock(folder, notes=_note) if lock else contextlib.nullcontext():
        record_outputs(folder, owner=owner, files=expected)  # ours from the start
        try:
            yield folder
        finally:  # also after a failure: what this run wrote is cellrobust's
            record_outputs(folder, owner=owner, files=sorted(_entries(folder) - before))
