"""Helpers for the data-reader tests: writing tiny image and mask files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def write(path: Path, array: np.ndarray) -> Path:
    """Write a TIFF (or .npy / PNG by suffix), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array)
    elif path.suffix == ".png":
        import imageio.v3 as iio

        iio.imwrite(path, array)
    else:
        tifffile.imwrite(path, array)
    return path


def two_cells(shape=(32, 40), values=(3, 9)) -> np.ndarray:
    """Instance mask with two rectangles labelled ``values`` (areas 20 and 30 px)."""
    mask = np.zeros(shape, np.uint16)
    mask[2:6, 2:7] = values[0]
    mask[10:15, 20:26] = values[1]
    return mask
