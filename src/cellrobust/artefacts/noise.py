"""Noise artefacts: additive gaussian, speckle, Poisson-Gaussian shot noise, hot pixels.

All work on raw gray levels in float32 and draw their noise image by image (float32 standard
normals: numpy's ziggurat, no float64 detour): from the given generator in sequence - the same
numbers as one draw for the whole stack - or from each image's own stream when ``apply_batch``
gets one per image (:class:`~cellrobust.artefacts._streams.Streams`; then the images run in
threads, :func:`~cellrobust.artefacts._streams.each_image`, with identical results); working
one image at a time keeps the arithmetic in cache on large stacks.

- ``gaussian_noise`` (study): ``y = x + sigma * n``, ``n ~ N(0, 1)``, sigma in gray levels, then
  min-max to [0, 255] (the study's convention; grid 0-200 in 41 steps, training range 0-30).
- ``speckle`` (Neuromatch project, scikit-image's ``random_noise(mode="speckle")``):
  ``y = x + x * n``, ``n ~ N(0, var)``; the parameter is the variance (dimensionless).
- ``poisson``: the image is read as a linear photon scale with ``photons`` expected photons at
  its 99th-percentile intensity (above ``offset``); ``y = offset + (Poisson(s (x - offset)) +
  N(0, read_noise^2)) / s`` with ``s = photons / (p99 - offset)``. Fewer photons = more noise
  (relative noise at p99 is ``1/sqrt(photons)``). Reference: Foi et al., IEEE TIP 17:1737 (2008).
  Integer input (uint8/uint16, integer ``offset``) is sampled exactly by inverting each
  level's tabulated Poisson CDF with one float64 uniform per pixel (``_sampling``; ~3x faster
  than ``Generator.poisson``); float input uses ``Generator.poisson``.
- ``hot_pixels``: salt-and-pepper; a fraction (%) of pixels set to the image's maximum
  (hot) or minimum (dead), half each by default.
"""

from __future__ import annotations

import numpy as np

from cellrobust._validation import check_range
from cellrobust.artefacts._sampling import inverse_table, sample_table
from cellrobust.artefacts._streams import each_image, per_image
from cellrobust.artefacts.registry import Artefact, register

GAUSS_STUDY_GRID = tuple(float(v) for v in np.linspace(0.0, 200.0, 41))


def _gaussian_noise(images, value, rng, *, labels=None, dtype=None):
    out = np.empty_like(images)

    def one(i, gen):  # image by image: in cache
        noise = gen.standard_normal(images.shape[1:], dtype=np.float32)
        noise *= np.float32(value)
        np.add(noise, images[i], out=out[i])

    each_image(rng, images.shape[0], one)
    return out, [{} for _ in range(images.shape[0])]


def _speckle(images, value, rng, *, labels=None, dtype=None):
    out = np.empty_like(images)

    def one(i, gen):
        noise = gen.standard_normal(images.shape[1:], dtype=np.float32)
        noise *= np.float32(np.sqrt(value))
        noise *= images[i]
        np.add(images[i], noise, out=out[i])  # x + x * n

    each_image(rng, images.shape[0], one)
    return out, [{} for _ in range(images.shape[0])]


def percentile_int(levels: np.ndarray, q: float) -> float:
    """numpy's default (linear) percentile of non-negative integer values, via a histogram."""
    counts = np.cumsum(np.bincount(levels.ravel()))
    pos = q / 100 * (counts[-1] - 1)
    lo = int(np.floor(pos))
    v_lo = np.searchsorted(counts, lo, side="right")
    v_hi = np.searchsorted(counts, min(lo + 1, counts[-1] - 1), side="right")
    return float(v_lo + (pos - lo) * (v_hi - v_lo))


def _integer_levels(signal: np.ndarray, dtype, offset: float) -> np.ndarray | None:
    """The signal as exact int levels (N, H, W) when the input is integer, else None."""
    if dtype is None or not np.issubdtype(np.dtype(dtype), np.integer) \
            or not float(offset).is_integer() or signal.max() >= 2**16:
        return None
    return np.rint(signal).astype(np.intp)


def _p99(signal: np.ndarray, levels: np.ndarray | None) -> np.ndarray:
    """Per-image 99th percentile (N,): a histogram for integer levels, else np.percentile."""
    if levels is not None:
        return np.array([percentile_int(lv, 99) for lv in levels], dtype=np.float32)
    return np.percentile(signal.reshape(signal.shape[0], -1), 99, axis=1).astype(np.float32)


def _photon_counts(signal, levels, scale, gen):
    """One image's Poisson counts (float32): table inversion for integer levels (exact, one
    uniform per pixel, ``_sampling``), else numpy's sampler on the float rates."""
    table = None if levels is None else inverse_table(levels, scale)
    if table is None:
        return gen.poisson(signal * scale).astype(np.float32)
    return sample_table(table, levels, gen.random(levels.shape))


def _poisson(images, value, rng, *, labels=None, dtype=None, read_noise=0.0, offset=0.0):
    read_noise = check_range("read_noise", read_noise, low=0, unit="photoelectrons")
    offset = np.float32(check_range("offset", offset, unit="gray levels"))
    signal = np.maximum(images - offset, 0)
    levels = _integer_levels(signal, dtype, offset)
    p99 = _p99(signal, levels)
    p99 = np.where(p99 > 0, p99, 1.0).astype(np.float32)
    scale = np.float32(value) / p99
    gens = per_image(rng, images.shape[0])  # serial: the table sampler holds the GIL often
    counts = np.empty_like(images)
    for i, gen in enumerate(gens):  # all counts first, then read noise (the stream order)
        counts[i] = _photon_counts(signal[i], None if levels is None else levels[i],
                                   scale[i], gen)
    if read_noise > 0:
        for i, gen in enumerate(gens):
            counts[i] += np.float32(read_noise) * gen.standard_normal(images.shape[1:],
                                                                      dtype=np.float32)
    out = counts / scale[:, None, None] + offset
    params = [{"p99_gray": float(p), "gray_per_photon": float(1 / s)}
              for p, s in zip(p99, scale)]
    return out, params


def _hot_pixels(images, value, rng, *, labels=None, dtype=None, hot_fraction=0.5):
    hot_fraction = check_range("hot_fraction", hot_fraction, low=0, high=1)
    n = images.shape[0]
    flat = images.reshape(n, -1)
    hi, lo = flat.max(axis=1), flat.min(axis=1)
    u = np.empty_like(images)

    def draw(i, gen):
        u[i] = gen.random(images.shape[1:], dtype=np.float32)

    each_image(rng, n, draw)
    p = np.float32(value / 100.0)
    hot = u < p * np.float32(hot_fraction)
    dead = (u >= p * np.float32(hot_fraction)) & (u < p)
    out = np.where(hot, hi[:, None, None], images)
    out = np.where(dead, lo[:, None, None], out)
    params = [{"n_hot": int(a), "n_dead": int(b)}
              for a, b in zip(hot.sum(axis=(1, 2)), dead.sum(axis=(1, 2)))]
    return out.astype(np.float32, copy=False), params


GAUSSIAN_NOISE = register(Artefact(
    name="gaussian_noise", kind="intensity", parameter="sigma", unit="gray levels",
    grid=GAUSS_STUDY_GRID, ladder=(0.0, 27.0, 46.0, 63.0, 79.0, 95.0), identity=0.0,
    limits=(0.0, np.inf),
    presets={"study": GAUSS_STUDY_GRID, "training_range": (0.0, 30.0)},
    default_normalise="minmax",
    reference="DeepImageJ PSC U-Net robustness study (gaussian noise experiment)",
    description="zero-mean gaussian noise of sigma gray levels added in float, "
                "then min-max to [0, 255]",
    kernel=_gaussian_noise,
))

SPECKLE = register(Artefact(
    name="speckle", kind="intensity", parameter="variance", unit="(relative)^2",
    grid=(0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0),
    ladder=(0.0, 0.027, 0.046, 0.062, 0.078, 0.094), identity=0.0, limits=(0.0, np.inf),
    reference="Neuromatch Academy robust U-Net project; scikit-image random_noise('speckle')",
    description="multiplicative noise x + x*n, n ~ N(0, variance)",
    kernel=_speckle,
))

POISSON = register(Artefact(
    name="poisson", kind="intensity", parameter="photons", unit="photons at p99",
    grid=(np.inf, 3000.0, 1000.0, 500.0, 300.0, 200.0, 100.0, 50.0, 30.0, 20.0, 10.0, 5.0,
          3.0, 2.0, 1.0),
    ladder=(np.inf, 66.0, 43.0, 33.0, 25.0, 19.0), identity=np.inf,
    limits=(1e-3, np.inf),
    reference="Poisson-Gaussian sensor model: Foi et al., IEEE Trans. Image Process. "
              "17(10):1737 (2008)",
    description="shot noise with the given photon count at the 99th-percentile intensity, "
                "plus optional gaussian read noise",
    kernel=_poisson,
))

HOT_PIXELS = register(Artefact(
    name="hot_pixels", kind="intensity", parameter="fraction", unit="% of pixels",
    grid=(0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 25.0, 30.0),
    ladder=(0.0, 7.0, 12.0, 17.0, 22.0, 28.0), identity=0.0, limits=(0.0, 100.0),
    reference="impulse (salt-and-pepper) noise of defective sensor pixels; "
              "Gonzalez & Woods, Digital Image Processing, 4th ed., sec. 5.2",
    description="a fraction of pixels set to the image maximum (hot) or minimum (dead)",
    kernel=_hot_pixels,
))
