"""The Cell Tracking Challenge SEG measure.

A reference (true) object R is matched by the segmented object S that covers more than half
of it, ``|R ∩ S| > 0.5 |R|`` (at most one S can); its score is the Jaccard index
``|R ∩ S| / |R ∪ S|``, and 0 when unmatched. SEG is the mean over all reference objects,
pooled over the frames of a data set. False positives do not lower SEG.

References
----------
Ulman et al., "An objective comparison of cell-tracking algorithms", Nat. Methods 14, 2017.
Maška et al., "The Cell Tracking Challenge: 10 years of objective benchmarking",
Nat. Methods 20, 2023.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellrobust.metrics.instance import overlap


@dataclass(frozen=True)
class SegCounts:
    """Summed Jaccard of the reference objects and their number (one frame or pooled).

    ``seg`` is ``sum_jaccard / n_ref``; with no reference object it is ``empty`` (NaN by
    default: SEG is undefined for a frame without reference objects).
    """

    sum_jaccard: float
    n_ref: int
    empty: float = float("nan")

    @property
    def seg(self) -> float:
        return self.sum_jaccard / self.n_ref if self.n_ref else self.empty

    def __add__(self, other: "SegCounts") -> "SegCounts":
        return SegCounts(self.sum_jaccard + other.sum_jaccard, self.n_ref + other.n_ref,
                         self.empty)


def seg_score(labels_true: np.ndarray, labels_pred: np.ndarray, *,
              empty: float = float("nan")) -> SegCounts:
    """SEG counts of one frame (``.seg`` gives the frame's SEG).

    Parameters
    ----------
    labels_true : ndarray of int
        Reference instance labels (0 = background).
    labels_pred : ndarray of int, same shape
        Segmented instance labels.
    empty : float, default NaN
        SEG of a frame without reference objects (py-ctcmetrics reports 0).

    Returns
    -------
    SegCounts
    """
    ov = overlap(labels_true, labels_pred)
    ok = 2 * ov.inter > ov.area_true[ov.rows]
    inter = ov.inter[ok]
    union = ov.area_true[ov.rows[ok]] + ov.area_pred[ov.cols[ok]] - inter
    return SegCounts(float(np.sum(inter / union)), ov.n_true, float(empty))


def seg_dataset(pairs, *, empty: float = float("nan")) -> SegCounts:
    """SEG pooled over frames: every reference object of every frame weighs the same."""
    total = SegCounts(0.0, 0, float(empty))
    for true, pred in pairs:
        total = total + seg_score(true, pred, empty=empty)
    return total
