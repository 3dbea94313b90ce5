"""Image operations behind the segmenter strategies (:mod:`cellrobust.segmenters.strategies`).

Pure functions on one gray-level image (H, W) or a stack (N, H, W); float32 out. Each states
its formula, units and reference; the wrapper chains them.

References
----------
Sternberg S. R. (1983) Biomedical image processing. IEEE Computer 16(1):22-34 (rolling-ball
background by grey-level opening).
Serra J. (1982) Image Analysis and Mathematical Morphology. Academic Press (open-close
filters).
Smith K. et al. (2015) CIDRE: an illumination-correction method for optical microscopy.
Nature Methods 12:404-406 (the additive/multiplicative shading model I = S * true + D).
Buades A., Coll B., Morel J.-M. (2005) A non-local algorithm for image denoising. CVPR.
Immerkær J. (1996) Fast noise variance estimation. CVIU 64:300-302.
Weigert M. et al. (2018) Content-aware image restoration (CSBDeep), Nature Methods 15:1090
(percentile normalisation, pmin = 1, pmax = 99.8).
"""

from __future__ import annotations

import math

import numpy as np

from cellrobust._validation import InputError

__all__ = ["AUTO_LIMITS", "DIHEDRAL", "GRAY_MAX", "background", "cell_diameter_px",
           "denoise_nlm", "dihedral", "flatfield", "minmax_normalise", "percentile_normalise",
           "resize", "scaled_shape", "undo_dihedral"]

#: Gray level the normalisations map the upper reference to (8-bit-trained models: 255).
GRAY_MAX = 255.0
#: The 8 dihedral transforms as (quarter turns, mirror).
DIHEDRAL = tuple((k, f) for f in (False, True) for k in range(4))
#: Range the automatic rescale factor is clipped to (outside it the estimate is not trusted).
AUTO_LIMITS = (0.25, 4.0)
#: Smallest side (px) a rescaled image may have.
MIN_SIDE = 4


def percentile_normalise(image: np.ndarray, p_low: float = 1.0, p_high: float = 99.8, *,
                         to: tuple[float, float] = (0.0, GRAY_MAX)) -> np.ndarray:
    """Map the image's ``p_low`` / ``p_high`` percentiles to ``to`` (default 0 / 255), unclipped.

    ``y = t0 + (t1 - t0) * (x - P_low) / (P_high - P_low)`` per image (CSBDeep/StarDist
    ``normalize`` with ``clip=False``: values outside the percentiles keep their distance, so a
    bright cell above ``P_high`` stays above ``t1``). With ``to`` set to the training images'
    own percentiles, a contrast-stretched or offset image is mapped back to the gray-level
    range the model was trained on. A constant image maps to ``t0``.

    Parameters
    ----------
    image : ndarray (H, W), gray levels
    p_low, p_high : float, percent, 0 <= p_low < p_high <= 100
    to : (float, float), gray levels, t0 < t1

    Returns
    -------
    ndarray of float32 (H, W)
    """
    x = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(x, [p_low, p_high])
    return _affine(x, lo, hi, to)


def minmax_normalise(image: np.ndarray, *, to: tuple[float, float] = (0.0, GRAY_MAX)
                     ) -> np.ndarray:
    """Map the image's minimum / maximum to ``to`` (float32; constant -> ``to[0]``)."""
    x = np.asarray(image, dtype=np.float64)
    return _affine(x, float(x.min()), float(x.max()), to)


def _affine(x: np.ndarray, lo: float, hi: float, to: tuple[float, float]) -> np.ndarray:
    if not hi > lo:
        return np.full(x.shape, to[0], dtype=np.float32)
    return (to[0] + (x - lo) * ((to[1] - to[0]) / (hi - lo))).astype(np.float32)


def _disc(radius: int) -> np.ndarray:
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def background(image: np.ndarray, radius: float) -> np.ndarray:
    """Smooth background with the cells suppressed: grey-level open-close, then a gaussian.

    ``B = G_{r/2} * close(open(x, D_r), D_r)`` with ``D_r`` a flat disc of radius ``r``: the
    opening removes bright structures narrower than the disc (phase-contrast cells), the
    closing removes dark ones (their halos), and the gaussian of sigma ``r/2`` px removes the
    disc's facets (Sternberg 1983's rolling ball with a flat ball; Serra 1982). The image is
    first padded by ``2 r`` with an odd (point) reflection, ``x(-i) = 2 x(0) - x(i)``, so a
    background sloping at the edge stays a slope (an even reflection would make it a valley
    or ridge, which the closing/opening would fill or cut). On a smooth
    illumination of curvature radius ``s`` (a gaussian blob of sigma ``s``) the peak is
    under-estimated by about ``r^2 / (2 s^2)`` of its amplitude (measured 2.1 % for ``r`` =
    10 px and the study's blob, ``s`` = 51 px on 256 px crops). ``r`` must exceed the
    cell radius (clumps wider than the disc survive the opening).

    Parameters
    ----------
    image : ndarray (H, W), gray levels
    radius : float, px

    Returns
    -------
    ndarray of float32 (H, W), gray levels
    """
    import cv2

    r = max(1, int(round(radius)))
    pad = 2 * r  # odd reflection continues a slope: the edge is no valley/ridge to the filter
    x = np.pad(np.asarray(image, dtype=np.float32), pad, mode="reflect", reflect_type="odd")
    disc = _disc(r)
    opened = cv2.morphologyEx(x, cv2.MORPH_OPEN, disc)
    closed = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, disc)
    smooth = cv2.GaussianBlur(closed, (0, 0), r / 2.0, borderType=cv2.BORDER_REFLECT_101)
    return np.ascontiguousarray(smooth[pad:-pad, pad:-pad])


def flatfield(image: np.ndarray, radius: float, *, mode: str = "subtract") -> np.ndarray:
    """Illumination correction against :func:`background`, renormalised to the mean level.

    ``subtract`` (additive shading, the model of cellrobust's ``illumination`` artefact and of
    CIDRE's dark term): ``y = x - B + mean(B)``. ``divide`` (multiplicative shading, a flat
    field): ``y = x * mean(B) / max(B, eps)`` with ``eps = 1e-3 * max(|mean(B)|, 1)``. Either
    way a flat image is returned unchanged and the image mean is kept up to the cells'
    contribution.

    Returns
    -------
    ndarray of float32 (H, W), gray levels
    """
    x = np.asarray(image, dtype=np.float32)
    bg = background(x, radius)
    level = float(bg.mean(dtype=np.float64))
    if mode == "subtract":
        return (x - bg + np.float32(level)).astype(np.float32)
    eps = 1e-3 * max(abs(level), 1.0)
    return (x * np.float32(level) / np.maximum(bg, np.float32(eps))).astype(np.float32)


def denoise_nlm(image: np.ndarray, h_factor: float = 0.8) -> np.ndarray:
    """Non-local means (Buades et al. 2005; scikit-image, fast mode, 5 x 5 patches within
    6 px) with ``h = h_factor * sigma`` and ``sigma`` the Immerkær (1996) estimate
    (:func:`cellrobust.segmenters.baselines.estimate_noise_sigma`), in float (no 8-bit
    rounding). A noise-free image (sigma = 0) is returned unchanged.

    Returns
    -------
    ndarray of float32 (H, W), gray levels
    """
    from skimage.restoration import denoise_nl_means

    from cellrobust.segmenters.baselines import estimate_noise_sigma

    x = np.asarray(image, dtype=np.float64)
    sigma = estimate_noise_sigma(x)
    if not sigma > 0:
        return x.astype(np.float32)
    out = denoise_nl_means(x, h=h_factor * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                           fast_mode=True)
    return np.asarray(out, dtype=np.float32)


def resize(stack: np.ndarray, shape: tuple[int, int], *, probabilities: bool = False
           ) -> np.ndarray:
    """Resize every image of an (N, H, W) stack to ``shape`` with OpenCV.

    Images: area averaging when shrinking (anti-aliased), bicubic when enlarging.
    Probabilities (``probabilities=True``): bilinear, clipped to [0, 1].
    """
    import cv2

    h, w = int(shape[0]), int(shape[1])
    if stack.shape[1:] == (h, w):
        return np.asarray(stack, dtype=np.float32)
    shrink = h * w < stack.shape[1] * stack.shape[2]
    interp = cv2.INTER_LINEAR if probabilities else (cv2.INTER_AREA if shrink
                                                     else cv2.INTER_CUBIC)
    out = np.stack([cv2.resize(np.ascontiguousarray(im, dtype=np.float32), (w, h),
                               interpolation=interp) for im in stack])
    return np.clip(out, 0.0, 1.0) if probabilities else out


def scaled_shape(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    """``round(side * factor)`` per side; InputError when a side would fall below 4 px."""
    h, w = (int(round(s * factor)) for s in shape)
    if min(h, w) < MIN_SIDE:
        raise InputError(f"scales/rescale: factor {factor:g} shrinks a {shape[0]} x {shape[1]} "
                         f"image to {h} x {w} px; expected sides >= {MIN_SIDE} px; use a "
                         "larger factor")
    return h, w


def dihedral(stack: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Rotate an (N, H, W) stack by ``k`` quarter turns, then mirror the columns."""
    out = np.rot90(stack, k, axes=(1, 2)) if k else stack
    return np.ascontiguousarray(out[:, :, ::-1] if flip else out)


def undo_dihedral(stack: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Inverse of :func:`dihedral`."""
    out = stack[:, :, ::-1] if flip else stack
    return np.ascontiguousarray(np.rot90(out, -k, axes=(1, 2)) if k else out)


def cell_diameter_px(image: np.ndarray) -> float:
    """Typical cell diameter (px) of one image, NaN when no blob scale is found.

    The blob scale ``s`` maximising the noise-corrected scale-normalised LoG energy
    (:func:`cellrobust.diagnose.scale.cell_size`, Lindeberg 1998) is a disc's ``r / sqrt 2``,
    so the diameter is ``2 sqrt 2 * s``.
    """
    from cellrobust.diagnose.scale import cell_size

    x = np.asarray(image, dtype=np.float64)
    if min(x.shape) < 32:
        raise InputError(f"rescale=auto: a {x.shape[0]} x {x.shape[1]} image is too small to "
                         "measure its cells (expected >= 32 px a side); give rescale=F")
    estimate = cell_size(x, n_boot=0)
    scale = float(estimate.detail.get("peak_scale_px", math.nan))
    return 2.0 * math.sqrt(2.0) * scale if math.isfinite(scale) else math.nan
