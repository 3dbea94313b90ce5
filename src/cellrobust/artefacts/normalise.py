"""Output normalisation of corrupted images: ``minmax``, ``clip`` or ``none``.

- ``"minmax"`` — the studies' convention: every image is rescaled on its own to [0, 255]
  (``(x - min) / (max - min) * 255``; a constant image becomes 0). This is what the
  DeepImageJ robustness paper did after adding an illumination blob or gaussian noise.
- ``"clip"`` — keep the gray-level scale of the input and clip to its dtype range: [0, 255]
  for uint8, [0, 65535] for uint16, [0, inf) for non-negative float input (float input with
  negative values is not clipped). Physically: a camera saturates and cannot go below zero.
- ``"none"`` — return the float32 result untouched (values may be negative or above range).

The output is always float32 of the input's shape.
"""

from __future__ import annotations

import functools

import numpy as np

from cellrobust._validation import check_choice

MODES = ("minmax", "clip", "none")


@functools.lru_cache(maxsize=None)
def _integer_range(dtype: np.dtype) -> tuple[float, float] | None:
    """(min, max) of an integer dtype as floats; None for any other dtype."""
    if dtype.kind not in "iu":
        return None
    info = np.iinfo(dtype)
    return float(info.min), float(info.max)


def dtype_range(dtype: np.dtype, clean: np.ndarray | None = None) -> tuple[float, float]:
    """The (low, high) gray-level range ``clip`` keeps for input of ``dtype``."""
    integer = _integer_range(np.dtype(dtype))
    if integer is not None:
        return integer
    if clean is not None and clean.size and float(clean.min()) < 0:
        return -np.inf, np.inf
    return 0.0, np.inf


def minmax(images: np.ndarray, *, high: float = 255.0) -> np.ndarray:
    """Rescale each image of an (N, H, W) or (H, W) float array to [0, ``high``]."""
    x = np.asarray(images, dtype=np.float32)
    flat = x.reshape(-1, x.shape[-2] * x.shape[-1]) if x.ndim == 3 else x.reshape(1, -1)
    lo = flat.min(axis=1)
    span = flat.max(axis=1) - lo
    scale = np.where(span > 0, high / np.where(span > 0, span, 1), 0).astype(np.float32)
    out = (flat - lo[:, None]) * scale[:, None]
    return out.reshape(x.shape)


def normalise(
    images: np.ndarray, mode: str, *, dtype: np.dtype, clean: np.ndarray | None = None
) -> np.ndarray:
    """Apply output normalisation ``mode`` to float32 ``images`` corrupted from ``dtype`` input.

    Parameters
    ----------
    images : ndarray, shape (N, H, W)
        Corrupted images in the input's gray-level scale: float32 (normalised in place), or
        integers (converted to float32; ``clip`` is skipped when their dtype lies within the
        clip range, e.g. uint8 output of uint8 input, since it cannot change them).
    mode : {"minmax", "clip", "none"}
    dtype : numpy dtype
        dtype of the clean input (decides the ``clip`` range).
    clean : ndarray, optional
        Clean input, used to decide the range of float input.
    """
    check_choice("normalise", mode, MODES)
    if mode == "minmax":
        return minmax(images)
    given = _integer_range(images.dtype)
    images = images.astype(np.float32, copy=False)
    if mode == "clip":
        low, high = dtype_range(dtype, clean)
        if given is not None and low <= given[0] and given[1] <= high:
            return images  # every value of the given integer dtype lies in [low, high]
        if np.isfinite(low) or np.isfinite(high):
            return np.clip(images, low, high, out=images)
    return images
