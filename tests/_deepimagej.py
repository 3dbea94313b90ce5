"""A tiny DeepImageJ-layout data set on disk (bright rectangles on noise), for training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def write_deepimagej(root: Path, *, train_frames=(150, 151), val_frames=(235,)) -> Path:
    """Write ``train/`` and ``validation/`` (``input/t{T}.tif``, ``output/man_seg{T}.tif``).

    Every frame is 64 x 72 uint8: 8 rectangles of 7 x 6 px (mask 1) at gray 200 on 50, plus
    gaussian noise of sigma 10, drawn from ``default_rng(0)`` in frame order.
    """
    rng = np.random.default_rng(0)
    for split, frames in (("train", train_frames), ("validation", val_frames)):
        (root / split / "input").mkdir(parents=True)
        (root / split / "output").mkdir(parents=True)
        for t in frames:
            mask = np.zeros((64, 72), np.uint8)
            for _ in range(8):
                y, x = rng.integers(0, 56, 2)
                mask[y:y + 7, x:x + 6] = 1
            image = (50 + 150 * mask + rng.normal(0, 10, mask.shape)).clip(0, 255)
            tifffile.imwrite(root / split / "input" / f"t{t}.tif", image.astype(np.uint8))
            tifffile.imwrite(root / split / "output" / f"man_seg{t}.tif", mask)
    return root
