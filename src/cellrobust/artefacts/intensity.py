"""Smooth intensity artefacts: vignetting, bias field, contrast loss, gamma.

- ``vignetting``: radial fall-off ``f(r) = 1 - g * (r / r_max)^2`` multiplying the image,
  centred at a random point of the central half of the image (a patch cut from anywhere in a
  frame); ``r_max`` is the distance to the farthest corner, so that corner loses ``g`` (%) of
  its brightness. Quadratic approximation of the cos^4 law (Goldman, IEEE TPAMI 32:2276, 2010).
- ``bias_field``: a random smooth multiplicative field ``f = 1 + g * p / max|p|`` with ``p`` a
  random cubic polynomial in normalised coordinates (zero mean), so the brightness varies by
  up to +/- ``g`` % (the polynomial bias-field model of N4/MRI correction, Tustison et al.,
  IEEE TMI 29:1310, 2010; shading in widefield microscopy, Peng et al. Nat. Commun. 8:14836).
- ``contrast``: ``y = m + c (x - m)`` about the image mean ``m``, then - for integer input -
  quantised back to integer gray levels, as a camera with lower signal would record it
  (``c`` = fraction of the contrast kept; 1 = identity).
- ``gamma``: ``y = W (x / W)^gamma`` with ``W`` the full-scale value (dtype maximum for integer
  input, image maximum for float input); gamma > 1 darkens the mid-tones.
"""

from __future__ import annotations

import cv2
import numpy as np

from cellrobust.artefacts._util import reference_white
from cellrobust.artefacts.registry import Artefact, register


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32)


def _vignetting(images, value, rng, *, labels=None, dtype=None):
    n, h, w = images.shape
    centres = (0.25 + 0.5 * rng.random((n, 2))) * np.array([h - 1, w - 1])
    rows, cols = _coords(h, w)
    out = np.empty_like(images)
    gain = np.float32(value / 100.0)
    for i, (cy, cx) in enumerate(centres):
        r_max2 = max((cy - a) ** 2 + (cx - b) ** 2 for a in (0, h - 1) for b in (0, w - 1))
        r2 = (rows[:, None] - np.float32(cy)) ** 2 + (cols[None, :] - np.float32(cx)) ** 2
        out[i] = images[i] * (1 - gain * r2 / np.float32(r_max2))
    return out, [{"centre_yx": [round(float(a), 3), round(float(b), 3)]} for a, b in centres]


def _polynomial_fields(rng, n: int, h: int, w: int, degree: int = 3) -> tuple:
    """Zero-mean random polynomial fields scaled to max |p| = 1, shape (N, H, W)."""
    y = np.linspace(-1, 1, h, dtype=np.float32)
    x = np.linspace(-1, 1, w, dtype=np.float32)
    powers = [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i) if i + j > 0]
    coef = rng.standard_normal((n, len(powers))).astype(np.float32)
    ypow = np.stack([y**i for i, _ in powers])  # (T, H)
    xpow = np.stack([x**j for _, j in powers])  # (T, W)
    ypow_t = np.ascontiguousarray(ypow.T)  # (H, T)
    fields = np.stack([cv2.gemm(ypow_t * c, xpow, 1.0, None, 0.0) for c in coef])  # (N, H, W)
    fields -= fields.mean(axis=(1, 2), keepdims=True)
    fields /= np.abs(fields).max(axis=(1, 2), keepdims=True) + np.float32(1e-12)
    return fields, coef


def _bias_field(images, value, rng, *, labels=None, dtype=None, degree=3):
    n, h, w = images.shape
    fields, coef = _polynomial_fields(rng, n, h, w, int(degree))
    out = images * (1 + np.float32(value / 100.0) * fields)
    return out, [{"coefficients": np.round(c.astype(np.float64), 5).tolist()} for c in coef]


def _contrast(images, value, rng, *, labels=None, dtype=None, quantise=True):
    mean = images.mean(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)
    out = mean + np.float32(value) * (images - mean)
    is_int = dtype is not None and np.issubdtype(np.dtype(dtype), np.integer)
    if quantise and is_int:
        np.rint(out, out=out)
    return out, [{"mean_gray": float(m)} for m in mean.ravel()]


def _gamma(images, value, rng, *, labels=None, dtype=None):
    white = reference_white(images, dtype if dtype is not None else images.dtype)
    white = np.where(white > 0, white, 1).astype(np.float32)[:, None, None]
    out = white * np.power(np.clip(images / white, 0, None), np.float32(value))
    return out.astype(np.float32, copy=False), [{"white": float(v)} for v in white.ravel()]


VIGNETTING = register(Artefact(
    name="vignetting", kind="intensity", parameter="gain", unit="% loss at the far corner",
    grid=(0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0),
    ladder=(0.0, 20.0, 40.0, 60.0, 75.0, 90.0), identity=0.0, limits=(0.0, 100.0),
    reference="off-axis fall-off (cos^4 law, quadratic approximation): Goldman, IEEE TPAMI "
              "32(12):2276 (2010)",
    description="radial brightness fall-off around a random centre; the far corner loses "
                "gain %",
    kernel=_vignetting,
))

BIAS_FIELD = register(Artefact(
    name="bias_field", kind="intensity", parameter="gain", unit="% peak deviation",
    grid=(0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0),
    ladder=(0.0, 15.0, 30.0, 45.0, 60.0, 80.0), identity=0.0, limits=(0.0, 100.0),
    reference="polynomial bias-field model: Tustison et al., IEEE TMI 29(6):1310 (2010); "
              "microscopy shading: Peng et al., Nat. Commun. 8:14836 (2017)",
    description="random smooth cubic-polynomial gain field, brightness varies by up to "
                "+/- gain %",
    kernel=_bias_field,
))

CONTRAST = register(Artefact(
    name="contrast", kind="intensity", parameter="factor", unit="fraction of contrast kept",
    grid=(1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.03),
    ladder=(1.0, 0.74, 0.57, 0.45, 0.35, 0.28), identity=1.0, limits=(0.0, 1.0),
    reference="contrast reduction about the mean with re-quantisation (low signal / "
              "under-exposure); Hendrycks & Dietterich, ICLR 2019 ('contrast')",
    description="contrast scaled about the image mean, re-quantised to integer gray levels",
    kernel=_contrast,
))

GAMMA = register(Artefact(
    name="gamma", kind="intensity", parameter="gamma", unit="exponent",
    grid=(1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0),
    ladder=(1.0, 2.8, 4.8, 5.4, 6.0, 6.3), identity=1.0, limits=(0.05, 20.0),
    reference="power-law (gamma) transfer: Gonzalez & Woods, Digital Image Processing, "
              "4th ed., sec. 3.2",
    description="power-law gray-level transfer y = W (x/W)^gamma (non-linear detector "
                "response)",
    kernel=_gamma,
))
