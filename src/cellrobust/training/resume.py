"""Resume is exact or refused: what a run folder remembers about its data and its config.

A fresh run writes ``data.json`` beside ``config.yaml``::

    {"data": "/abs/psc", "val_data": null,
     "train": {"n_frames": 24, "digest": "sha256..."},
     "validation": {"n_frames": 8, "digest": "sha256..."}}

``data``/``val_data`` say where the samples came from (``None``: given in memory or the
built-in simulator; any further keys of the caller's ``data_source`` are kept); the digests are SHA-256 over every frame's name, shape, dtype, gray levels
and binary mask, i.e. over exactly what training reads. On resume, :func:`check_data` refuses
other data with one line naming both, and :func:`config_changes` accepts only the changes
that cannot alter the epochs already trained (:data:`SAFE_ON_RESUME`), which are recorded in
``resume.json``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cellrobust._io import write_json
from cellrobust._validation import DataError, InputError

#: Fields that may change on resume: they do not alter the epochs already trained or the
#: patches, weights and RNG streams of the remaining ones (``epochs`` only without an
#: epoch-length-dependent schedule, see :func:`config_changes`).
SAFE_ON_RESUME = ("epochs", "patience", "workers", "threads")
_EPOCH_SCHEDULES = ("cosine", "step")  # their learning rate curve depends on ``epochs``

Frame = tuple[np.ndarray, np.ndarray, str]


def describe_frames(frames: Sequence[Frame]) -> dict[str, Any]:
    """``{"n_frames": N, "digest": sha256 hex}`` of (image, binary mask, name) frames."""
    digest = hashlib.sha256()
    for image, mask, name in frames:
        for part in (name, str(image.shape), str(image.dtype)):
            digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(np.ascontiguousarray(image).tobytes())
        digest.update(np.packbits(np.asarray(mask) > 0).tobytes())
    return {"n_frames": len(frames), "digest": digest.hexdigest()}


def data_record(train: Sequence[Frame], val: Sequence[Frame], *,
                source: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``data.json`` record of a run (see the module docstring)."""
    src = {k: v for k, v in dict(source or {}).items() if k not in ("train", "validation")}
    return {"data": None, "val_data": None, **src,
            "train": describe_frames(train), "validation": describe_frames(val)}


def read_data_record(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``data.json`` as a dict, ``None`` when absent."""
    path = Path(run_dir) / "data.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable data record ({exc}); restore it or start a "
                        "new run folder") from None
    if not isinstance(record, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(record).__name__}")
    return record


def write_data_record(run_dir: str | Path, record: Mapping[str, Any]) -> Path:
    """Write ``data.json`` atomically."""
    return write_json(Path(run_dir) / "data.json", dict(record))


def _where(record: Mapping[str, Any], key: str, part: str) -> str:
    path = record.get(key) if part == "train" else (record.get("val_data") or record.get("data"))
    desc = record.get(part) or {}
    what = path if path else "samples given in memory (or the built-in simulator)"
    return f"{what} ({desc.get('n_frames', '?')} frames, digest {str(desc.get('digest'))[:12]})"


def check_data(run_dir: str | Path, saved: Mapping[str, Any] | None,
               new: Mapping[str, Any]) -> None:
    """Refuse to resume ``run_dir`` on data other than it was trained with.

    A record without digests (a run written before digests were kept) cannot be checked; it
    is accepted and the digests are recorded from now on.

    Raises
    ------
    InputError
        One line: the stored data description, the requested one and the fix.
    """
    if not saved:
        return
    for part, key in (("train", "data"), ("validation", "val_data")):
        old = saved.get(part)
        if isinstance(old, dict) and old.get("digest") and old != new[part]:
            label = "training" if part == "train" else "validation"
            raise InputError(
                f"resume: {run_dir} was trained with {label} data {_where(saved, key, part)}; "
                f"this run asks for {_where(new, key, part)}; start a new run folder or pass "
                "the same data")


def config_changes(saved: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, list]:
    """``{field: [saved, now]}`` for every field that differs; refuse the unsafe ones.

    Raises
    ------
    InputError
        Listing every changed field that cannot be applied to a resumed run.
    """
    changed = {k: [saved.get(k), now.get(k)] for k in sorted(set(saved) | set(now))
               if saved.get(k) != now.get(k)}
    unsafe = [k for k in changed if k not in SAFE_ON_RESUME]
    if "epochs" in changed and now.get("schedule") in _EPOCH_SCHEDULES:
        unsafe.append("epochs (the learning-rate schedule depends on it)")
    if unsafe:
        detail = ", ".join(f"{k}: {changed[k][0]!r} -> {changed[k][1]!r}" if k in changed
                           else k for k in unsafe)
        raise InputError(f"resume: the config differs from the run's saved config in "
                         f"{detail}; only {', '.join(SAFE_ON_RESUME)} may change on resume - "
                         "resume with the saved config (config.yaml) or start a new run folder")
    return changed


def record_changes(run_dir: str | Path, epoch: int, changes: Mapping[str, list]) -> None:
    """Append ``{"after_epoch", "changes"}`` to ``run_dir/resume.json`` (when any)."""
    if not changes:
        return
    path = Path(run_dir) / "resume.json"
    log = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    log.append({"after_epoch": int(epoch), "changes": dict(changes)})
    write_json(path, log)


__all__ = ["SAFE_ON_RESUME", "describe_frames", "data_record", "read_data_record",
           "write_data_record", "check_data", "config_changes", "record_changes"]
