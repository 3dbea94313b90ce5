"""Colour and palette masks turned into integer label values (before relabelling).

Rules (documented in ``docs/data.md``):

* **palette** images (PNG/GIF/BMP mode ``P``): the palette *index* is the label (0 = background),
  whatever colour the palette shows;
* **gray + alpha** (2 channels): the gray value is the label, alpha 0 is background;
* **RGB / RGBA** whose colour channels are equal: the gray value is the label (alpha 0 is
  background);
* **RGB / RGBA in colour**: each distinct colour is one instance; black ``(0, 0, 0)`` and fully
  transparent pixels (alpha 0) are background. Instances are numbered in the sorted order of their
  packed colour ``(R, G, B)``. A colour mask with a single non-background colour is a binary mask
  painted in that colour (its instances are then its connected components).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cellrobust._validation import DataError

PALETTE_SUFFIXES = (".png", ".gif", ".bmp")


def read_palette_indices(file: Path) -> np.ndarray | None:
    """The palette indices of a palette image (mode ``P``/``PA``), or None for other files.

    A ``PA`` image gives ``(H, W, 2)`` (index, alpha), handled as gray + alpha. Unreadable files
    return None so that the ordinary reader reports them.
    """
    if file.suffix.lower() not in PALETTE_SUFFIXES or not file.is_file():
        return None
    from PIL import Image

    try:
        with Image.open(file) as image:
            if image.mode not in ("P", "PA"):
                return None
            return np.asarray(image)
    except Exception:  # PIL raises many types; read_image names the file and the problem
        return None


def colour_to_values(array: np.ndarray, *, file: object) -> tuple[np.ndarray, bool]:
    """``(values (H, W), in_colour)`` of an ``(H, W, C)`` mask with C = 2 (gray + alpha), 3 or 4.

    ``in_colour`` is True when the colour channels differ somewhere (each colour = one instance).
    """
    n = array.shape[-1]
    if n not in (2, 3, 4):
        raise DataError(
            f"{file}: unsupported mask shape {array.shape}; expected a 2-D label image, a palette "
            "image, or gray+alpha / RGB / RGBA (last axis 2, 3 or 4)"
        )
    alpha = array[..., -1] if n in (2, 4) else None
    colour = array[..., :-1] if alpha is not None else array
    if all(np.array_equal(colour[..., 0], colour[..., k]) for k in range(1, colour.shape[-1])):
        values, in_colour = colour[..., 0], False
    else:
        values, in_colour = _colour_ids(colour, file=file), True
    if alpha is not None:
        values = np.where(alpha == 0, 0, values)
    return values, in_colour


def _colour_ids(colour: np.ndarray, *, file: object) -> np.ndarray:
    """One id per distinct colour, 0 for black; ids follow the sorted packed colours."""
    if colour.dtype not in (np.uint8, np.uint16):
        raise DataError(
            f"{file}: unsupported colour mask dtype {colour.dtype}; expected 8- or 16-bit RGB(A)"
        )
    bits = 8 * colour.dtype.itemsize
    packed = np.zeros(colour.shape[:2], np.int64)
    for k in range(colour.shape[-1]):
        packed = (packed << bits) | colour[..., k].astype(np.int64)
    values, inverse = np.unique(packed, return_inverse=True)
    ids = inverse.reshape(packed.shape)
    return ids if values[0] == 0 else ids + 1
