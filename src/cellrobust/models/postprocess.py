"""From foreground probabilities to instance labels.

One function, :func:`probabilities_to_labels`, shared by the U-Net and the classical baselines so
that every segmenter turns its output into cells the same way: threshold, (optionally) fill
holes, connected components with 4- or 8-connectivity, (optionally) a distance-transform
watershed that splits touching cells, and removal of objects smaller than ``min_size`` pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from cellrobust._components import label_components
from cellrobust._threads import for_each
from cellrobust._validation import InputError, check_ndim, check_range, collect_errors

#: Structuring elements of the two pixel connectivities (2-D).
_STRUCTURES = {
    4: ndi.generate_binary_structure(2, 1),
    8: ndi.generate_binary_structure(2, 2),
}


def probabilities_to_labels(
    prob: np.ndarray,
    *,
    threshold: float = 0.5,
    connectivity: int = 8,
    fill_holes: bool = False,
    min_size: int = 0,
    watershed: bool = False,
    watershed_min_distance: int = 3,
) -> np.ndarray:
    """Turn a foreground probability map into instance labels.

    Parameters
    ----------
    prob : ndarray, shape (H, W) or (N, H, W)
        Foreground probability in [0, 1] (any real dtype; a binary 0/1 mask also works). NaN is
        treated as background.
    threshold : float, default 0.5
        A pixel is foreground where ``prob > threshold`` (strictly greater).
    connectivity : {8, 4}, default 8
        Pixel connectivity of the connected components: 8 (diagonal neighbours touch, the
        choice of the PSC robustness paper) or 4.
    fill_holes : bool, default False
        Fill background regions enclosed by foreground before labelling
        (:func:`scipy.ndimage.binary_fill_holes`, per image).
    min_size : int, default 0
        Objects with fewer than ``min_size`` pixels are set to background (after any split).
    watershed : bool, default False
        Split touching cells: markers at local maxima of the Euclidean distance transform of
        each component (at least ``watershed_min_distance`` pixels apart), then a marker-based
        watershed of the negated distance restricted to the foreground
        (:func:`skimage.segmentation.watershed`).
    watershed_min_distance : int, default 3
        Minimum distance in pixels between two watershed markers (about a cell radius).

    Returns
    -------
    labels : ndarray of int32, same shape as ``prob``
        0 = background, 1..n = objects, numbered sequentially per image in raster order of
        their first pixel.

    Raises
    ------
    InputError
        For a non 2-D/3-D input or an invalid option (all invalid options are listed at once).
    """
    check_ndim("prob", prob, (2, 3), what="(H, W) or (N, H, W) probabilities")
    _check_options(threshold, connectivity, min_size, watershed_min_distance)
    prob = np.asarray(prob)
    if prob.ndim == 3:  # planes in threads (OpenCV's labelling releases the GIL)
        out = np.empty(prob.shape, dtype=np.int32)

        def plane(i: int) -> None:
            out[i] = _one(prob[i], threshold, connectivity, fill_holes, min_size, watershed,
                          watershed_min_distance)

        for_each(plane, prob.shape[0])
        return out
    return _one(prob, threshold, connectivity, fill_holes, min_size, watershed,
                watershed_min_distance)


def _check_options(threshold, connectivity, min_size, min_distance) -> None:
    errors: list[str] = []
    for check in (
        lambda: check_range("threshold", threshold, low=0, high=1, high_inclusive=False),
        lambda: _check_connectivity(connectivity),
        lambda: check_range("min_size", min_size, low=0),
        lambda: check_range("watershed_min_distance", min_distance, low=1),
    ):
        try:
            check()
        except InputError as exc:
            errors.append(str(exc))
    collect_errors(errors, "post-processing options")


def _check_connectivity(connectivity) -> None:
    if connectivity not in (8, 4) or isinstance(connectivity, bool):
        raise InputError(f"connectivity: expected 8 or 4 (pixel neighbours), got {connectivity!r}")


def _one(prob, threshold, connectivity, fill_holes, min_size, watershed, min_distance):
    mask = np.asarray(prob > threshold)
    structure = _STRUCTURES[int(connectivity)]
    if fill_holes:
        mask = ndi.binary_fill_holes(mask)
    labels, n = label_components(mask, int(connectivity))
    if watershed and n:
        labels = _watershed_split(mask, labels, structure, int(min_distance))
    if min_size > 0:
        labels = remove_small(labels, int(min_size))
    return labels.astype(np.int32, copy=False)


def _watershed_split(mask, labels, structure, min_distance):
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    distance = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=labels,
                           exclude_border=False)
    markers = np.zeros(mask.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    # components without a peak (e.g. one-pixel objects) keep one marker each
    missing = np.setdiff1d(np.unique(labels[mask]), np.unique(labels[markers > 0]))
    if missing.size:
        extra = np.isin(labels, missing) & mask
        extra_labels, _ = ndi.label(extra, structure=structure)
        markers[extra_labels > 0] = extra_labels[extra_labels > 0] + len(peaks)
    split = watershed(-distance, markers, mask=mask, connectivity=structure)
    return relabel_sequential(split)


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects of fewer than ``min_size`` pixels to 0 and renumber the rest 1..n.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance labels, 0 = background.
    min_size : int
        Smallest object area kept, in pixels.

    Returns
    -------
    ndarray of int32, shape (H, W)
    """
    labels = np.asarray(labels)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    lut = np.zeros(sizes.size, dtype=np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Renumber non-negative labels 1..n in raster order of each object's first pixel (int32)."""
    labels = np.asarray(labels)
    ids, first = np.unique(labels.ravel(), return_index=True)
    keep = ids != 0
    ids = ids[keep][np.argsort(first[keep], kind="stable")]
    lut = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.int32)
    lut[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lut[labels]
