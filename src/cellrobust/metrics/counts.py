"""Cell counts from masks: connected components, never counting the background.

The PSC paper counts cells as the connected components of the binary mask with 8-connectivity
(diagonal neighbours belong to the same cell); 4-connectivity is selectable. The reference
implementation added one per patch because it counted the background label; here label 0 is
never a cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cellrobust._components import label_components
from cellrobust._validation import InputError
from cellrobust.table import DEFAULT_THRESHOLDS


def count_cells(mask: np.ndarray, *, connectivity: int = 8, instances: bool | None = False) -> int:
    """Number of cells: annotated instances, or connected foreground components.

    Parameters
    ----------
    mask : ndarray, shape (H, W)
        Binary mask or instance labels.
    connectivity : {8, 4}, default 8
        Of the components counted when ``instances`` is False (touching cells count once,
        exactly as for the binary masks the paper counted).
    instances : bool or None, default False
        True: count distinct non-zero labels (instance ground truth, touching cells apart).
        None: do so when ``mask`` has more than one non-zero value (it holds instance labels),
        else count components.

    Returns
    -------
    int
    """
    if connectivity not in (4, 8) or isinstance(connectivity, bool):
        raise InputError(f"connectivity: expected 8 or 4 (pixel neighbours), got {connectivity!r}")
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"mask: expected a 2-D array (H, W), got shape {mask.shape}")
    if instances or (instances is None and count_objects(mask) > 1):
        return count_objects(mask)
    return label_components(mask > 0, connectivity)[1]


def count_objects(labels: np.ndarray) -> int:
    """Number of distinct non-zero labels (instances as annotated, touching cells apart)."""
    ids = np.unique(np.asarray(labels))
    return int(np.count_nonzero(ids))


def count_error(count_true: int, count_pred: int) -> dict[str, float]:
    """Signed, absolute and relative count error (relative: NaN when there is no true cell).

    Returns
    -------
    dict
        ``count_true``, ``count_pred``, ``error`` (pred - true), ``abs_error``,
        ``rel_error`` (error / true).
    """
    error = int(count_pred) - int(count_true)
    rel = error / count_true if count_true else float("nan")
    return {"count_true": int(count_true), "count_pred": int(count_pred), "error": error,
            "abs_error": abs(error), "rel_error": rel}


def counts_row(true, pred, *, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
               connectivity: int = 8, instances: bool | None = None,
               criterion: str = "iou") -> dict:
    """The count columns of one image.

    Parameters
    ----------
    true, pred : ndarray (H, W) of int
        Reference and predicted instance labels (0 = background).
    thresholds : sequence of float
        IoU thresholds of the matching columns.
    connectivity : {8, 4}
        Of the connected components that count cells when the reference is not instance-level.
    instances : bool, optional
        Whether ``true`` holds real instance labels (count them as labelled); None = it does
        when it has more than one label value.
    criterion : {"iou", "iot", "iop"}
        Matching criterion (:func:`cellrobust.metrics.match`); the sweep uses IoU.

    Returns
    -------
    dict
        ``COUNT_COLUMNS`` and :func:`threshold_columns` values.
    """
    from cellrobust.metrics.instance import match
    from cellrobust.metrics.pixel import pixel_counts
    from cellrobust.table import tau

    px = pixel_counts(true, pred)
    m = match(true, pred, thresholds=tuple(thresholds), criterion=criterion)
    row = {"tp_px": px["tp"], "fp_px": px["fp"], "fn_px": px["fn"], "tn_px": px["tn"],
           "n_true": int(m.n_true), "n_pred": int(m.n_pred),
           "count_true": count_cells(true, connectivity=connectivity, instances=instances),
           "count_pred": count_cells(pred, connectivity=connectivity, instances=False)}
    for k, t in enumerate(thresholds):
        row.update({f"tp@{tau(t)}": int(m.tp[k]), f"fp@{tau(t)}": int(m.fp[k]),
                    f"fn@{tau(t)}": int(m.fn[k]), f"sum_iou@{tau(t)}": float(m.sum_iou[k])})
    return row
