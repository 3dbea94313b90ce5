"""Training-time augmentation: one function transforms image and mask together.

The reference robust-training generator drew image and mask transforms from two random streams
that fell out of step (~44 % of its pairs were misaligned). Here :func:`draw_params` draws every
geometric parameter once, :func:`transform_pair` applies the *same* parameters to image and
mask inside one call, and intensity artefacts (:mod:`cellrobust.artefacts`) are then applied to
the image only. :func:`augmented_patch` chains the three; its drawn parameters are returned so
any patch can be regenerated alone.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cellrobust._rng import as_rng
from cellrobust.training.config import TrainConfig


def draw_params(config: TrainConfig, frame_shape: tuple[int, int], *,
                rng: int | np.random.Generator | None) -> dict[str, Any]:
    """Draw the geometric parameters of one training patch.

    Returns
    -------
    dict
        ``y``, ``x`` (top-left corner of the crop, or the centre for ``affine``), ``k``
        (quarter turns 0-3) and ``flip`` (bool) for dihedral transforms; for ``affine``
        ``angle`` (degrees), ``scale`` and ``hflip`` as well.
    """
    gen = as_rng(rng)
    size = config.patch_size
    h, w = frame_shape
    params: dict[str, Any] = {"k": 0, "flip": False}
    if config.affine:
        params["y"] = float(gen.uniform(0, h))
        params["x"] = float(gen.uniform(0, w))
        params["angle"] = float(gen.uniform(0.0, 360.0))
        params["scale"] = float(gen.uniform(*config.scale_range))
        params["hflip"] = bool(gen.integers(2))
    else:
        params["y"] = int(gen.integers(0, h - size + 1))
        params["x"] = int(gen.integers(0, w - size + 1))
    if config.dihedral:
        params["k"] = int(gen.integers(4))
        params["flip"] = bool(gen.integers(2))
    return params


def transform_pair(image: np.ndarray, mask: np.ndarray, params: dict[str, Any],
                   size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut and transform one patch of image and mask with the same parameters.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Frame gray levels (any real dtype; returned as float32).
    mask : ndarray, shape (H, W)
        Target (binary or labels; nearest-neighbour resampling keeps its values).
    params : dict
        From :func:`draw_params`.
    size : int
        Patch side in pixels.

    Returns
    -------
    image_patch : ndarray of float32, shape (size, size)
    mask_patch : ndarray, shape (size, size), ``mask``'s dtype
    """
    if "angle" in params:
        img, msk = _affine(image, mask, params, size)
    else:
        y, x = params["y"], params["x"]
        img = np.asarray(image[y:y + size, x:x + size], dtype=np.float32)
        msk = mask[y:y + size, x:x + size]
    img, msk = _dihedral(img, params["k"], params["flip"]), _dihedral(msk, params["k"],
                                                                         params["flip"])
    return np.ascontiguousarray(img), np.ascontiguousarray(msk)


def _dihedral(array: np.ndarray, k: int, flip: bool) -> np.ndarray:
    out = np.rot90(array, k) if k else array
    return out[:, ::-1] if flip else out


def _affine(image: np.ndarray, mask: np.ndarray, params: dict[str, Any],
            size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample a rotated/scaled/flipped ``size`` window centred at (y, x), reflecting borders."""
    import cv2

    theta = math.radians(params["angle"])
    s = 1.0 / params["scale"]  # output pixel -> frame pixels (scale > 1 magnifies cells)
    cos, sin = s * math.cos(theta), s * math.sin(theta)
    fx = -1.0 if params["hflip"] else 1.0
    c = (size - 1) / 2.0
    # frame = R * diag(fx, 1) * (out - c) + centre ; cv2 wants the out -> frame map (inverse).
    matrix = np.array([[cos * fx, -sin, params["x"] - (cos * fx * c - sin * c)],
                       [sin * fx, cos, params["y"] - (sin * fx * c + cos * c)]])
    flags = cv2.WARP_INVERSE_MAP
    border = cv2.BORDER_REFLECT_101
    img = cv2.warpAffine(np.asarray(image, dtype=np.float32), matrix, (size, size),
                         flags=flags | cv2.INTER_LINEAR, borderMode=border)
    msk_in = mask.astype(np.int32) if mask.dtype not in (np.uint8, np.uint16, np.int16,
                                                         np.float32) else mask
    msk = cv2.warpAffine(msk_in, matrix, (size, size), flags=flags | cv2.INTER_NEAREST,
                         borderMode=border).astype(mask.dtype)
    return img, msk


def apply_artefacts(image: np.ndarray, config: TrainConfig, *, name: str,
                    rng: int | np.random.Generator | None) -> tuple[np.ndarray, list[dict]]:
    """Apply each configured artefact to ``image`` only, with probability ``p``, severity
    ~ U(low, high).

    Returns the float32 image and one dict per artefact (``name``, ``value`` and the
    artefact's drawn parameters).
    """
    if not config.artefacts:
        return image, []
    from cellrobust import artefacts
    from cellrobust.data.sample import Sample

    gen = as_rng(rng)
    drawn = []
    sample = Sample(image=np.asarray(image, dtype=np.float32), labels=None, name=name)
    for art in config.artefacts:
        if art.p < 1.0 and gen.random() >= art.p:  # p = 1 draws nothing: streams as before
            continue
        value = float(gen.uniform(art.low, art.high))
        sample, params = artefacts.apply(sample, art.name, value, rng=gen)
        drawn.append({"name": art.name, "value": value, **params})
    return np.asarray(sample.image, dtype=np.float32), drawn


def augmented_patch(image: np.ndarray, mask: np.ndarray, config: TrainConfig, *, name: str,
                    rng: int | np.random.Generator | None
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One training pair: draw geometry, transform image and mask together, add artefacts.

    Returns
    -------
    image_patch : ndarray of float32, shape (patch_size, patch_size)
        Gray levels (not yet normalised).
    mask_patch : ndarray, shape (patch_size, patch_size)
    params : dict
        Geometry plus ``artefacts`` (list of drawn artefact parameters).
    """
    gen = as_rng(rng)
    params = draw_params(config, mask.shape[:2], rng=gen)
    img, msk = transform_pair(image, mask, params, config.patch_size)
    img, drawn = apply_artefacts(img, config, name=name, rng=gen)
    return img, msk, {**params, "artefacts": drawn}


__all__ = ["draw_params", "transform_pair", "apply_artefacts", "augmented_patch"]
