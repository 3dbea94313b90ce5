"""Noise estimators: additive gaussian sigma, Poisson-Gaussian gain, stripes, hot pixels.

Gray-level scale. The ``gaussian_noise`` artefact adds ``sigma * N(0, 1)`` to the raw gray
levels and then min-max rescales the result to [0, 255] by default, which shrinks the noise by
the unknown factor ``k = 255 / (max - min)``. Estimating sigma *in the raw gray levels of the
corrupting step* therefore needs the image's gain ``k``: it is the ratio of the image's cell
contrast (variance of the image minus a 16 px gaussian low-pass, noise variance subtracted) to
the reference images' (:func:`gain_replicates`). Without reference images no gain can be
measured and the estimates are in the image's own gray levels (the method string says so).
``poisson``, ``stripes`` and ``hot_pixels`` clip (keep the scale) by default and are estimated
in the image's gray levels.

References
----------
Immerkær J. (1996) Fast noise variance estimation. Comput. Vis. Image Underst. 64(2):300-302.
Donoho D. L. (1995) De-noising by soft-thresholding. IEEE Trans. Inf. Theory 41(3):613-627.
Foi A., Trimeche M., Katkovnik V., Egiazarian K. (2008) Practical Poissonian-Gaussian noise
modeling and fitting for single-image raw-data. IEEE Trans. Image Process. 17(10):1737-1754.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from cellrobust._rng import as_rng
from cellrobust.diagnose._core import (N_BOOT, Estimate, bootstrap, interval, make,
                                       replicates, tile_slices, tile_sums)

IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
HP_SIGMA = 16.0  # px, low-pass removed before measuring cell contrast
#: Fraction of white-noise power left after subtracting a gaussian low-pass of HP_SIGMA.
HP_NOISE_GAIN = 1.0 - 3.0 / (4.0 * math.pi * HP_SIGMA**2)


def _laplacian_abs(z: np.ndarray) -> np.ndarray:
    """|Immerkær mask * z| on interior pixels, 0 on the 1-px border (H, W)."""
    out = np.abs(cv2.filter2D(z.astype(np.float32), -1, IMMERKAER,
                              borderType=cv2.BORDER_REFLECT_101)).astype(np.float64)
    out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = 0
    return out


def immerkaer_stats(z: np.ndarray, tiles) -> np.ndarray:
    """Per-tile ``[sum |Laplacian|, n interior pixels]`` (n_tiles, 2)."""
    inner = np.zeros(z.shape)
    inner[1:-1, 1:-1] = 1
    return np.hstack([tile_sums(_laplacian_abs(z), tiles), tile_sums(inner, tiles)])


def immerkaer_sigma(s: np.ndarray) -> float:
    """Immerkær (1996): ``sigma = sqrt(pi/2) / 6 * mean |z * N|`` from summed stats."""
    return math.sqrt(math.pi / 2) / 6.0 * s[0] / max(s[1], 1)


def contrast_stats(z: np.ndarray, tiles) -> np.ndarray:
    """Per-tile ``[sum hp^2, n]`` with ``hp = z - G_16 * z`` (cell-scale contrast)."""
    z32 = z.astype(np.float32)
    hp = (z32 - cv2.GaussianBlur(z32, (0, 0), HP_SIGMA, borderType=cv2.BORDER_REFLECT_101))
    return np.hstack([tile_sums(hp.astype(np.float64) ** 2, tiles),
                      tile_sums(np.ones(z.shape), tiles)])


def signal_variance(s: np.ndarray) -> float:
    """Cell-contrast variance with the white-noise part removed, from summed stats
    ``[sum|lap|, n_inner, sum hp^2, n]``."""
    sigma = immerkaer_sigma(s[:2])
    return s[2] / max(s[3], 1) - HP_NOISE_GAIN * sigma**2


def gain_replicates(z: np.ndarray, tiles, reference, *, rng, n_boot: int = N_BOOT):
    """Gain ``k`` (image gray levels per reference gray level) and its tile replicates.

    ``k = sqrt(signal_variance(image) / reference.signal_var)``; ``(1.0, ones)`` without a
    reference. The sigma of the added noise in reference (raw) gray levels is ``sigma_z / k``.
    """
    stats = np.hstack([immerkaer_stats(z, tiles), contrast_stats(z, tiles)])
    if reference is None:
        return stats, None
    ref_var = float(reference.signal_var)
    func = lambda s: math.sqrt(max(signal_variance(s), 0.0) / ref_var)  # noqa: E731
    return stats, (func, replicates(stats, func, rng=rng, n_boot=n_boot))


def gaussian_noise(z: np.ndarray, *, reference=None, rng=None, n_boot: int = N_BOOT,
                   method: str = "immerkaer",
                   tile: int = 64) -> Estimate:
    """Sigma of additive gaussian noise (gray levels of the corrupting step).

    Parameters
    ----------
    z : ndarray (H, W) float
        The image (as read, or as written by ``cellrobust corrupt``).
    reference : ReferenceStats, optional
        Clean images of the study: gives the gain ``k`` (undoes the min-max rescaling) and
        the intrinsic noise ``sigma_ref``; the estimate is then the *added* sigma
        ``sqrt(max(0, (sigma_z / k)^2 - sigma_ref^2))``. Without it: the total sigma in the
        image's gray levels.
    method : {"immerkaer", "wavelet"}
        Immerkær's Laplacian estimator, or the MAD of the finest diagonal Haar wavelet
        coefficients (Donoho 1995; needs PyWavelets).
    """
    gen = as_rng(rng)
    tiles = tile_slices(z.shape, tile)
    stats, gain = gain_replicates(z, tiles, reference, rng=gen, n_boot=n_boot)
    sig_stats, sigma_of = _sigma_stats(z, tiles, stats, method)
    point, reps = replicates(sig_stats, sigma_of, rng=gen, n_boot=n_boot)
    if gain is None:
        return make("gaussian_noise", (point, *interval(reps, n_boot)),
                    f"{_METHOD[method]}; total sigma in the image's gray levels (no reference: "
                    "gain and intrinsic noise unknown)", sigma_image=point)
    func, (k, k_reps) = gain
    ref = float(reference.noise_sigma)
    added = lambda s, g: math.sqrt(max(0.0, (s / g) ** 2 - ref**2)) if g > 0 else math.nan  # noqa
    n = min(len(reps), len(k_reps))
    boot = np.array([added(reps[i], k_reps[i]) for i in range(n)])
    return make("gaussian_noise", (added(point, k), *interval(boot, n_boot)),
                f"{_METHOD[method]}; added sigma in reference gray levels (gain from cell "
                "contrast vs reference, intrinsic noise subtracted in quadrature)",
                sigma_image=point, gain=k, sigma_reference=ref)


_METHOD = {"immerkaer": "Immerkær 1996 Laplacian estimator",
           "wavelet": "wavelet MAD of HH1 (Donoho 1995)"}


def _sigma_stats(z, tiles, stats, method):
    if method == "immerkaer":
        return stats[:, :2], immerkaer_sigma
    if method != "wavelet":
        from cellrobust._validation import check_choice

        check_choice("method", method, tuple(_METHOD))
    import pywt

    per = []
    for ys, xs in tiles:
        _, (_, _, hh) = pywt.dwt2(z[ys, xs], "haar")
        per.append([(np.median(np.abs(hh)) / 0.6745) ** 2, 1.0])
    return np.array(per), lambda s: math.sqrt(s[0] / s[1])


def poisson(z: np.ndarray, *, reference=None, rng=None, n_boot: int = N_BOOT,
            window: int = 8,
            tile: int = 64) -> Estimate:
    """Photon count at the 99th percentile (the ``poisson`` artefact's parameter).

    Foi et al. (2008) model ``var(y) = a * mean(y) + b``: ``a`` gray levels per photon. Local
    means and Immerkær variances are taken in ``window x window`` blocks; blocks with saturated
    pixels or above-median structure (gradient of the 2 px-smoothed image) are dropped. ``b``
    is fixed to the reference's intrinsic noise variance (0 without a reference, stated),
    because the smooth background of a phase-contrast frame spans too few gray levels to fit
    ``b`` freely. ``a = sum(var - b) / sum(mean)`` and ``photons = p99(image) / a`` (offset 0,
    as the artefact's default).
    """
    gen = as_rng(rng)
    means, variances, keep = _local_mean_var(z, window)
    b = 0.0 if reference is None else float(reference.noise_sigma) ** 2
    p99 = float(np.percentile(z, 99))
    rows, cols = np.nonzero(keep)
    stats = _window_tile_stats(rows * window, cols * window, means[keep], variances[keep] - b,
                               tile_slices(z.shape, tile))
    photons = lambda s: p99 / (s[0] / s[1]) if s[1] > 0 and s[0] > 0 else math.inf  # noqa
    values = bootstrap(stats, photons, rng=gen, n_boot=n_boot)
    scope = "reference intrinsic noise" if reference is not None else "b = 0 (no reference)"
    return make("poisson", values, f"Foi et al. 2008 Poisson-Gaussian fit var = a*mean + b "
                f"(b from {scope}); photons = p99 / a, image gray levels", p99_gray=p99,
                gray_per_photon=float(p99 / values[0]) if values[0] > 0 else math.nan,
                n_windows=int(keep.sum()))


def _local_mean_var(z, window):
    h, w = (z.shape[0] // window) * window, (z.shape[1] // window) * window
    lap = _laplacian_abs(z)[:h, :w].reshape(h // window, window, w // window, window)
    blocks = z[:h, :w].reshape(h // window, window, w // window, window)
    means = blocks.mean(axis=(1, 3))
    variances = (math.pi / 2) * (lap.mean(axis=(1, 3)) / 6.0) ** 2
    smooth = cv2.GaussianBlur(z.astype(np.float32), (0, 0), 2.0)
    grad = np.hypot(*np.gradient(smooth.astype(np.float64)))[:h, :w]
    structure = grad.reshape(blocks.shape).mean(axis=(1, 3))
    saturated = (blocks >= z.max()).any(axis=(1, 3)) | (blocks <= z.min()).any(axis=(1, 3))
    keep = ~saturated & (structure <= np.median(structure[~saturated]) if (~saturated).any()
                         else ~saturated)
    keep[0, :] = keep[-1, :] = keep[:, 0] = keep[:, -1] = False  # Laplacian border
    return means, variances, keep


def _window_tile_stats(ys, xs, means, excess, tiles):
    stats = np.zeros((len(tiles), 2))
    for t, (sy, sx) in enumerate(tiles):
        inside = (ys >= sy.start) & (ys < sy.stop) & (xs >= sx.start) & (xs < sx.stop)
        stats[t] = excess[inside].sum(), means[inside].sum()
    return stats


def stripes(z: np.ndarray, *, reference=None, rng=None, n_boot: int = N_BOOT,
            band: int = 64) -> Estimate:
    """Sigma (gray levels) of a random offset per row or column (the ``stripes`` artefact).

    Row medians of vertical bands of ``band`` columns (columns: the transpose); differences of
    adjacent rows have variance ``2 sigma^2`` plus the signal's own row-to-row variation,
    measured robustly (MAD) per band. The reference's own level (clean images) is subtracted
    in quadrature; the orientation with the larger estimate is reported.
    """
    gen = as_rng(rng)
    results = {o: _stripe_stats(z if o == "rows" else z.T, band) for o in ("rows", "columns")}
    orientation = max(results, key=lambda o: results[o].mean())
    floor = 0.0 if reference is None else float(reference.stripe_var.get(orientation, 0.0))
    func = lambda s: math.sqrt(max(0.0, s[0] / s[1] - floor))  # noqa: E731
    stats = np.column_stack([results[orientation], np.ones(len(results[orientation]))])
    return make("stripes", bootstrap(stats, func, rng=gen, n_boot=n_boot),
                f"MAD of adjacent-line median differences per {band}-px band, "
                f"{orientation}; image gray levels"
                + ("" if reference is None else ", reference level subtracted"),
                orientation=orientation)


def _stripe_stats(z, band):
    """Per band: robust variance of one line's offset, ``(1.4826 MAD(diff))^2 / 2`` (n_bands,)."""
    width = int(min(band, z.shape[1]))
    out = []
    for c in range(0, z.shape[1] - width + 1, width):
        d = np.diff(np.median(z[:, c:c + width], axis=1))
        out.append((1.4826 * np.median(np.abs(d - np.median(d)))) ** 2 / 2.0)
    return np.array(out)


def hot_pixels(z: np.ndarray, *, reference=None, rng=None, n_boot: int = N_BOOT,
               tile: int = 64) -> Estimate:
    """Percentage of isolated pixels at the image maximum (hot) or minimum (dead).

    A pixel counts when it equals the image's extreme and the median of its 8 neighbours is
    more than a quarter of the image's range away (isolated impulse; saturated highlights come
    in clusters). The reference images' rate is subtracted.
    """
    gen = as_rng(rng)
    hits = impulse_map(z)
    tiles = tile_slices(z.shape, tile)
    stats = np.hstack([tile_sums(hits, tiles), tile_sums(np.ones(z.shape), tiles)])
    floor = 0.0 if reference is None else float(reference.hot_rate)
    func = lambda s: max(0.0, 100.0 * s[0] / s[1] - floor)  # noqa: E731
    return make("hot_pixels", bootstrap(stats, func, rng=gen, n_boot=n_boot),
                "isolated extremes (value at image max/min, 8-neighbour median > range/4 "
                "away); % of pixels" + ("" if reference is None else ", reference rate "
                                        "subtracted"))


def impulse_map(z: np.ndarray) -> np.ndarray:
    """1.0 where a pixel is an isolated impulse at the image's max or min (H, W)."""
    from scipy.ndimage import median_filter

    ring = np.ones((3, 3), bool)
    ring[1, 1] = False
    med = median_filter(z, footprint=ring, mode="reflect")
    lo, hi = float(z.min()), float(z.max())
    gap = 0.25 * (hi - lo)
    return (((z >= hi) & (hi - med > gap)) | ((z <= lo) & (med - lo > gap))).astype(float)
