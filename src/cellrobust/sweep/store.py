"""Resumable storage of a sweep: one Parquet shard per finished cell, written atomically.

A *cell* is one artefact at one severity index: every image corrupted once and segmented by
every segmenter. When a cell finishes its rows are written to ``cells/<artefact>__<idx>.parquet``
through a temporary file and :func:`os.replace`, so after a crash (even ``kill -9``) each shard
is either complete or absent; re-running skips the complete ones. ``sweep.json`` holds the
fingerprint of what the folder is computing, so a different sweep is never mixed into it.
The assembled table is sorted deterministically: whichever order cells finished in, and
however the work was spread over processes or machines, the table is identical (except the
``runtime_s`` column, a measurement).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from cellrobust._io import atomic_path, write_json
from cellrobust._validation import DataError, InputError
from cellrobust.table import SORT_KEYS

__all__ = ["ResultStore", "fingerprint"]


def fingerprint(description: dict) -> str:
    """SHA-256 of a JSON description (sorted keys)."""
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()


class ResultStore:
    """The results folder of one sweep.

    Parameters
    ----------
    folder : path
        Created when missing. Holds ``sweep.json``, ``cells/`` and the assembled
        ``results.parquet`` / ``results.csv``.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.cells = self.folder / "cells"

    def open(self, description: dict, *, overwrite: bool = False) -> None:
        """Bind the folder to a sweep; refuse a folder holding a different sweep's shards."""
        key = fingerprint(description)
        meta = self.folder / "sweep.json"
        if meta.is_file():
            old = json.loads(meta.read_text()).get("fingerprint")
            if old != key and not overwrite and self.shards():
                raise InputError(
                    f"{self.folder}: holds results of a different sweep (other segmenters, "
                    "artefacts, severities, images or seed); use a new results folder or "
                    "allow overwriting"
                )
            if old != key:
                self.clear()
        self.cells.mkdir(parents=True, exist_ok=True)
        for stale in self.cells.glob(".*.parquet"):  # temporary files of a killed run
            stale.unlink()
        write_json(meta, {"fingerprint": key, **description})

    def shards(self) -> list[Path]:
        """Finished shards present (temporary files excluded)."""
        return sorted(p for p in self.cells.glob("*.parquet") if not p.name.startswith("."))

    def clear(self) -> None:
        """Delete every shard (a fresh start)."""
        for shard in self.cells.glob("*.parquet"):
            shard.unlink()

    def shard(self, artefact: str, severity_index: int) -> Path:
        return self.cells / f"{artefact}__{int(severity_index):03d}.parquet"

    def done(self, cells) -> set[tuple[str, int]]:
        """The cells among ``cells`` whose shard exists."""
        return {c for c in cells if self.shard(*c).is_file()}

    def write(self, artefact: str, severity_index: int, rows: pd.DataFrame) -> Path:
        """Store one finished cell atomically."""
        target = self.shard(artefact, severity_index)
        with atomic_path(target) as tmp:
            rows.to_parquet(tmp, index=False)
        return target

    def assemble(self, cells, columns) -> pd.DataFrame:
        """Concatenate the shards of ``cells`` into the sorted table; write Parquet and CSV."""
        missing = [c for c in cells if not self.shard(*c).is_file()]
        if missing:
            raise DataError(f"{self.folder}: {len(missing)} cells have no results yet, "
                            f"e.g. {missing[0]}; run the sweep again to finish them")
        frames = [pd.read_parquet(self.shard(*c)) for c in cells]
        table = pd.concat(frames, ignore_index=True)[list(columns)]
        table = table.sort_values(SORT_KEYS, kind="mergesort", ignore_index=True)
        with atomic_path(self.folder / "results.parquet") as tmp:
            table.to_parquet(tmp, index=False)
        with atomic_path(self.folder / "results.csv") as tmp:
            table.to_csv(tmp, index=False)
        return table
