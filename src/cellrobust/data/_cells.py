"""Cell shapes and their placement for the phase-contrast simulator (internal).

Each cell is a spindle / teardrop in its own frame: ``u`` along the major axis, ``v`` across it,
``t = u / a`` in [-1, 1]. Its half-width is ``w(t) = b (1 - t^2)^p (1 + s t)``: ``p = 0.5`` is an
ellipse, ``p = 1`` a spindle with pointed ends, ``p > 1`` a spindle with concave flanks and long
thin tips; ``s`` makes one end blunt (teardrop). The label is ``|v| < w(t)``; brightness is
highest on the axis near the blunt end and falls towards the edge (a soft edge once the
point-spread function blurs it).

Cells are drawn in batches: the parameters of many candidates at once, their masks rasterised
together in fixed-size patches (numpy on (N, S, S) arrays, never pixel by pixel), then accepted
one by one (a pixel belongs to the first cell drawn on it; a free cell must keep a one-pixel gap,
a touching cell may meet others). Finally every label is reduced to its largest 8-connected piece
so that each label is exactly one connected object.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.measure import label as label_regions
from scipy.special import beta as beta_fn

#: Patch sizes (px) cells are rasterised in, smallest first.
PATCH_SIZES = (12, 16, 20, 24, 28, 32, 36, 40, 48, 56, 64, 80, 96)
_MAX_REACH = PATCH_SIZES[-1] // 2 - 2


def shape_from_area(area, elongation, p):
    """Half-length ``a`` and half-width ``b`` (px) of cells of ``area`` px and length/width ratio.

    The area of ``|v| < b (1-t^2)^p (1+st)`` is ``2 a b B(1/2, p+1)`` (the ``s`` term integrates
    to zero); ``elongation`` is the ratio of the length ``2a`` to the width ``2b`` at the centre.
    Works element-wise on arrays. (The rasteriser's ``x ** p`` is a blend of half-integer
    powers, exact at p = 0.5, 1, 1.5, 2, so areas match this formula to a few per cent.)
    """
    ab = np.asarray(area) / (2.0 * beta_fn(0.5, np.asarray(p) + 1.0))
    a = np.sqrt(ab * elongation)
    return a, a / elongation


def draw_params(rng: np.random.Generator, cfg, n: int, *, round_: bool = False) -> dict:
    """Parameters of ``n`` cells (dict of 1-D arrays) drawn from the configured distributions.

    ``round_`` draws rounded, brighter, smaller daughter cells of a division.
    """
    area = cfg.cell_area_px * np.exp(rng.normal(0.0, cfg.cell_area_spread, n))
    if round_:
        area *= 0.65
        elongation, p, s = rng.uniform(1.1, 1.5, n), np.full(n, 0.5), np.zeros(n)
    else:
        spread = np.exp(rng.normal(0.0, cfg.elongation_spread, n))
        elongation = 1.0 + (cfg.elongation - 1.0) * spread
        p, s = rng.uniform(*cfg.taper_range, n), rng.uniform(-cfg.asymmetry, cfg.asymmetry, n)
        rounded = rng.random(n) < cfg.rounded_fraction  # rounded-up, not dividing
        elongation = np.where(rounded, rng.uniform(1.05, 1.6, n), elongation)
        p = np.where(rounded, 0.5, p)
    area = np.clip(area, *cfg.cell_area_limits_px)
    a, b = shape_from_area(area, np.minimum(elongation, 8.0), p)
    a, b = np.minimum(a, _MAX_REACH), np.minimum(b, _MAX_REACH / 2)
    contrast = cfg.cell_contrast * np.exp(rng.normal(0.0, cfg.contrast_spread, n))
    has_tail = (rng.random(n) < cfg.protrusion_fraction) & (not round_)
    tail = np.where(has_tail, a * rng.uniform(0.4, 1.4, n), 0.0)
    has_sheet = (rng.random(n) < cfg.sheet_fraction) & (not round_)
    sheet = np.where(has_sheet, cfg.sheet_contrast * rng.uniform(0.5, 1.5, n), 0.0)
    return {"y": np.zeros(n), "x": np.zeros(n), "angle": rng.uniform(0, np.pi, n), "a": a, "b": b,
            "p": p, "s": s, "contrast": contrast * (1.25 if round_ else 1.0), "tail": tail,
            "sheet": sheet, **_sheet_offsets(rng, a)}


def _sheet_offsets(rng: np.random.Generator, a: np.ndarray) -> dict:
    """Vertices of each cell's faint cytoplasm sheet relative to its centre: a random pentagon
    1.0-2.2 half-lengths in radius, shifted by ~0.3 half-lengths (arrays of shape (n, 5))."""
    n = len(a)
    angle = np.sort(rng.uniform(0, 2 * np.pi, (n, 5)), axis=1)
    radius = a[:, None] * rng.uniform(1.0, 2.2, (n, 5))
    shift = a[:, None, None] * rng.normal(0, 0.3, (n, 1, 2))
    return {"sheet_dy": radius * np.sin(angle) + shift[..., 0],
            "sheet_dx": radius * np.cos(angle) + shift[..., 1]}


def _power(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``x ** p`` for ``x`` in [0, 1] and per-cell ``p`` in [0.5, 2], without a transcendental
    per pixel: linear blend of ``x^(k/2)``, k = 1..4, between the two nearest half-integers."""
    r = np.sqrt(x)
    terms = (r, x, x * r, x * x)
    k = np.clip((p - 0.5) * 2.0, 0.0, 2.999)  # position between 0.5 (k=0) and 2.0 (k=3)
    low = np.floor(k)
    frac = k - low
    out = np.zeros_like(x)
    for j, term in enumerate(terms):
        weight = (low == j) * (1.0 - frac) + (low == j - 1) * frac
        out += weight.astype(np.float32) * term
    return out


def _rasterise_group(c: dict, idx: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """Patch origins, masks and body brightness of cells ``idx`` in ``size`` x ``size`` patches."""
    half = size // 2
    oy = np.floor(c["y"][idx]).astype(int) - half
    ox = np.floor(c["x"][idx]).astype(int) - half
    grid = np.arange(size, dtype=np.float32)

    def col(key: str, values: np.ndarray | None = None) -> np.ndarray:
        return (c[key][idx] if values is None else values).astype(np.float32)[:, None, None]

    dy = grid[None, :, None] + col("y", oy - c["y"][idx])
    dx = grid[None, None, :] + col("x", ox - c["x"][idx])
    cos, sin = col("a", np.cos(c["angle"][idx])), col("a", np.sin(c["angle"][idx]))
    u = dx * cos + dy * sin
    v = np.abs(dy * cos - dx * sin)
    t = u * (1.0 / col("a"))
    inside_t = np.maximum(1.0 - t * t, 0.0)
    st = col("s") * t
    width = col("b") * _power(inside_t, col("p")) * (1.0 + st)
    mask = v < width
    depth = np.maximum(1.0 - v / np.maximum(width, 1e-3), 0.0)
    # brightest in a "head" towards the blunt end (t0 = s / 2), dimmer towards the tapered tail
    head = t - col("s") * 0.5
    along = 1.0 / (1.0 + 3.0 * head * head)
    body = (col("contrast") * mask) * (0.04 + depth * (0.5 + 0.5 * depth)) * (0.2 + 0.95 * along)
    return oy, ox, mask, body.astype(np.float32, copy=False)


def rasterise(c: dict) -> list[tuple]:
    """Rasterise every cell of ``c``; returns, per cell in order, (oy, ox, mask, body, area)
    with the patch origin (oy, ox) in frame pixels and the mask's area in pixels."""
    n = len(c["a"])
    # A patch of size S spans floor(y) - S/2 .. floor(y) + S/2 - 1: it holds |dy| <= reach if
    # reach <= S/2 - 2.
    # No point of a cell is farther than max(a, b (1 + |s|)) from its centre (as p >= 0.5).
    reach = np.maximum(c["a"], c["b"] * (1.0 + np.abs(c["s"])))
    group = np.searchsorted(np.array(PATCH_SIZES) // 2 - 2, np.minimum(reach, _MAX_REACH))
    out: list[tuple | None] = [None] * n
    for g, size in enumerate(PATCH_SIZES):
        idx = np.flatnonzero(group == g)
        if idx.size:
            oy, ox, mask, body = _rasterise_group(c, idx, size)
            area = mask.sum(axis=(1, 2)).tolist()
            oy, ox = oy.tolist(), ox.tolist()
            for k, i in enumerate(idx.tolist()):
                out[i] = (oy[k], ox[k], mask[k], body[k], area[k])
    return out  # type: ignore[return-value]


def _grow1(mask: np.ndarray) -> np.ndarray:
    """8-neighbour dilation by one pixel (slicing, no scipy call)."""
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    grown = out.copy()
    grown[:, 1:] |= out[:, :-1]
    grown[:, :-1] |= out[:, 1:]
    return grown


class Canvas:
    """Labels and brightness layers of one frame, filled cell by cell.

    Attributes
    ----------
    labels : ndarray of int32, shape (H, W)
        0 = background, 1..n in drawing order (see :meth:`finish`).
    body : ndarray of float32, shape (H, W)
        Cell brightness relative to the background (before blur).
    faint : ndarray of float32, shape (H, W)
        Unlabelled faint protrusions relative to the background (drawn as 1-px lines).
    sheets : ndarray of float32, shape (H, W)
        Unlabelled flattened cytoplasm sheets (polygons, blurred more than the cells).
    cells : list of dict
        Parameters (y, x, angle, a, b) of every drawn cell, in label order.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.labels = np.zeros(shape, np.int32)
        self.body = np.zeros(shape, np.float32)
        self.faint = np.zeros(shape, np.float32)
        self.sheets = np.zeros(shape, np.float32)
        self.cells: list[dict] = []

    def draw(self, raster: tuple, params: dict, *, touch: bool, min_keep: float = 0.6) -> bool:
        """Draw one rasterised cell if it fits; return whether it was drawn.

        Without ``touch`` the cell must keep a one-pixel gap to every cell already drawn. With
        ``touch`` it may meet them: pixels already owned are cut from the new cell, which is
        kept only if at least ``min_keep`` of its area remains.
        """
        oy, ox, mask, body, area = raster
        h, w = self.shape
        size = mask.shape[0]
        if oy >= 0 and ox >= 0 and oy + size <= h and ox + size <= w:
            window = (slice(oy, oy + size), slice(ox, ox + size))
        else:  # cut by the frame edge
            y0, x0, y1, x1 = max(oy, 0), max(ox, 0), min(oy + size, h), min(ox + size, w)
            if y0 >= y1 or x0 >= x1:
                return False
            crop = (slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox))
            window = (slice(y0, y1), slice(x0, x1))
            mask, body = mask[crop], body[crop]
            area = int(np.count_nonzero(mask))
        if area < 8:
            return False
        labels = self.labels[window]
        owned = labels > 0
        if touch:
            mask = mask & ~owned
            if np.count_nonzero(mask) < min_keep * area:
                return False
            body = body * mask
        elif owned.any() and (mask & _grow1(owned)).any():
            return False
        self.cells.append(params)
        labels[mask] = len(self.cells)
        region = self.body[window]
        np.maximum(region, body, out=region)
        if params["tail"] > 0:
            self._protrusion(params)
        if params["sheet"] > 0:
            self._sheet(params)
        return True

    def _sheet(self, cell: dict) -> None:
        """A faint flattened cytoplasm sheet (lamellipodium) around the cell, unlabelled."""
        cv2.fillPoly(self.sheets, [cell["sheet_poly"]], float(cell["sheet"]))

    def _protrusion(self, cell: dict) -> None:
        """A faint thin process leaving the narrow tip, fading in two steps (unlabelled, as in
        the real annotations)."""
        sign = -1.0 if cell["s"] > 0 else 1.0  # the narrow end is opposite the blunt one
        dy, dx = sign * np.sin(cell["angle"]), sign * np.cos(cell["angle"])
        start, end = 0.8 * cell["a"], cell["a"] + cell["tail"]
        mid = (start + end) / 2

        def point(r: float) -> tuple[int, int]:
            return int(cell["x"] + r * dx + 0.5), int(cell["y"] + r * dy + 0.5)

        cv2.line(self.faint, point(start), point(mid), 0.22 * cell["contrast"], 1, cv2.LINE_8)
        cv2.line(self.faint, point(mid), point(end), 0.11 * cell["contrast"], 1, cv2.LINE_8)

    def finish(self, unlabelled: np.ndarray | None = None) -> np.ndarray:
        """Final labels: each label cut to its largest 8-connected piece, renumbered 1..n.

        Cutting (touching cells, the frame edge, thin tips) can leave a stray fragment; it is
        removed from the labels and from the cell brightness, so labels stay exact.
        ``unlabelled`` (bool per drawn cell) leaves those cells visible but out of the labels.
        """
        flat_labels = self.labels.reshape(-1)
        if unlabelled is not None and unlabelled.any():
            drop = np.r_[False, unlabelled]
            flat_labels[drop[flat_labels]] = 0
        where = np.flatnonzero(flat_labels)
        pieces = label_regions(self.labels, background=0, connectivity=2).reshape(-1)[where]
        owner = np.zeros(int(pieces.max(initial=0)) + 1, np.int64)
        owner[pieces] = flat_labels[where]
        if len(owner) - 1 > len(np.unique(owner[1:])):  # some label has more than one piece
            size = np.bincount(pieces, minlength=len(owner))
            order = np.lexsort((size[1:], owner[1:])) + 1  # by owner, then size: largest last
            last = np.r_[owner[order][1:] != owner[order][:-1], True]
            keep = np.zeros(len(owner), bool)
            keep[order[last]] = True
            stray = where[~keep[pieces]]
            flat_labels[stray] = 0
            self.body.reshape(-1)[stray] = 0.0
        present = np.zeros(len(self.cells) + 1, bool)
        present[flat_labels[where]] = True
        present[0] = False
        if present[1:].all():  # already sequential 1..n
            return self.labels
        lut = np.zeros(len(self.cells) + 1, np.int32)
        lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
        return lut[self.labels]


def _positions(rng: np.random.Generator, cfg, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres: clusters (gaussian, ``cluster_radius_px``) mixed with uniform scatter."""
    h, w = cfg.shape
    k = int(rng.integers(cfg.n_clusters[0], cfg.n_clusters[1] + 1))
    centres = rng.uniform((0, 0), (h, w), size=(k, 2))
    clustered = rng.random(n) < cfg.clustering
    pos = rng.uniform((-4, -4), (h + 4, w + 4), size=(n, 2))
    near = centres[rng.integers(k, size=n)] + rng.normal(0.0, cfg.cluster_radius_px, (n, 2))
    pos = np.where(clustered[:, None], near, pos)
    return pos[:, 0], pos[:, 1]


def _touching_positions(rng: np.random.Generator, c: dict, partners: list[dict]) -> None:
    """Place cells ``c`` against their ``partners`` (in place): mostly tip to tip (chains),
    sometimes side by side."""
    n = len(partners)
    pa = {k: np.array([p[k] for p in partners]) for k in ("y", "x", "angle", "a", "b")}
    tip = rng.random(n) < 0.7
    flip = np.where(rng.random(n) < 0.5, np.pi, 0.0)
    phi = np.where(tip, pa["angle"] + rng.normal(0.0, 0.45, n), pa["angle"] + np.pi / 2) + flip
    dist = np.where(tip, (pa["a"] + c["a"]) * rng.uniform(0.8, 0.97, n),
                    (pa["b"] + c["b"]) * rng.uniform(0.9, 1.1, n))
    c["y"], c["x"] = pa["y"] + dist * np.sin(phi), pa["x"] + dist * np.cos(phi)
    c["angle"] = np.where(tip, phi, pa["angle"]) + rng.normal(0.0, 0.3, n)


def _rows(c: dict) -> list[dict]:
    """Dict of arrays -> list of per-cell dicts of floats (+ ``sheet_poly``, int32 (5, 2) x/y)."""
    keys = [k for k in c if c[k].ndim == 1]
    poly = np.stack([c["x"][:, None] + c["sheet_dx"], c["y"][:, None] + c["sheet_dy"]], axis=-1)
    poly = np.rint(poly).astype(np.int32)
    rows = [dict(zip(keys, values)) for values in zip(*(c[k].tolist() for k in keys))]
    for row, vertices in zip(rows, poly):
        row["sheet_poly"] = vertices
    return rows


def _draw_all(canvas: Canvas, c: dict, *, touch: bool, limit: int) -> int:
    drawn = 0
    h, w = canvas.shape
    for raster, params in zip(rasterise(c), _rows(c)):
        if drawn >= limit:
            break
        y, x = int(params["y"]), int(params["x"])
        if not touch and 0 <= y < h and 0 <= x < w and canvas.labels[y, x]:
            continue  # centre already taken: cannot fit with a gap (cheap early rejection)
        drawn += canvas.draw(raster, params, touch=touch)
    return drawn


def _doublets(canvas: Canvas, rng: np.random.Generator, cfg, n_pairs: int) -> int:
    """Pairs of rounded daughter cells side by side (divisions); returns cells drawn."""
    if n_pairs == 0:
        return 0
    first = draw_params(rng, cfg, n_pairs, round_=True)
    second = draw_params(rng, cfg, n_pairs, round_=True)
    first["y"], first["x"] = _positions(rng, cfg, n_pairs)
    second["angle"] = first["angle"]
    dist = first["a"] + second["a"] + rng.uniform(-0.5, 0.8, n_pairs)
    second["y"] = first["y"] + dist * np.sin(first["angle"])
    second["x"] = first["x"] + dist * np.cos(first["angle"])
    drawn = 0
    pairs = zip(rasterise(first), _rows(first), rasterise(second), _rows(second))
    for r1, p1, r2, p2 in pairs:
        if canvas.draw(r1, p1, touch=False):
            drawn += 1 + canvas.draw(r2, p2, touch=True)
    return drawn


def populate(canvas: Canvas, rng: np.random.Generator, cfg) -> dict[str, int]:
    """Fill ``canvas`` with free cells, touching cells and dividing doublets.

    Returns how many cells of each kind were drawn (``cells``, ``touching``, ``doublet_cells``).
    """
    target = int(rng.integers(cfg.n_cells[0], cfg.n_cells[1] + 1))
    n_pairs = min(int(rng.binomial(target, cfg.doublet_fraction / 2.0)), target // 2)
    n_touch = int(rng.binomial(target, cfg.touching_fraction))
    counts = {"doublet_cells": _doublets(canvas, rng, cfg, n_pairs), "touching": 0}
    free_target = max(target - n_touch - counts["doublet_cells"], 0)
    for _ in range(4):  # batches of candidates until enough free cells fit
        missing = free_target - (len(canvas.cells) - counts["doublet_cells"])
        if missing <= 0:
            break
        c = draw_params(rng, cfg, int(missing * 1.3) + 4)
        c["y"], c["x"] = _positions(rng, cfg, len(c["a"]))
        _draw_all(canvas, c, touch=False, limit=missing)
    for _ in range(3):
        missing = target - len(canvas.cells)
        if missing <= 0 or not canvas.cells:
            break
        c = draw_params(rng, cfg, missing + 2)
        partners = [canvas.cells[i] for i in rng.integers(len(canvas.cells), size=missing + 2)]
        _touching_positions(rng, c, partners)
        counts["touching"] += _draw_all(canvas, c, touch=True, limit=missing)
    counts["cells"] = len(canvas.cells)
    return counts
