"""Illumination non-uniformity: the amplitude of a smooth additive background blob.

The ``illumination`` artefact adds ``A * exp(-r^2 / (2 s^2))`` with ``s = 0.2 * sqrt(H * W)``
(``sigma_fraction`` option) at a random centre to the *raw* gray levels and then min-max
rescales to [0, 255]. The estimator

1. suppresses the cells: block means of ``f x f`` pixels (``f = min(H, W) / 64``) followed by
   a 5 x 5 median on the coarse grid (cells cover < 10 % of a PSC frame and are ~1 coarse
   pixel wide, so the median returns the background);
2. fits the artefact's own low-order model ``c0 + c1 y + c2 x + A_z * blob(cy, cx)`` (a
   plane for the microscope's own gentle tilt, plus the blob of known width) by linear least
   squares for every centre on a 12 x 12 grid, then refines the best centre (variable
   projection, Nelder-Mead);
3. converts ``A_z`` to raw gray levels with the gain ``k`` measured from the cell contrast
   against the reference images (:func:`cellrobust.diagnose.noise.gain_replicates`), which
   undoes the min-max rescaling; without references the amplitude is in the image's gray
   levels.

The interval resamples tiles of the coarse grid for the linear fit (centre held fixed) and the
fine tiles for the gain. Reference: low-order polynomial / parametric background fitting, e.g.
Likar et al., J. Microsc. 197:285 (2000); Smith et al., Nat. Methods 12:404 (2015) (CIDRE).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from cellrobust._rng import as_rng
from cellrobust.diagnose._core import N_BOOT, Estimate, interval, make, replicates, tile_slices
from cellrobust.diagnose.noise import gain_replicates


def background(z: np.ndarray) -> tuple[np.ndarray, int]:
    """Coarse background (cells suppressed) and the block factor ``f``."""
    f = max(1, int(round(min(z.shape) / 64)))
    h, w = (z.shape[0] // f) * f, (z.shape[1] // f) * f
    coarse = z[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3)).astype(np.float32)
    return cv2.medianBlur(coarse, 5).astype(np.float64), f


def _design(shape, f, centre, sigma):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    yy, xx = (yy + 0.5) * f, (xx + 0.5) * f  # full-resolution pixel coordinates
    blob = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * sigma**2))
    scale = max(shape) * f
    return np.stack([np.ones_like(yy), yy / scale, xx / scale, blob], axis=-1)


def _fit(bg, f, centre, sigma):
    design = _design(bg.shape, f, centre, sigma).reshape(-1, 4)
    coef, *_ = np.linalg.lstsq(design, bg.ravel(), rcond=None)
    return coef, float(np.sum((design @ coef - bg.ravel()) ** 2))


def fit_blob(bg: np.ndarray, f: int, full_shape, sigma: float) -> tuple[np.ndarray, tuple]:
    """Best ``(coef, centre)`` of the blob-plus-plane model on the coarse background."""
    from scipy.optimize import minimize

    h, w = full_shape
    grid = [(cy, cx) for cy in np.linspace(0, h - 1, 12) for cx in np.linspace(0, w - 1, 12)]
    best = min(grid, key=lambda c: _fit(bg, f, c, sigma)[1])
    res = minimize(lambda c: _fit(bg, f, c, sigma)[1], np.array(best), method="Nelder-Mead",
                   options={"xatol": 1.0, "fatol": 1e-6, "maxiter": 200})
    centre = tuple(np.clip(res.x, [0, 0], [h - 1, w - 1]))
    return _fit(bg, f, centre, sigma)[0], centre


def _model(shape, f, centre, sigma, coef):
    """The fitted background at full resolution (H, W)."""
    design = _design(shape, 1, centre, sigma)
    design[..., 1:3] *= max(shape) / (max(shape[0] // f, shape[1] // f) * f)  # coarse units
    return design @ coef


def _normal_stats(bg, f, centre, sigma, tile):
    """Per coarse tile: flattened ``X^T X`` (16) and ``X^T y`` (4) of the linear fit."""
    design = _design(bg.shape, f, centre, sigma)
    rows = []
    for ys, xs in tile_slices(bg.shape, tile):
        x = design[ys, xs].reshape(-1, 4)
        y = bg[ys, xs].ravel()
        rows.append(np.concatenate([(x.T @ x).ravel(), x.T @ y]))
    return np.array(rows)


def _amplitude(s):
    xtx, xty = s[:16].reshape(4, 4), s[16:]
    try:
        return float(np.linalg.solve(xtx, xty)[3])
    except np.linalg.LinAlgError:
        return math.nan


def illumination(z: np.ndarray, *, reference=None, rng=None, n_boot: int = N_BOOT,
                 sigma_fraction: float = 0.2,
                 tile: int = 64) -> Estimate:
    """Amplitude ``A`` (gray levels of the corrupting step) of the illumination blob.

    Parameters
    ----------
    z : ndarray (H, W) float
        Image, as read or as written by ``cellrobust corrupt``.
    reference : ReferenceStats, optional
        Clean images of the study (gain, and their own fitted amplitude, reported as
        ``reference_amplitude`` in ``detail``; not subtracted: a real gradient adds to it).
    sigma_fraction : float
        Blob width as a fraction of ``sqrt(H * W)`` (the artefact's option, default 0.2).

    Returns
    -------
    Estimate
        ``max(A, 0)``; a dark blob (vignetting-like) is reported as 0 with its signed value
        in ``detail["signed_amplitude"]``.
    """
    gen = as_rng(rng)
    bg, f = background(z)
    sigma = float(sigma_fraction) * math.sqrt(z.shape[0] * z.shape[1])
    coef, centre = fit_blob(bg, f, z.shape, sigma)
    stats = _normal_stats(bg, f, centre, sigma, max(4, min(bg.shape) // 4))
    a_point, a_reps = replicates(stats, _amplitude, rng=gen, n_boot=n_boot)
    flat = z - _model(z.shape, f, centre, sigma, coef)  # blob curvature would inflate the gain
    _, gain = gain_replicates(flat, tile_slices(z.shape, tile), reference, rng=gen,
                              n_boot=n_boot)
    detail = {"centre_yx": [round(float(c), 1) for c in centre], "signed_amplitude_image":
              float(coef[3])}
    if gain is None:
        return make("illumination", (max(a_point, 0.0), *interval(np.maximum(a_reps, 0), n_boot)),
                    "blob + plane fit to the median-filtered background; image gray levels "
                    "(no reference: min-max gain unknown)", **detail)
    _, (k, k_reps) = gain
    n = min(len(a_reps), len(k_reps))
    k_n = np.asarray(k_reps[:n], dtype=float)  # gain 0: no cell contrast left (noise swamps it)
    boot = np.where(k_n > 0, np.maximum(a_reps[:n], 0) / np.where(k_n > 0, k_n, 1.0), math.nan)
    detail.update(gain=k, reference_amplitude=float(reference.floors.get("illumination",
                                                                          math.nan)))
    point = max(a_point, 0.0) / k if k > 0 else math.nan
    return make("illumination", (point, *interval(boot, n_boot)),
                "blob + plane fit to the median-filtered background; reference (raw) gray "
                "levels via the cell-contrast gain",
                signed_amplitude=float(coef[3]) / k if k > 0 else math.nan,
                **detail)
