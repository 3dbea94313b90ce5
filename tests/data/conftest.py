"""Fixtures for the data-reader tests: tiny data sets written in each layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datatest_helpers import two_cells, write


@pytest.fixture
def ctc_dir(tmp_path: Path) -> Path:
    """CTC layout: seq 01 frames t000-t003 (GT on 0 and 2, ST on 0, 1, 3); seq 02 t0000-t0001
    with 4-digit names (GT on both); an unannotated frame t002 in 01 for ST."""
    root = tmp_path / "Fluo-Tiny"
    rng = np.random.default_rng(0)
    for t in range(4):
        write(root / "01" / f"t{t:03d}.tif", rng.integers(0, 255, (32, 40), dtype=np.uint8))
    for t in (0, 2):
        write(root / "01_GT" / "SEG" / f"man_seg{t:03d}.tif", two_cells(values=(3, 9)))
    for t in (0, 1, 3):
        write(root / "01_ST" / "SEG" / f"man_seg{t:03d}.tif", _st())
    for t in range(2):
        write(root / "02" / f"t{t:04d}.tif", rng.integers(0, 4000, (32, 40), dtype=np.uint16))
        write(root / "02_GT" / "SEG" / f"man_seg{t:04d}.tif", two_cells())
    (root / "01_GT" / "TRA").mkdir()
    write(root / "01_GT" / "SEG" / "man_seg_000_005.tif", two_cells())  # 3-D slice: ignored
    return root


def _st() -> np.ndarray:
    mask = np.zeros((32, 40), np.uint16)
    mask[20:25, 5:10] = 7  # one cell: silver truth differs from gold
    return mask


@pytest.fixture
def dij_dir(tmp_path: Path) -> Path:
    """DeepImageJ layout with binary 0/1 masks: train t010-t011, validation t020."""
    root = tmp_path / "dij"
    mask = np.zeros((24, 24), np.uint8)
    mask[2:5, 2:5] = 1
    mask[5, 5] = 1          # touches the first square diagonally: one 8-connected object
    mask[10:14, 10:12] = 1  # a second object
    for split, frames in (("train", (10, 11)), ("validation", (20,))):
        for t in frames:
            write(root / split / "input" / f"t{t:03d}.tif", np.full((24, 24), t, np.uint8))
            write(root / split / "output" / f"man_seg{t:03d}.tif", mask)
    return root
