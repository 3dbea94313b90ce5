"""Non-uniform illumination: the study's randomly centred 2-D gaussian blob.

Formula (reproduced exactly from the DeepImageJ PSC U-Net robustness study): for an image
``x`` of shape (H, W) in raw gray levels, draw a centre ``(cy, cx)`` uniformly over the image,
add in float32

    b(y, x) = A * exp(-((y - cy)^2 + (x - cx)^2) / (2 sigma^2)),   sigma = 0.2 * sqrt(H * W)

(``sigma = side / 5`` for a square image; the geometric mean of the sides keeps the blob round
on non-square images), then min-max rescale the result to [0, 255] (the default output
normalisation of this artefact). ``A`` is the amplitude in raw gray levels: the study's grid is
0-4000 in 41 steps, its training range 0-300. Several blobs (``n_blobs``) may be added.
"""

from __future__ import annotations

import numpy as np

from cellrobust._validation import check_range
from cellrobust.artefacts.registry import Artefact, register

STUDY_GRID = tuple(float(v) for v in np.linspace(0.0, 4000.0, 41))
TRAINING_RANGE = (0.0, 300.0)
LADDER = (0.0, 110.0, 185.0, 255.0, 325.0, 390.0)


def gaussian_blobs(
    shape: tuple[int, int, int], amplitude: float, centres: np.ndarray, sigma: float
) -> np.ndarray:
    """Sum of isotropic gaussian blobs per image, built separably (no per-pixel Python loop).

    Parameters
    ----------
    shape : (N, H, W)
    amplitude : float
        Peak height of each blob (gray levels).
    centres : ndarray, shape (N, K, 2)
        (row, column) of the K blob centres of every image, in pixels (may be fractional).
    sigma : float
        Standard deviation in pixels.

    Returns
    -------
    ndarray of float32, shape (N, H, W)
    """
    _, h, w = shape
    rows = np.arange(h, dtype=np.float32)
    cols = np.arange(w, dtype=np.float32)
    cy = centres[..., 0, None].astype(np.float32)
    cx = centres[..., 1, None].astype(np.float32)
    scale = np.float32(-0.5 / sigma**2)
    gy = np.exp((rows - cy) ** 2 * scale)  # (N, K, H)
    gx = np.exp((cols - cx) ** 2 * scale)  # (N, K, W)
    out = np.zeros(shape, dtype=np.float32)
    for k in range(centres.shape[1]):  # outer products, elementwise (no BLAS)
        out += (gy[:, k, :, None] * np.float32(amplitude)) * gx[:, k, None, :]
    return out


def draw_centres(rng: np.random.Generator, n: int, k: int, h: int, w: int) -> np.ndarray:
    """Uniform blob centres over the image, shape (N, K, 2) as (row, column)."""
    unit = rng.random((n, k, 2))
    return unit * np.array([h - 1, w - 1], dtype=np.float64)


def _illumination(images, value, rng, *, labels=None, dtype=None, sigma_fraction=0.2,
                  n_blobs=1):
    check_range("sigma_fraction", sigma_fraction, low=0, low_inclusive=False)
    n_blobs = int(check_range("n_blobs", n_blobs, low=1))
    n, h, w = images.shape
    sigma = float(sigma_fraction) * float(np.sqrt(h * w))
    centres = draw_centres(rng, n, n_blobs, h, w)
    out = images + gaussian_blobs(images.shape, value, centres, sigma)
    params = [
        {"centres_yx": np.round(c, 3).tolist(), "sigma_px": round(sigma, 4)} for c in centres
    ]
    return out, params


ILLUMINATION = register(Artefact(
    name="illumination",
    kind="intensity",
    parameter="amplitude",
    unit="gray levels",
    grid=STUDY_GRID,
    ladder=LADDER,
    identity=0.0,
    limits=(0.0, np.inf),
    presets={"study": STUDY_GRID, "training_range": TRAINING_RANGE},
    default_normalise="minmax",
    reference="DeepImageJ PSC U-Net robustness study (non-uniform illumination); "
              "Gomez-de-Mariscal et al., Nat. Methods 18:1192 (2021) for the model",
    description="randomly centred 2-D gaussian blob (sigma = side/5) added in float, "
                "then min-max to [0, 255]",
    kernel=_illumination,
))
