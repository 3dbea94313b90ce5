"""Geometric artefacts: apparent cell size (zoom), at patch and frame level.

Frame level - the study's cell-size protocol (:func:`zoom_crops`): from a full frame, cut a
square window of side ``round(size / zoom)`` px at a uniformly random position and resize it
to ``size x size`` with bicubic interpolation (labels: nearest neighbour, instance ids
preserved). ``zoom > 1`` makes cells look larger, ``zoom < 1`` smaller. The number of patches
per frame scales with the area ratio ``H * W / window^2``, rounded and clipped to [6, 80]
(study grid: 0.5-2.0 step 0.1, then 2.5-5.0 step 0.5: 22 values).

Patch level - the registered ``zoom`` artefact: the patch is scaled about its centre by
``zoom`` (bicubic; labels nearest) with the output keeping the input's shape; zooming out pads
with the image minimum (labels with background 0). Zoom 1 is the identity.

The registered ``cell_size`` artefact is the frame-level protocol: in a sweep that has the
evaluation frames (``cellrobust study``, ``cellrobust sweep``) every severity cuts its own
windows from the frames with :func:`zoom_crops`, so zoomed-out patches show real neighbouring
cells instead of padding and larger magnifications are measured on more patches. Applied to a
single image (``artefacts.apply``, the gallery, training) it falls back to ``zoom``'s scaling
about the centre.
"""

from __future__ import annotations

import cv2
import numpy as np

from cellrobust._rng import as_rng
from cellrobust._validation import check_ndim, check_range
from cellrobust.artefacts.normalise import normalise as _normalise
from cellrobust.artefacts.registry import Artefact, register
from cellrobust.data.sample import Sample

STUDY_GRID = tuple(round(v, 2) for v in np.arange(0.5, 2.01, 0.1)) + (
    2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
MIN_PATCHES, MAX_PATCHES = 6, 80


def _warp_about_centre(image, labels, zoom, border):
    h, w = image.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    mat = np.array([[zoom, 0, (1 - zoom) * cx], [0, zoom, (1 - zoom) * cy]], dtype=np.float64)
    out = cv2.warpAffine(image, mat, (w, h), flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=float(border))
    lab = None if labels is None else _nearest_about_centre(labels, zoom)
    return out, lab


def _nearest_about_centre(labels: np.ndarray, zoom: float) -> np.ndarray:
    """Labels (H, W) scaled by ``zoom`` about the centre, nearest neighbour, ids preserved;
    output pixels whose source lies outside the image are background (0).

    A scale has no rotation, so each axis maps on its own: output pixel ``y`` reads source
    row ``floor((y - c) / zoom + c + 1/2)`` with ``c = (n - 1) / 2``. Computed here in float64
    rather than by OpenCV's nearest warp, whose rounding of exact ties changed with the number
    of cores the process could use (25 of 393,216 label pixels of one zoom-0.7 cell on PSC
    patches differed between 1 and 2 cores), so a sweep's table did not depend on its workers.
    """
    out = np.zeros(labels.shape, dtype=np.int32)
    rows, cols = (_nearest_source(n, zoom) for n in labels.shape)
    keep_r, keep_c = rows >= 0, cols >= 0
    out[np.ix_(keep_r, keep_c)] = labels[np.ix_(rows[keep_r], cols[keep_c])]
    return out


def _nearest_source(n: int, zoom: float) -> np.ndarray:
    """Source index of each of ``n`` output pixels of a scale about the centre (-1: outside)."""
    c = (n - 1) / 2.0
    src = np.floor((np.arange(n, dtype=np.float64) - c) / float(zoom) + c + 0.5).astype(np.int64)
    return np.where((src >= 0) & (src < n), src, -1)


def _zoom(images, labels, value, rng, *, dtype=None):
    out = np.empty_like(images)
    labs = None if labels is None else np.empty(labels.shape, dtype=np.int32)
    for i, img in enumerate(images):
        out[i], lab = _warp_about_centre(img, None if labels is None else labels[i],
                                         float(value), img.min())
        if labs is not None:
            labs[i] = lab
    return out, labs, [{"centre": "middle"} for _ in range(images.shape[0])]


def patches_per_frame(shape: tuple[int, int], zoom: float, *, size: int = 256) -> int:
    """Number of zoom crops per frame: area ratio frame / window, clipped to [6, 80]."""
    window = max(int(round(size / zoom)), 1)
    ratio = shape[0] * shape[1] / window**2
    return int(np.clip(round(ratio), MIN_PATCHES, MAX_PATCHES))


def _crop_padded(array, y0, x0, side, fill):
    """``array[y0:y0+side, x0:x0+side]``, padded with ``fill`` where the window leaves it."""
    h, w = array.shape
    out = np.full((side, side), fill, dtype=array.dtype)
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + side, h), min(x0 + side, w)
    out[ys - y0:ye - y0, xs - x0:xe - x0] = array[ys:ye, xs:xe]
    return out


def _origin(rng, extent, side):
    if side <= extent:
        return int(rng.integers(0, extent - side + 1))
    return -((side - extent) // 2)  # window larger than the frame: centre it, pad


def zoom_crops(
    frame: Sample,
    zoom: float,
    *,
    rng: int | np.random.Generator | None,
    size: int = 256,
    n: int | None = None,
    normalise: str = "clip",
) -> list[Sample]:
    """The study's cell-size protocol: random windows of side ``size/zoom`` resized to ``size``.

    Parameters
    ----------
    frame : Sample
        Full frame, image (H, W) of any gray-level dtype; labels int32 or None.
    zoom : float
        Apparent magnification, > 0 (study grid :data:`STUDY_GRID`, 0.5-5).
    rng : int or numpy.random.Generator
        Source of the window positions.
    size : int
        Side of the output patches (px), default 256.
    n : int, optional
        Number of patches; default :func:`patches_per_frame` (area ratio clipped to [6, 80]).
    normalise : {"clip", "minmax", "none"}
        Output normalisation of the float32 images (``clip`` removes bicubic overshoot).

    Returns
    -------
    list of Sample
        Images float32 (size, size); labels int32 with the frame's instance ids (nearest
        neighbour); names ``"<frame>/zoom<zoom>/p<i>"``; ``meta`` holds ``zoom``,
        ``window_px``, ``crop_yx`` (top-left corner in the frame) and a scaled
        ``pixel_size_um`` when the frame had one.
    """
    check_ndim("frame.image", frame.image, (2,), what="one gray-level frame (H, W)")
    zoom = check_range("zoom", zoom, low=0, low_inclusive=False, high=64)
    size = int(check_range("size", size, low=1))
    count = patches_per_frame(frame.shape, zoom, size=size) if n is None else int(
        check_range("n", n, low=1))
    gen = as_rng(rng)
    side = max(int(round(size / zoom)), 1)
    image = frame.image.astype(np.float32)
    fill = float(image.min())
    patches = []
    for i in range(count):
        y0, x0 = _origin(gen, frame.shape[0], side), _origin(gen, frame.shape[1], side)
        crop = cv2.resize(_crop_padded(image, y0, x0, side, fill), (size, size),
                          interpolation=cv2.INTER_CUBIC)
        crop = _normalise(crop[None], normalise, dtype=frame.image.dtype, clean=image)[0]
        labels = None
        if frame.labels is not None:
            lab = _crop_padded(frame.labels.astype(np.float32), y0, x0, side, 0.0)
            labels = cv2.resize(lab, (size, size), interpolation=cv2.INTER_NEAREST).astype(
                np.int32)
        meta = {"zoom": zoom, "window_px": side, "crop_yx": [y0, x0]}
        if "pixel_size_um" in frame.meta:
            meta["pixel_size_um"] = float(frame.meta["pixel_size_um"]) * side / size
        name = f"{frame.name}/zoom{zoom:g}/p{i}"
        patches.append(frame.with_(image=crop, labels=labels, name=name, meta=meta))
    return patches


ZOOM = register(Artefact(
    name="zoom", kind="geometric", parameter="zoom", unit="x magnification",
    grid=tuple(v for v in STUDY_GRID if v >= 1.0),
    ladder=(1.0, 1.2, 1.4, 1.6, 1.8, 2.0), identity=1.0, limits=(0.05, 20.0),
    presets={"study": STUDY_GRID, "zoom_out": tuple(v for v in STUDY_GRID if v <= 1.0)[::-1]},
    reference="DeepImageJ PSC U-Net robustness study (cell-size experiment): window of side "
              "256/zoom resized to 256 px, bicubic",
    description="patch scaled about its centre (bicubic; labels nearest, ids preserved); "
                "zoom-out pads with the image minimum",
    kernel=_zoom,
))


def _cell_size_frame(frame: Sample, value: float, rng, *, size: int,
                     normalise: str) -> list[tuple[Sample, dict]]:
    crops = zoom_crops(frame, value, rng=rng, size=size, normalise=normalise)
    return [(c, {k: c.meta[k] for k in ("zoom", "window_px", "crop_yx")}) for c in crops]


CELL_SIZE = register(Artefact(
    name="cell_size", kind="geometric", parameter="zoom", unit="x magnification",
    grid=ZOOM.grid, ladder=ZOOM.ladder, identity=1.0, limits=(0.05, 20.0),
    presets=dict(ZOOM.presets),
    reference="DeepImageJ PSC U-Net robustness study (cell-size experiment): random windows "
              "of side 256/zoom cut from the frame, resized to 256 px (bicubic); patches per "
              "frame = area ratio clipped to [6, 80]",
    description="apparent cell size, frame level: windows of side size/zoom cut from whole "
                "frames and resized (single images: scaled about the centre, as zoom)",
    kernel=_zoom, frame_kernel=_cell_size_frame,
))
