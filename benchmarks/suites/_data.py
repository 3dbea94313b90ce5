"""Synthetic gray-level inputs shared by the suites (written once, read by every side)."""

from __future__ import annotations

import numpy as np

from .metrics import make_pair


def cell_images(n: int, shape: tuple[int, int], *, seed: int, n_objects: int = 30,
                radius: float = 7.0) -> np.ndarray:
    """``n`` uint8 phase-contrast-like images (N, H, W): bright cells with halos, noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, *shape), np.uint8)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]] / max(shape)
    for i in range(n):
        labels, _ = make_pair(shape, n_objects, radius, rng)
        background = 90 + 20 * np.sin(3 * yy + rng.uniform(0, 6)) * np.cos(2 * xx)
        img = background + 70.0 * (labels > 0) + rng.normal(0, 6, shape)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def save_images(path: str, n: int, shape: tuple[int, int], *, seed: int, **kw) -> str:
    """Write :func:`cell_images` to ``path`` (.npy) and return the path."""
    np.save(path, cell_images(n, shape, seed=seed, **kw))
    return path
