"""Pixel precision-recall curve of a foreground probability map over binarisation thresholds.

For each threshold τ a pixel is predicted foreground where ``prob > τ`` (the rule of
:func:`cellrobust.models.postprocess.probabilities_to_labels`). Counts for every threshold come
from one histogram pass (no re-thresholding per τ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellrobust._validation import InputError
from cellrobust.metrics.aggregate import ratio

DEFAULT_PROB_THRESHOLDS: tuple[float, ...] = tuple(
    float(round(t, 2)) for t in np.linspace(0, 1, 101))


@dataclass(frozen=True, eq=False)
class PRCurve:
    """Pixel counts and scores per probability threshold (pooled over the images given).

    Attributes
    ----------
    thresholds : ndarray of float64, shape (T,), increasing
    tp, fp, fn : ndarray of int64, shape (T,)
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @property
    def _perfect(self) -> np.ndarray:
        return (self.tp + self.fp + self.fn) == 0

    @property
    def precision(self) -> np.ndarray:
        """TP / (TP + FP); 1.0 where nothing is predicted and nothing was to be found."""
        return ratio(self.tp, self.tp + self.fp, perfect=self._perfect | (self.fp == 0))

    @property
    def recall(self) -> np.ndarray:
        return ratio(self.tp, self.tp + self.fn, perfect=self._perfect)

    @property
    def jaccard(self) -> np.ndarray:
        return ratio(self.tp, self.tp + self.fp + self.fn, perfect=self._perfect)

    def best_threshold(self, metric: str = "jaccard") -> float:
        """Threshold maximising ``metric`` (``"jaccard"`` or ``"f1"``); the lowest on ties."""
        if metric == "f1":
            values = ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn, perfect=self._perfect)
        else:
            values = self.jaccard
        return float(self.thresholds[int(np.argmax(values))])

    def area(self) -> float:
        """Area under the curve: sum over recall steps of precision (step interpolation).

        This is the *COCO-style* area under a precision-recall curve, here at pixel level; it
        is unrelated to the DSB "AP" of :func:`cellrobust.metrics.match`.
        """
        order = np.argsort(self.recall, kind="stable")
        r, p = self.recall[order], self.precision[order]
        return float(np.sum(np.diff(np.concatenate([[0.0], r])) * p))


def pr_curve(probs, labels_true, *, thresholds=DEFAULT_PROB_THRESHOLDS) -> PRCurve:
    """Precision-recall of ``prob > τ`` against ``labels_true > 0`` for every τ.

    Parameters
    ----------
    probs : ndarray of float, shape (H, W) or (N, H, W), or a sequence of (H, W) arrays
        Foreground probabilities in [0, 1].
    labels_true : same layout as ``probs``
        True labels or masks (foreground ``> 0``).
    thresholds : sequence of float, default 0.00:0.01:1.00
        Sorted increasingly before use.

    Returns
    -------
    PRCurve
        Counts pooled over all images.
    """
    thr = np.sort(np.asarray(thresholds, dtype=np.float64).ravel())
    if thr.size == 0:
        raise InputError("thresholds: expected at least one threshold, got none")
    pos = np.zeros(thr.size + 1, dtype=np.int64)
    neg = np.zeros(thr.size + 1, dtype=np.int64)
    for prob, true in _pairs(probs, labels_true):
        # idx = number of thresholds strictly below prob => prob > thr[j] for j < idx
        idx = np.searchsorted(thr, np.nan_to_num(prob, nan=-np.inf).ravel(), side="left")
        fg = np.asarray(true).ravel() > 0
        pos += np.bincount(idx[fg], minlength=thr.size + 1)
        neg += np.bincount(idx[~fg], minlength=thr.size + 1)
    # pixels predicted foreground at threshold j: idx > j
    tp = np.cumsum(pos[::-1])[::-1][1:]
    fp = np.cumsum(neg[::-1])[::-1][1:]
    fn = pos.sum() - tp
    return PRCurve(thr, tp, fp, fn)


def _pairs(probs, labels_true):
    if isinstance(probs, np.ndarray) and probs.ndim == 2:
        probs, labels_true = [probs], [labels_true]
    if len(probs) != len(labels_true):
        raise InputError(
            f"labels_true: expected one mask per probability map ({len(probs)}), "
            f"got {len(labels_true)}"
        )
    for prob, true in zip(probs, labels_true):
        if np.shape(prob) != np.shape(true):
            raise InputError(
                f"labels_true: shape {np.shape(true)} differs from its probability map "
                f"{np.shape(prob)}"
            )
        yield np.asarray(prob, dtype=np.float64), true
