"""Spatial-scale estimators: apparent cell size (zoom factor) and defocus blur sigma (px).

Cell size. The characteristic blob scale of an image is the ``s`` that maximises the mean
energy of the scale-normalised Laplacian of Gaussian, ``E(s) = mean((s^2 LoG_s * z)^2)``
(Lindeberg, Int. J. Comput. Vis. 30:79 (1998), scale selection; a granulometry in the sense of
Matheron 1975), with the expected energy of white noise of the image's Immerkær sigma
subtracted at every scale. The peak (parabola in ``log s``) of the image divided by the peak of
the reference images is the apparent magnification, the ``cell_size`` / ``zoom`` parameter
(window of side ``256 / zoom`` resized to 256 px: cells look ``zoom`` times larger). Without
references the result is the peak scale in px (``detail["peak_scale_px"]``) and the factor is
relative to PSC's 13 px cells (blob scale ``13 / (2 sqrt 2)`` px), stated.

Defocus. A gaussian PSF multiplies the power spectrum by ``exp(-4 pi^2 sigma^2 f^2)``; the
log-ratio of the image's radially averaged spectrum to the reference images' is fitted by
``c - 4 pi^2 sigma^2 f^2`` over the frequencies where the image stays 4x above its white-noise
floor (Hann-windowed tiles). Because the reference's own PSF cancels, sigma is the *added*
blur (gaussian widths add in quadrature). Reference: spectral blur identification, e.g.
Lagendijk & Biemond, Iterative Identification and Restoration of Images (1991), ch. 6.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from cellrobust._rng import as_rng
from cellrobust.diagnose._core import N_BOOT, Estimate, bootstrap, make, tile_slices, tile_sums
from cellrobust.diagnose.noise import immerkaer_sigma, immerkaer_stats

SCALES = tuple(float(s) for s in np.geomspace(0.8, 24.0, 30))
PSC_BLOB_SCALE = 13.0 / (2 * math.sqrt(2))  # px: blob scale of a 13 px disc (r / sqrt 2)
SPECTRUM_TILE = 64
N_BINS = 24


@functools.lru_cache(maxsize=None)
def _noise_energy(scale: float) -> float:
    """Sum of squared coefficients of the discrete ``s^2 LoG_s`` (energy per unit variance)."""
    size = int(2 * math.ceil(4 * scale) + 1) + 8
    delta = np.zeros((size, size), np.float32)
    delta[size // 2, size // 2] = 1.0
    return float(np.sum(_log(delta, scale).astype(np.float64) ** 2))


def _log(z32: np.ndarray, scale: float) -> np.ndarray:
    blurred = cv2.GaussianBlur(z32, (0, 0), scale, borderType=cv2.BORDER_REFLECT_101)
    return cv2.Laplacian(blurred, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT_101) \
        * np.float32(scale**2)


def scale_stats(z: np.ndarray, tiles) -> np.ndarray:
    """Per tile: LoG energy at every scale of :data:`SCALES`, then Immerkær's 2 stats."""
    z32 = z.astype(np.float32)
    energy = np.stack([_log(z32, s).astype(np.float64) ** 2 for s in SCALES])
    return np.hstack([tile_sums(energy, tiles), immerkaer_stats(z, tiles)])


def log_energy(s: np.ndarray) -> np.ndarray:
    """Log of the noise-corrected mean LoG energy at every scale (floored at 1e-6 of its max)."""
    n = len(SCALES)
    sigma = immerkaer_sigma(s[n:n + 2])
    energy = s[:n] / max(s[n + 1], 1) - sigma**2 * np.array([_noise_energy(v) for v in SCALES])
    return np.log(np.maximum(energy, 1e-6 * max(float(energy.max()), 1e-12)))


def peak_scale(s: np.ndarray) -> float:
    """Blob scale (px) maximising the noise-corrected LoG energy; NaN at the range's ends."""
    energy = log_energy(s)
    i = int(np.argmax(energy))
    if i == 0 or i == len(SCALES) - 1:
        return math.nan
    y0, y1, y2 = energy[i - 1:i + 2]
    denom = y0 - 2 * y1 + y2
    shift = 0.0 if denom == 0 else float(np.clip(0.5 * (y0 - y2) / denom, -1, 1))
    logs = np.log(SCALES)
    return float(math.exp(logs[i] + shift * (logs[1] - logs[0])))


_SHIFTS = np.linspace(-math.log(4.0), math.log(4.0), 561)


def scale_factor(curve: np.ndarray, ref_curve: np.ndarray) -> float:
    """Magnification ``z`` aligning the image's log-energy curve with the reference's.

    A magnified image has ``E_img(s) = E_ref(s / z)`` (scale-normalised LoG), so ``ln z`` is
    the shift in ``ln s`` minimising the squared difference of the two curves (a free
    constant absorbs the gain) over their overlap, within 0.6 of the reference peak's log-energy
    span from the top (where the cell structure, not noise or background, dominates).
    """
    logs = np.log(SCALES)
    top = ref_curve.max()
    band = ref_curve >= top - 0.6 * (top - ref_curve.min())
    costs = np.full(len(_SHIFTS), np.inf)
    for k, d in enumerate(_SHIFTS):
        u = logs[band] + d  # image log-scales matching the reference's band
        ok = (u >= logs[0]) & (u <= logs[-1])
        if ok.sum() < max(4, band.sum() // 2):
            continue
        diff = np.interp(u[ok], logs, curve) - ref_curve[band][ok]
        costs[k] = float(np.mean((diff - diff.mean()) ** 2))
    if not np.isfinite(costs).any():
        return math.nan
    return float(math.exp(_SHIFTS[int(np.argmin(costs))]))


def cell_size(z: np.ndarray, *, reference=None, rng=None, n_boot: int = N_BOOT,
              tile: int = 64) -> Estimate:
    """Apparent magnification of the cells relative to the reference images (x)."""
    gen = as_rng(rng)
    stats = scale_stats(z, tile_slices(z.shape, tile))
    if reference is None:
        values = bootstrap(stats, lambda s: peak_scale(s) / PSC_BLOB_SCALE, rng=gen,
                           n_boot=n_boot)
        return make("cell_size", values, "scale-normalised LoG energy peak (Lindeberg 1998) "
                    "relative to PSC's 13 px cells (no reference given)",
                    peak_scale_px=values[0] * PSC_BLOB_SCALE)
    ref_curve = np.asarray(reference.scale_energy, dtype=float)
    values = bootstrap(stats, lambda s: scale_factor(log_energy(s), ref_curve), rng=gen,
                       n_boot=n_boot)
    return make("cell_size", values, "shift of the scale-normalised LoG energy curve "
                "(Lindeberg 1998 scale selection) against the reference images'",
                peak_scale_px=peak_scale(stats.sum(axis=0)))


def _radial_bins(side: int) -> tuple[np.ndarray, np.ndarray]:
    f = np.fft.fftfreq(side)
    radius = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    edges = np.linspace(0, 0.5, N_BINS + 1)
    return np.digitize(radius, edges) - 1, 0.5 * (edges[1:] + edges[:-1])


def spectrum_stats(z: np.ndarray, tile: int = SPECTRUM_TILE) -> np.ndarray:
    """Per tile: radially binned power (N_BINS), Immerkær's 2 stats, 1 (the tile count)."""
    tiles = tile_slices(z.shape, tile)
    side = tiles[0][0].stop - tiles[0][0].start
    window = np.outer(np.hanning(side), np.hanning(side))
    bins, _ = _radial_bins(side)
    rows = []
    for ys, xs in tiles:
        block = z[ys, xs] - z[ys, xs].mean()
        power = np.abs(np.fft.fft2(block * window)) ** 2 / np.sum(window**2)
        rows.append(np.bincount(bins.ravel(), power.ravel(), minlength=N_BINS + 1)[:N_BINS]
                    / np.maximum(np.bincount(bins.ravel(), minlength=N_BINS + 1)[:N_BINS], 1))
    return np.hstack([np.array(rows), immerkaer_stats(z, tiles), np.ones((len(rows), 1))]), side


def blur_sigma(s: np.ndarray, ref_power: np.ndarray, side: int) -> float:
    """Added gaussian blur sigma (px) from summed spectrum stats vs the reference spectrum."""
    _, freqs = _radial_bins(side)
    power = s[:N_BINS] / max(s[-1], 1)
    floor = max(immerkaer_sigma(s[N_BINS:N_BINS + 2]) ** 2, 1.0 / 12.0)
    use = (freqs > 0.02) & (power > 4 * floor) & (ref_power > 4 * floor)
    if use.sum() < 3:
        return math.nan
    y = np.log(power[use] / ref_power[use])
    x = freqs[use] ** 2
    slope = np.polyfit(x, y, 1)[0]
    return math.sqrt(max(0.0, -slope) / (4 * math.pi**2))


def defocus(z: np.ndarray, *, reference=None, rng=None, n_boot: int = N_BOOT) -> Estimate | None:
    """Added gaussian blur sigma (px) relative to the reference images; None without them."""
    if reference is None:
        return None
    stats, side = spectrum_stats(z, min(SPECTRUM_TILE, reference.spectrum_side))
    if side != reference.spectrum_side:
        return None
    ref_power = np.asarray(reference.spectrum, dtype=float)
    return make("defocus", bootstrap(stats, lambda s: blur_sigma(s, ref_power, side),
                                     rng=as_rng(rng), n_boot=n_boot),
                "gaussian-PSF fit to the log power-spectrum ratio vs the reference images "
                "(added sigma, px)")
