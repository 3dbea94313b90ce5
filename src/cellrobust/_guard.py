"""Never overwrite what the user owns: output checks every stage runs before writing.

Two promises:

* :func:`check_output` refuses an output that *is* an input, lies inside an input folder or
  contains an input, and an output folder holding files cellrobust did not write. What
  cellrobust wrote is recorded in the folder's marker file :data:`MARKER`
  (``.cellrobust-run.json``: the stage that owns the folder and the top-level names it wrote,
  kept up to date by :func:`record_outputs`). Only an explicit ``overwrite=True`` lets a stage
  write beside foreign files (it still never deletes them); an output that is an input is
  refused even then.
* :func:`unique_output_names` gives colliding inputs (``a/x.tif``, ``b/x.tif``, ``b/x.png``)
  distinct output names instead of letting one silently replace another.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from cellrobust import __version__
from cellrobust._io import TEMP_PREFIX, write_json
from cellrobust._lock import LOCK_NAME
from cellrobust._validation import InputError

MARKER = ".cellrobust-run.json"


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def _within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The ownership record of ``folder`` (``stage``, ``files``), or ``None`` when absent."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("stage"), str) else None


def record_outputs(folder: str | os.PathLike, *, owner: str,
                   files: Iterable[str | os.PathLike] = ()) -> Path:
    """Mark ``folder`` as written by stage ``owner`` and record the outputs it wrote there.

    Parameters
    ----------
    folder : path-like
        The output folder (created if needed).
    owner : str
        The stage writing it (``"sweep"``, ``"corrupt"``, ...).
    files : iterable of path-like
        Outputs written (paths inside ``folder`` or names); their top-level entry is recorded.

    Returns
    -------
    Path
        The marker file.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    marker = read_marker(root) or {}
    listed = marker.get("files") if marker.get("stage") == owner else None
    names = {str(n) for n in listed} if isinstance(listed, list) else set()
    for file in files:
        path = Path(file)
        rel = path.relative_to(root) if path.is_absolute() and _within(path, root) else path
        if rel.parts:
            names.add(rel.parts[0])
    return write_json(root / MARKER, {"stage": owner, "package_version": __version__,
                                      "files": sorted(names)})


def foreign_entries(folder: str | os.PathLike) -> list[str]:
    """Top-level entries of ``folder`` that cellrobust did not write (per its marker)."""
    marker = read_marker(folder)
    listed = (marker or {}).get("files")
    ours = {str(n) for n in listed} if isinstance(listed, list) else set()
    ours.add(LOCK_NAME)
    if marker is not None:  # a damaged or foreign file of that name is the user's
        ours.add(MARKER)
    return sorted(p.name for p in Path(folder).iterdir()
                  if p.name not in ours and not p.name.startswith(TEMP_PREFIX))


def check_output(
    out: str | os.PathLike,
    *,
    inputs: Sequence[str | os.PathLike] = (),
    overwrite: bool = False,
    owner: str,
    kind: str = "folder",
    reuse: bool = False,
) -> Path:
    """Refuse an output that would replace or mix with what the user owns; return it.

    Parameters
    ----------
    out : path-like
        The output folder (``kind="folder"``) or file (``kind="file"``).
    inputs : sequence of path-like
        Every file or folder the stage reads.
    overwrite : bool
        Allow writing into a folder holding foreign files or another stage's run, or onto an
        existing file. Inputs are protected even then.
    owner : str
        The stage that will write (recorded by :func:`record_outputs`).
    kind : {"folder", "file"}
        What ``out`` is.
    reuse : bool
        Allow an earlier run of the same stage in ``out`` (resume / complete it).

    Raises
    ------
    InputError
        One line naming the output, what is in the way, and how to proceed.
    """
    if kind not in ("folder", "file"):
        raise InputError(f"kind: expected 'folder' or 'file', got {kind!r}")
    target = _real(out)
    _check_inputs(Path(out), target, inputs, overwrite)
    if not target.exists():
        return target
    if kind == "file":
        return _check_file(Path(out), target, overwrite)
    if not target.is_dir():
        raise InputError(f"output {out}: is an existing file, expected a folder; choose a "
                         "folder name")
    if not overwrite:
        _check_folder(Path(out), target, owner, reuse)
    return target


def _check_inputs(shown: Path, target: Path, inputs, overwrite: bool) -> None:
    for item in inputs:
        source = _real(item)
        if target == source:
            raise InputError(f"output {shown}: is the input {item} itself; writing would "
                             "replace it - choose an output outside the inputs")
        if overwrite:
            continue
        if _within(target, source) and source.is_dir():
            raise InputError(f"output {shown}: lies inside the input folder {item}; the "
                             "outputs would mix with the data - choose an output outside it")
        if _within(source, target):
            raise InputError(f"output {shown}: contains the input {item}; outputs could "
                             "replace input files - choose an output folder outside the inputs")


def _check_file(shown: Path, target: Path, overwrite: bool) -> Path:
    if target.is_dir():
        raise InputError(f"output {shown}: is an existing folder, expected a file name")
    if not overwrite:
        raise InputError(f"output {shown}: already exists; choose another file name or "
                         "confirm that it may be overwritten")
    return target


def _check_folder(shown: Path, target: Path, owner: str, reuse: bool) -> None:
    foreign = foreign_entries(target)
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise InputError(f"output {shown}: holds files cellrobust did not write "
                         f"({', '.join(map(repr, foreign[:3]))}{more}); choose an empty or "
                         "new folder, or confirm that it may be written into")
    marker = read_marker(target)
    if marker is None:
        return  # empty, or only our own lock/temporaries
    if marker["stage"] != owner:
        raise InputError(f"output {shown}: holds the results of a {marker['stage']!r} run; "
                         f"choose another folder for this {owner!r} run")
    if not reuse and marker.get("files"):
        raise InputError(f"output {shown}: holds an earlier {owner!r} run; choose a new "
                         "folder, resume that run, or confirm that it may be overwritten")


def unique_output_names(paths: Sequence[str | os.PathLike], *,
                        on_collision: str = "rename") -> list[str]:
    """Distinct, suffix-free output names for input files, in input order.

    The file stem when it is unique; for inputs whose stems collide (case-insensitively), the
    path relative to their common folder with ``/`` written as ``__``, plus ``_<suffix>`` when
    that still collides: ``a/x.tif, b/x.tif, b/x.png`` -> ``a__x, b__x_tif, b__x_png``.

    Parameters
    ----------
    paths : sequence of path-like
        The input files.
    on_collision : {"rename", "error"}
        Disambiguate as above, or refuse colliding names.

    Raises
    ------
    InputError
        For the same file given twice, or colliding names with ``on_collision="error"``.
    """
    if on_collision not in ("rename", "error"):
        raise InputError(f"on_collision: expected 'rename' or 'error', got {on_collision!r}")
    files = [Path(p) for p in paths]
    real = [_real(p) for p in files]
    seen: dict[Path, Path] = {}
    for shown, path in zip(files, real):
        if path in seen:
            raise InputError(f"inputs: {shown} is given twice (also as {seen[path]}); list "
                             "each file once")
        seen[path] = shown
    names = [p.stem for p in files]
    clashes = _clashing(names)
    if clashes and on_collision == "error":
        first = [str(f) for f, n in zip(files, names) if n.casefold() == clashes[0]]
        raise InputError(f"inputs: {', '.join(first)} would all be written as {clashes[0]!r}; "
                         "rename them or process them separately")
    if not clashes:
        return names
    root = Path(os.path.commonpath([str(p.parent) for p in real]))
    for i, path in enumerate(real):
        if names[i].casefold() in clashes:
            names[i] = "__".join(path.relative_to(root).with_suffix("").parts)
    still = set(_clashing(names))
    for i, path in enumerate(real):
        if names[i].casefold() in still:
            names[i] = f"{names[i]}_{path.suffix.lstrip('.').lower() or 'none'}"
    if _clashing(names):  # e.g. x.TIF vs x.tif on a case-sensitive file system
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    return names


def _clashing(names: list[str]) -> list[str]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
    return [n for n, c in counts.items() if c > 1]


__all__ = ["MARKER", "check_output", "record_outputs", "read_marker", "foreign_entries",
           "unique_output_names"]
