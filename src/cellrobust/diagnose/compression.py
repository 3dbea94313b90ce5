"""JPEG quality from the periodicity of the 8 x 8 DCT coefficients.

A baseline JPEG stores every DCT coefficient ``c_uv`` of every 8 x 8 block as a multiple of
the quantisation step ``T_uv``; after decoding (and rounding to 8 bit) the coefficients still
cluster at those multiples (Fan & de Queiroz, IEEE Trans. Image Process. 12(2):230 (2003)).
For every IJG quality ``Q`` (the ``jpeg`` artefact's parameter, table of
:func:`cellrobust.artefacts.compression.quant_table`) the score is the mean of
``cos(2 pi c / T_uv(Q))`` over the low-frequency coefficients that ``Q`` would not quantise to
zero (``|c| >= T/2``); the estimate is the best-scoring ``Q``, or 100 (not compressed) when no
score reaches 0.5. Blocks are aligned at the image origin (true for whole frames and for
crops at multiples of 8 px); images that were rescaled after compression lose the lattice.
"""

from __future__ import annotations

import numpy as np

from cellrobust._rng import as_rng
from cellrobust.diagnose._core import N_BOOT, Estimate, bootstrap, make, tile_slices

QUALITIES = np.arange(1, 100)
#: (u, v) pairs with 1 <= u + v <= 3: the coefficients coarse enough to be non-zero.
_COEFFS = [(u, v) for u in range(4) for v in range(4) if 1 <= u + v <= 3]
THRESHOLD = 0.5


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    d = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / 16) * np.sqrt(2 / 8)
    d[0] /= np.sqrt(2)
    return d


def block_coefficients(z: np.ndarray) -> np.ndarray:
    """DCT coefficients (n_blocks_y, n_blocks_x, 8, 8) of the level-shifted 8 x 8 blocks."""
    h, w = (z.shape[0] // 8) * 8, (z.shape[1] // 8) * 8
    blocks = (z[:h, :w] - 128.0).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    d = _dct_matrix()
    return d @ blocks @ d.T


def _tables() -> np.ndarray:
    from cellrobust.artefacts.compression import quant_table

    return np.array([[quant_table(int(q))[u, v] for (u, v) in _COEFFS] for q in QUALITIES])


def jpeg(z: np.ndarray, *, reference=None, rng=None, n_boot: int = N_BOOT,
         tile: int = 64) -> Estimate:
    """IJG quality 1-100 of the last JPEG compression (100 = none detected)."""
    gen = as_rng(rng)
    coef = block_coefficients(np.rint(z))
    picked = np.stack([coef[..., u, v] for (u, v) in _COEFFS], axis=-1)  # (By, Bx, C)
    tables = _tables()  # (Q, C)
    nonzero = np.abs(picked[None]) >= tables[:, None, None, :] / 2  # (Q, By, Bx, C)
    cosine = np.cos(2 * np.pi * picked[None] / tables[:, None, None, :]) * nonzero
    tiles = tile_slices((coef.shape[0], coef.shape[1]), max(2, tile // 8))
    stats = np.array([np.concatenate([cosine[:, ys, xs].sum(axis=(1, 2, 3)),
                                      nonzero[:, ys, xs].sum(axis=(1, 2, 3))])
                      for ys, xs in tiles])
    values = bootstrap(stats, _quality, rng=gen, n_boot=n_boot)
    score = _scores(stats.sum(axis=0))
    return make("jpeg", values, "8x8 DCT quantisation-lattice match to the IJG tables "
                "(Fan & de Queiroz 2003); 100 = no lattice found",
                best_score=float(np.nanmax(score)) if np.isfinite(score).any() else 0.0)


def _scores(s: np.ndarray) -> np.ndarray:
    n = len(QUALITIES)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s[n:] > 0, s[:n] / s[n:], np.nan)


def _quality(s: np.ndarray) -> float:
    score = _scores(s)
    if not np.isfinite(score).any() or np.nanmax(score) < THRESHOLD:
        return 100.0
    return float(QUALITIES[int(np.nanargmax(score))])
