"""Image formation for the phase-contrast simulator (internal): light, optics, debris, camera.

Fitted on the real PhC-C2DL-PSC training frames (see ``docs/simulator.md``): the background is a
vignetted illumination field ``P (1 - k r^(2q))`` centred below and left of the frame centre
(fitted: k = 0.24, q = 1.12, centre at (0.62 H, 0.45 W), rms residual 4.6 gray levels), with a
spatially correlated fine texture (correlation length ~2 px) and the 8x8 block artefacts of JPEG
compression the real frames carry. Cells appear bright and their surroundings are shaded by a
relief-like phase halo: darker on one side, brighter on the other (measured: about -5 % above and
+5 to +10 % below each cell, within ~5 px).
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
from scipy.special import ndtri

#: Standard-normal quantiles of 65,536 equiprobable bins: a uniform 16-bit draw looked up here is
#: a gaussian sample (truncated at 4.3 sigma), ~5x faster than ``Generator.standard_normal``.
_NORMAL_TABLE = ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)


def normal(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Standard-normal float32 samples via a 16-bit quantile table (see ``_NORMAL_TABLE``)."""
    return _NORMAL_TABLE[rng.integers(0, 65536, size=shape, dtype=np.uint16)]


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter of a float32 frame (OpenCV, reflect border); identity for sigma <= 0."""
    if sigma <= 0:
        return image
    return cv2.GaussianBlur(image, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma),
                            borderType=cv2.BORDER_REFLECT)


def _normalised(field: np.ndarray) -> np.ndarray:
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator, *,
                 step: int = 1) -> np.ndarray:
    """Zero-mean, unit-std gaussian random field with correlation length ``sigma`` px.

    With ``step > 1`` the field is drawn on a ``step`` times coarser grid and resized
    (bilinear): nearly the same statistics for ``sigma >= step``, a fraction of the cost.
    """
    small = (math.ceil(shape[0] / step) + 1, math.ceil(shape[1] / step) + 1)
    field = _normalised(blur(normal(small, rng), sigma / step))
    if step > 1:
        size = (small[1] * step, small[0] * step)
        field = cv2.resize(field, size, interpolation=cv2.INTER_LINEAR)
    return field[: shape[0], : shape[1]]


def illumination(shape: tuple[int, int], rng: np.random.Generator, cfg) -> np.ndarray:
    """Background gray level per pixel: vignetting plus smooth random variation, mean set.

    The field is smooth, so it is computed on an 8x coarser grid and resized (bilinear).
    """
    h, w = shape
    cy = h * (cfg.vignetting_centre[0] + rng.normal(0.0, 0.04))
    cx = w * (cfg.vignetting_centre[1] + rng.normal(0.0, 0.04))
    k = cfg.vignetting * math.exp(rng.normal(0.0, 0.15))
    step = 8
    ys = np.arange(0, h + step, step, dtype=np.float32)
    xs = np.arange(0, w + step, step, dtype=np.float32)
    r2 = ((ys[:, None] - cy) / (h / 2)) ** 2 * 0.6 + ((xs[None, :] - cx) / (w / 2)) ** 2
    coarse = (1.0 - k * r2**1.12).astype(np.float32)
    if cfg.illumination_variation > 0:  # ~60 px correlation length
        variation = _normalised(blur(normal(coarse.shape, rng), 60.0 / step))
        coarse = coarse * (1.0 + cfg.illumination_variation * variation)
    coarse = np.maximum(coarse, 0.15)
    mean = cfg.background_mean * math.exp(rng.normal(0.0, cfg.background_spread))
    coarse *= mean / coarse[: h // step, : w // step].mean()
    field = cv2.resize(coarse, (len(xs) * step, len(ys) * step), interpolation=cv2.INTER_LINEAR)
    return field[step // 2 : step // 2 + h, step // 2 : step // 2 + w]


def glow(body: np.ndarray, sigma: float) -> np.ndarray:
    """Wide gaussian blur of ``body`` computed at 1/4 resolution (cheap; the result is smooth)."""
    h, w = body.shape
    small = cv2.resize(body, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    small = blur(small, sigma / 4.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _spot(canvas: np.ndarray, y: float, x: float, sigma: float, amp: float,
          ring: float = 0.0) -> None:
    """Add a gaussian spot (``ring`` > 0: a ring of that radius) to ``canvas`` in place."""
    reach = int(3 * sigma + ring + 2)
    y0, y1 = max(int(y) - reach, 0), min(int(y) + reach + 1, canvas.shape[0])
    x0, x1 = max(int(x) - reach, 0), min(int(x) + reach + 1, canvas.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - y
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - x
    r = np.sqrt(dy * dy + dx * dx)
    canvas[y0:y1, x0:x1] += amp * np.exp(-0.5 * ((r - ring) / sigma) ** 2)


def debris(shape: tuple[int, int], rng: np.random.Generator, cfg) -> np.ndarray:
    """Unlabelled non-cell objects relative to the background: bright specks (incl. small round
    bright bodies), dark specks and out-of-focus rings."""
    canvas = np.zeros(shape, np.float32)
    h, w = shape
    for _ in range(rng.poisson(cfg.bright_specks)):
        big = rng.random() < 0.3
        sigma = rng.uniform(1.3, 2.2) if big else rng.uniform(0.6, 1.2)
        amp = rng.uniform(0.5, 1.2) if big else rng.uniform(0.15, 0.6)
        _spot(canvas, rng.uniform(0, h), rng.uniform(0, w), sigma, amp)
    for _ in range(rng.poisson(cfg.dark_specks)):
        _spot(canvas, rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.6, 1.3),
              -rng.uniform(0.08, 0.25))
    for _ in range(rng.poisson(cfg.rings)):
        y, x, radius = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4.0, 8.0)
        _spot(canvas, y, x, 1.2, rng.uniform(0.06, 0.14), ring=radius)
        _spot(canvas, y, x, radius * 0.5, -rng.uniform(0.02, 0.06))
    return canvas


def phase_halo(relief: np.ndarray, cfg) -> np.ndarray:
    """Relief shading: minus the directional derivative of the blurred object brightness.

    With ``halo_angle_deg = 90`` (downwards) objects get a dark fringe above and a bright one
    below, like the real frames. ``halo_strength`` is the fringe amplitude, relative to the
    background, next to an object of brightness 1.
    """
    if cfg.halo_strength <= 0:
        return np.zeros_like(relief)
    smooth = blur(relief, cfg.halo_width_px)
    angle = math.radians(cfg.halo_angle_deg)
    scale = cfg.halo_strength * cfg.halo_width_px * math.sqrt(2 * math.pi)
    halo = np.zeros_like(smooth)
    wy, wx = -0.5 * scale * math.sin(angle), -0.5 * scale * math.cos(angle)
    if abs(wy) > 1e-9:  # central differences, zero at the frame border
        halo[1:-1] += wy * (smooth[2:] - smooth[:-2])
    if abs(wx) > 1e-9:
        halo[:, 1:-1] += wx * (smooth[:, 2:] - smooth[:, :-2])
    return halo


@functools.lru_cache(maxsize=8)
def display_curves(gamma: float, white_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Look-up tables between displayed gray levels and raw camera levels.

    The PSC frames were stored through ``display = 255 (raw / white_level) ** gamma`` (fitted on
    the gray levels the real frames use: gamma 1.222, white level 219: the codes it
    produces differ from the codes used in the real frames in 4 of ~150; it leaves every
    3rd-7th code unused and saturates raw >= 219 at 255).

    Returns
    -------
    to_raw : ndarray of float32, shape (1024,)
        Raw level for displayed level ``i / 4`` (quarter gray-level steps).
    to_display : ndarray of uint8, shape (256,)
        Displayed level for each raw 8-bit level.
    """
    display = np.arange(1024, dtype=np.float64) / 4.0
    to_raw = white_level * (display / 255.0) ** (1.0 / gamma)
    raw = np.arange(256, dtype=np.float64)
    to_display = np.clip(np.rint(255.0 * (raw / white_level) ** gamma), 0, 255)
    return to_raw.astype(np.float32), to_display.astype(np.uint8)


def camera(signal: np.ndarray, rng: np.random.Generator, cfg) -> np.ndarray:
    """Camera and storage: displayed gray levels (float) -> stored uint8 image.

    The signal is taken back to raw camera levels, gets shot + read noise (raw levels), is
    quantised to 8 bits, goes through an optional JPEG round trip (the real frames show 8x8
    block artefacts), and is mapped to displayed levels by the stored gamma curve.
    """
    to_raw, to_display = display_curves(cfg.display_gamma, cfg.display_white_level)
    noise_std = np.sqrt(cfg.read_noise**2 + cfg.shot_noise_gain * to_raw).astype(np.float32)
    index = (signal * 4.0).astype(np.int32)  # out-of-range indices are clipped by np.take
    noisy = np.take(to_raw, index, mode="clip")
    noisy += np.take(noise_std, index, mode="clip") * normal(signal.shape, rng)
    image = cv2.convertScaleAbs(np.maximum(noisy, 0.0, out=noisy))  # round, saturate at 255
    if cfg.jpeg_quality is not None:
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(cfg.jpeg_quality)])
        if ok:  # OpenCV always encodes a 2-D uint8 array
            image = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE)
    return cv2.LUT(image, to_display)
