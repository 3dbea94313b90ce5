"""Small helpers shared by the artefact family modules."""

from __future__ import annotations

import numpy as np

from cellrobust._validation import InputError

DEFAULT_CELL_DIAMETER_PX = 13.0  # PhC-C2DL-PSC: cells ~130 px in area (1.6 um pixels)


def median_cell_diameter(labels: np.ndarray | None, *, fallback: float | None = None) -> float:
    """Median equivalent-circle diameter (px) of the instances in ``labels``.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W) or (N, H, W), or None
        Instance labels (0 = background). Binary masks work too (each connected component is
        not separated; a binary mask counts as one instance per image, so prefer instances).
    fallback : float, optional
        Returned when there are no labels or no instances; without it an error is raised.
    """
    if labels is not None:
        lab = np.asarray(labels)
        lab = lab.reshape(-1, *lab.shape[-2:])
        areas = []
        for frame in lab:
            counts = np.bincount(frame.ravel().astype(np.int64))[1:]
            areas.append(counts[counts > 0])
        all_areas = np.concatenate(areas) if areas else np.empty(0)
        if all_areas.size:
            return float(2.0 * np.sqrt(np.median(all_areas) / np.pi))
    if fallback is None:
        raise InputError(
            "cell_diameter: no labelled cells to measure the median cell diameter from; "
            "pass cell_diameter (px) explicitly"
        )
    return float(fallback)


def reference_white(images: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Per-image full-scale value (N,): the dtype maximum for integer input, else the image max."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return np.full(images.shape[0], float(np.iinfo(dtype).max), dtype=np.float32)
    return images.reshape(images.shape[0], -1).max(axis=1).astype(np.float32)


def odd(n: float) -> int:
    """Smallest odd integer >= n (kernel sizes)."""
    k = int(np.ceil(n))
    return k if k % 2 else k + 1
