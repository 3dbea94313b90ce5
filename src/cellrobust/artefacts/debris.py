"""Debris: cell-sized dark or bright blobs that are not cells.

Dust, dead-cell fragments and precipitate look like cells to a segmenter; the studies name
such objects as the main source of false positives. Each particle is an ellipse of equivalent
diameter ``d * U(0.6, 1.4)`` (``d`` = median cell diameter from the labels, or
``cell_diameter`` px, default 13 px as in PhC-C2DL-PSC), aspect ratio ``U(0.5, 1)``, random
orientation, a soft-edged core of random polarity (dark or bright, ``polarity``) and a thin
opposite-polarity rim (the phase-contrast halo). Its peak contrast is ``contrast * U(0.6, 1)``
times the image's 1-99 % percentile range. Centres fall on background pixels when labels are
given (anywhere otherwise). Labels are untouched: debris is not a cell.

The parameter is the expected number of particles per 256 x 256 px (scaled with the image
area; the fractional part is rounded stochastically, so small patches still get debris).
Particles of a lower count are a prefix of those of a higher count for the
same generator, so degradation is monotone in the parameter.
"""

from __future__ import annotations

import numpy as np

from cellrobust._validation import check_choice, check_range
from cellrobust.artefacts._util import DEFAULT_CELL_DIAMETER_PX, median_cell_diameter
from cellrobust.artefacts.registry import Artefact, register

AREA = 256 * 256


def render_particle(h, w, cy, cx, diameter, aspect, angle, amplitude) -> tuple:
    """Profile of one particle in its bounding window; returns (rows slice, cols slice, patch)."""
    a = diameter / 2 / np.sqrt(aspect)  # semi-axes with area pi*(d/2)^2
    b = diameter / 2 * np.sqrt(aspect)
    half = int(np.ceil(1.6 * a)) + 1
    r0, r1 = max(int(cy) - half, 0), min(int(cy) + half + 1, h)
    c0, c1 = max(int(cx) - half, 0), min(int(cx) + half + 1, w)
    yy = np.arange(r0, r1, dtype=np.float32)[:, None] - np.float32(cy)
    xx = np.arange(c0, c1, dtype=np.float32)[None, :] - np.float32(cx)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u, v = (xx * cos + yy * sin) / a, (-xx * sin + yy * cos) / b
    rho = np.sqrt(u * u + v * v)
    core = 1 / (1 + np.exp((rho - 1) / np.float32(0.12)))
    rim = np.exp(-(((rho - 1.25) / np.float32(0.2)) ** 2))
    return slice(r0, r1), slice(c0, c1), np.float32(amplitude) * (core - np.float32(0.6) * rim)


def _positions(labels_i, h, w):
    if labels_i is None:
        return None
    bg = np.flatnonzero(labels_i.ravel() == 0)
    return bg if bg.size else None


def _debris(images, value, rng, *, labels=None, dtype=None, cell_diameter=None, contrast=0.6,
            polarity="both"):
    check_choice("polarity", polarity, ("both", "dark", "bright"))
    contrast = check_range("contrast", contrast, low=0)
    if cell_diameter is None:
        diameter = median_cell_diameter(labels, fallback=DEFAULT_CELL_DIAMETER_PX)
    else:
        diameter = check_range("cell_diameter", cell_diameter, low=0, low_inclusive=False)
    n, h, w = images.shape
    expected = value * h * w / AREA
    seeds = rng.integers(0, 2**63, size=n)
    out = images.copy()
    params = []
    for i in range(n):
        sub = np.random.default_rng(seeds[i])
        count = int(np.floor(expected + sub.random()))  # stochastic rounding, monotone
        p1, p99 = np.percentile(images[i], [1, 99])
        bg = _positions(None if labels is None else labels[i], h, w)
        drawn = []
        for _ in range(count):
            u = sub.random(7)
            if bg is None:
                cy, cx = u[0] * (h - 1), u[1] * (w - 1)
            else:
                cy, cx = divmod(int(bg[min(int(u[0] * bg.size), bg.size - 1)]), w)
                cx += u[1] - 0.5
            sign = {"both": 1 if u[5] < 0.5 else -1, "dark": -1, "bright": 1}[polarity]
            d = diameter * (0.6 + 0.8 * u[2])
            amp = sign * contrast * (0.6 + 0.4 * u[4]) * max(p99 - p1, 1e-6)
            rows, cols, patch = render_particle(h, w, cy, cx, d, 0.5 + 0.5 * u[3],
                                                np.pi * u[6], amp)
            out[i, rows, cols] += patch
            drawn.append([round(float(cy), 2), round(float(cx), 2), round(float(d), 2), sign])
        params.append({"particles_yx_d_sign": drawn, "cell_diameter_px": round(diameter, 3)})
    return out, params


DEBRIS = register(Artefact(
    name="debris", kind="intensity", parameter="density", unit="particles per 256x256 px",
    grid=(0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0, 25.0, 30.0, 40.0),
    ladder=(0.0, 4.0, 10.0, 18.0, 28.0, 40.0), identity=0.0, limits=(0.0, 1000.0),
    reference="DeepImageJ PSC U-Net robustness study (debris named as the main source of "
              "false positives); phase-contrast halo: Zernike, Physica 9:686 (1942)",
    description="cell-sized dark/bright elliptical particles with a halo, placed on the "
                "background; labels untouched",
    kernel=_debris,
))
