"""Reading one image or mask file and converting it to the package's conventions.

Images become 2-D gray arrays kept in their own precision where possible:

* ``uint8`` and ``uint16`` are returned as read;
* other integer types (``int8``, ``int16``, ``int32``, ``uint32``) and every float type become
  ``float32`` with the values unchanged (no rescaling);
* RGB(A) images (last axis 3 or 4) become gray by the ITU-R BT.709 luma weights
  ``0.2125 R + 0.7154 G + 0.0721 B`` (the weights of :func:`skimage.color.rgb2gray`; alpha is
  dropped), rounded back to the input's integer type; an RGB file whose three channels are equal is
  read exactly from its first channel; ``channel=k`` takes channel ``k`` instead;
* singleton axes (``(1, H, W)``, ``(H, W, 1)``) are squeezed;
* ``bool``, complex and object images, and anything still not 2-D, raise :class:`DataError`.

Masks become ``int32`` instance labels, 0 = background, 1..n sequential. A *binary* mask (a
``bool`` mask, or one whose only non-zero value is 1, 255 or 65535) is split into 8-connected
components — touching cells then merge, so such instances are approximate; this is decided for
each mask on its own. Any other mask is an *instance* mask, relabelled sequentially in order of its
original values (a mask holding one object labelled 7 is one exact instance). Palette, gray+alpha,
RGB and RGBA masks are first turned into label values by the rules of
:mod:`cellrobust.data._masks` (palette index = label; each distinct colour = one instance, black
or transparent = background; equal channels = gray values).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cellrobust._validation import DataError
from cellrobust.data._masks import colour_to_values, read_palette_indices

RGB_WEIGHTS = (0.2125, 0.7154, 0.0721)
"""BT.709 luma weights used to convert RGB images to gray (as :func:`skimage.color.rgb2gray`)."""

_KEEP_DTYPES = (np.uint8, np.uint16)
_FLOAT_DTYPES = (np.int8, np.int16, np.int32, np.uint32, np.float16, np.float32, np.float64)


def read_array(path: str | os.PathLike) -> np.ndarray:
    """Read an image file (TIFF, PNG, JPEG, BMP, ``.npy``), checking TIFFs for truncation.

    Raises
    ------
    DataError
        Naming the file when it is missing, truncated or not an image.
    """
    return read_array_meta(path)[0]


def read_array_meta(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """:func:`read_array` plus what the file says about itself: ``{"pixel_size_um": float}``
    when a TIFF records its pixel size in micrometres (ImageJ ``unit=micron`` or centimetre
    resolution units); an empty dict otherwise."""
    file = Path(path)
    meta: dict = {}
    if file.suffix.lower() in (".tif", ".tiff") and file.is_file():
        meta = _check_tiff_complete(file)
    from cellrobust._io import read_image

    return read_image(file), meta


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask file: like :func:`read_array`, except that a palette image gives its palette
    indices (index = label) rather than the colours the palette maps them to."""
    indices = read_palette_indices(Path(path))
    return read_array(path) if indices is None else indices


def _pixel_size_um(tif, page) -> float | None:
    tag, unit = page.tags.get("XResolution"), page.tags.get("ResolutionUnit")
    if tag is None:
        return None
    num, den = tag.value
    if not num or not den:
        return None
    per_unit = num / den  # pixels per unit
    imagej_unit = str((tif.imagej_metadata or {}).get("unit", "")).lower()
    if imagej_unit in ("micron", "um", "\u00b5m"):
        return 1.0 / per_unit
    if unit is not None and int(unit.value) == 3:  # centimetre
        return 1e4 / per_unit
    return None  # inch resolutions are usually a meaningless 72 dpi default


def _check_tiff_complete(file: Path) -> dict:
    import tifffile

    size = file.stat().st_size
    try:
        with tifffile.TiffFile(file) as tif:
            page = tif.pages.first
            ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts)]
            pixel = _pixel_size_um(tif, page)
    except Exception as exc:  # tifffile raises many types on broken headers
        raise DataError(
            f"{file}: not a readable TIFF ({type(exc).__name__}: {exc}); expected a complete "
            f"TIFF file, found {size} bytes - re-export or re-download it"
        ) from exc
    needed = max(ends, default=0)
    if needed > size:
        raise DataError(
            f"{file}: truncated TIFF: its image data needs {needed} bytes, the file has only "
            f"{size} - re-export or re-download it"
        )
    return {"pixel_size_um": pixel} if pixel else {}


def to_gray(image: np.ndarray, *, file: object, channel: int | None = None) -> np.ndarray:
    """Convert an image array to a 2-D gray image (see the module docstring for the rules)."""
    array = _squeeze(np.asarray(image))
    if array.dtype.kind in "bcOUSV":
        raise DataError(
            f"{file}: unsupported image dtype {array.dtype}; expected unsigned/signed integers "
            "or floats (8-/16-bit gray or RGB, float)"
        )
    if array.ndim == 3:
        array = _to_single_channel(array, file=file, channel=channel)
    if array.ndim != 2:
        raise DataError(
            f"{file}: unsupported image shape {array.shape}; expected a 2-D gray image (H, W) "
            "or colour (H, W, 3|4); stacks and 3-D volumes are not supported"
        )
    if array.dtype.type in _KEEP_DTYPES:
        return array
    if array.dtype.type in _FLOAT_DTYPES or array.dtype.kind in "iuf":
        out = array.astype(np.float32)
        if not np.isfinite(out).all():
            raise DataError(
                f"{file}: image contains NaN or infinite values; expected finite values"
            )
        return out
    raise DataError(f"{file}: unsupported image dtype {array.dtype}")


def _squeeze(array: np.ndarray) -> np.ndarray:
    while array.ndim > 2 and 1 in (array.shape[0], array.shape[-1]):
        array = array[0] if array.shape[0] == 1 else array[..., 0]
    return array


def _to_single_channel(array: np.ndarray, *, file: object, channel: int | None) -> np.ndarray:
    last_is_channel = array.shape[-1] <= 4  # channels-last (RGB files) wins when ambiguous
    first_is_channel = not last_is_channel and array.shape[0] <= 4
    if not (last_is_channel or first_is_channel):
        raise DataError(
            f"{file}: unsupported image shape {array.shape}; expected 2-D (H, W) or a colour "
            "image with 2-4 channels on the first or last axis"
        )
    if first_is_channel:
        array = np.moveaxis(array, 0, -1)
    n = array.shape[-1]
    if channel is not None:
        if not -n <= channel < n:
            raise DataError(f"{file}: channel {channel} requested, the image has {n} channels")
        return np.ascontiguousarray(array[..., channel])
    if n < 3:
        raise DataError(
            f"{file}: image has {n} channels; choose which one to use (channel=0 or 1)"
        )
    rgb = array[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0])
    gray = rgb.astype(np.float32) @ np.asarray(RGB_WEIGHTS, np.float32)
    if array.dtype.kind in "ui":
        info = np.iinfo(array.dtype)
        return np.clip(np.rint(gray), info.min, info.max).astype(array.dtype)
    return gray


def to_labels(mask: np.ndarray, *, file: object, kind: str = "auto") -> tuple[np.ndarray, bool]:
    """Convert a mask array to sequential int32 instance labels.

    Parameters
    ----------
    mask : ndarray, shape (H, W) or (H, W, C)
        Integer, bool or integer-valued float mask; singleton axes are squeezed. ``C`` = 2
        (gray + alpha), 3 (RGB) or 4 (RGBA) colour masks follow :mod:`cellrobust.data._masks`.
    file : object
        Printed in error messages (the mask's path).
    kind : {"auto", "binary", "instance"}
        ``"binary"``: every non-zero pixel is foreground, instances are 8-connected components.
        ``"instance"``: each value is one object. ``"auto"``: binary when the mask is ``bool`` or
        its only non-zero value is 1, 255 or 65535 (or a colour mask has one colour), instance
        otherwise.

    Returns
    -------
    labels : ndarray of int32, shape (H, W)
        0 = background, 1..n sequential.
    approximate : bool
        True when instances were derived from a binary mask (for this mask alone).
    """
    array = _squeeze(np.asarray(mask))
    in_colour = False
    if array.ndim == 3:
        array, in_colour = colour_to_values(array, file=file)
    if array.ndim != 2:
        raise DataError(f"{file}: unsupported mask shape {array.shape}; expected a 2-D label image")
    binary_dtype = array.dtype == bool
    array = _integer_mask(array, file=file)
    values = np.unique(array)
    if kind == "binary" or (kind == "auto" and _is_binary(values, binary_dtype or in_colour)):
        from skimage.measure import label

        return label(array > 0, connectivity=2).astype(np.int32, copy=False), True
    return relabel_sequential(array, values), False


BINARY_VALUES = (1, 255, 65535)
"""The foreground values of a binary mask (0/1, 0/255 8-bit, 0/65535 16-bit)."""


def _is_binary(values: np.ndarray, one_value_is_binary: bool) -> bool:
    foreground = values[values != 0]
    if foreground.size != 1:  # empty masks hold no instance to approximate
        return False
    return one_value_is_binary or int(foreground[0]) in BINARY_VALUES


def _integer_mask(array: np.ndarray, *, file: object) -> np.ndarray:
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise DataError(
                f"{file}: mask holds non-integer values; expected integer labels or a binary mask"
            )
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise DataError(f"{file}: unsupported mask dtype {array.dtype}; expected integer labels")
    if array.dtype.kind == "i" and array.size and array.min() < 0:
        raise DataError(
            f"{file}: mask holds negative values; expected labels >= 0 (0 = background)"
        )
    return array


def relabel_sequential(labels: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
    """Map the distinct non-zero values of ``labels`` to 1..n (order kept); 0 stays 0; int32."""
    if values is None:
        values = np.unique(labels)
    values = values[values != 0]
    if values.size and values[0] == 1 and values[-1] == values.size:
        return labels.astype(np.int32, copy=False)
    lut_index = np.searchsorted(values, labels)
    out = np.where(labels == 0, 0, lut_index + 1)
    return out.astype(np.int32, copy=False)
