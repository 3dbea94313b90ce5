"""Pixel-level scores (foreground vs background) from one confusion count per image.

Foreground is ``label > 0`` (instance labels, binary masks and boolean masks all work).
Scores: accuracy, Jaccard (IoU), Dice, precision, recall, and the *background-only* accuracy —
the accuracy of a prediction that marks every pixel as background, i.e. the fraction of true
background pixels. The PSC paper plots it as a reference line: on PSC frames (~8 % foreground)
predicting nothing already scores ~0.92 accuracy, so accuracy alone says little.

Averaging and the 0/0 rule are those of :mod:`cellrobust.metrics.aggregate`: ``micro`` pools the
counts over images (default), ``macro`` averages per-image scores (the paper's per-patch
convention); a ratio 0/0 is ``empty`` (default 1.0) for an image with no true and no predicted
foreground, and 0 otherwise. (The reference implementation scored an empty union as 0.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from cellrobust._validation import InputError
from cellrobust.metrics.aggregate import ratio, summarise

COUNT_KEYS = ("tp", "fp", "fn", "tn")
SCORE_KEYS = ("accuracy", "jaccard", "dice", "precision", "recall", "background_accuracy")


def pixel_counts(true: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """Confusion counts of foreground pixels.

    Parameters
    ----------
    true, pred : ndarray, same shape
        Labels or masks; foreground where ``> 0``.

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn``, ``tn`` (int, pixels).
    """
    true, pred = np.asarray(true), np.asarray(pred)
    if true.shape != pred.shape:
        raise InputError(
            f"pred: shape {pred.shape} differs from true {true.shape}; "
            "masks must match pixel for pixel"
        )
    t, p = true > 0, pred > 0
    tp = int(np.count_nonzero(t & p))
    n_t, n_p = int(np.count_nonzero(t)), int(np.count_nonzero(p))
    return {"tp": tp, "fp": n_p - tp, "fn": n_t - tp, "tn": int(t.size) - n_t - n_p + tp}


def scores_from_counts(counts: Mapping, *, empty: float = 1.0) -> dict[str, float]:
    """Scores of one set of counts (one image, or counts pooled over images)."""
    tp, fp, fn, tn = (np.asarray(counts[k], dtype=np.float64) for k in COUNT_KEYS)
    perfect = (tp + fp + fn) == 0
    total = tp + fp + fn + tn
    out = {
        "accuracy": ratio(tp + tn, total, perfect=True, empty=empty),
        "jaccard": ratio(tp, tp + fp + fn, perfect=perfect, empty=empty),
        "dice": ratio(2 * tp, 2 * tp + fp + fn, perfect=perfect, empty=empty),
        "precision": ratio(tp, tp + fp, perfect=perfect, empty=empty),
        "recall": ratio(tp, tp + fn, perfect=perfect, empty=empty),
        "background_accuracy": ratio(tn + fp, total, perfect=True, empty=empty),
    }
    return {k: float(v) if np.ndim(v) == 0 else v for k, v in out.items()}


def pixel_scores(counts, *, average: str = "micro", empty: float = 1.0) -> dict[str, float]:
    """Pixel scores of a data set from per-image counts.

    Parameters
    ----------
    counts : dict, iterable of dict, or pandas.DataFrame
        Per-image counts with keys ``tp, fp, fn, tn`` (or the results-table columns
        ``tp_px, fp_px, fn_px, tn_px``).
    average : {"micro", "macro"}, default "micro"
    empty : float, default 1.0
        Score of a ratio 0/0 on an image with no true and no predicted foreground.

    Returns
    -------
    dict of str to float
        ``accuracy``, ``jaccard``, ``dice``, ``precision``, ``recall``,
        ``background_accuracy``.
    """
    rows = _as_count_rows(counts)
    return summarise(rows, lambda c: scores_from_counts(c, empty=empty), average=average)


def _as_count_rows(counts) -> list[dict]:
    if isinstance(counts, Mapping):
        counts = [counts]
    elif hasattr(counts, "to_dict") and hasattr(counts, "columns"):
        counts = counts.to_dict("records")
    rows = []
    for row in counts if isinstance(counts, Iterable) else ():
        try:
            rows.append({k: row[k] if k in row else row[f"{k}_px"] for k in COUNT_KEYS})
        except (KeyError, TypeError):
            raise InputError(
                "counts: each image needs the keys tp, fp, fn, tn (or tp_px, fp_px, fn_px, "
                f"tn_px), got {sorted(row) if isinstance(row, Mapping) else type(row).__name__}"
            ) from None
    return rows
