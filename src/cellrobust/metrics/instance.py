"""Instance matching: one sparse overlap table, then an optimal one-to-one matching per threshold.

The numbers equal StarDist's ``stardist.matching.matching`` (same scores, same threshold rule
``score >= τ``, same Hungarian cost with the score as tie-breaker) and Cellpose's
``cellpose.metrics.average_precision`` on sequential labels, but are computed faster:

* the overlap table is counted with one :func:`numpy.bincount` over a combined label index
  (no Python loop over objects, no dense ``n_true × n_pred`` cost matrix unless needed);
* for thresholds at which no object has two candidate partners (always the case for IoU > 0.5,
  where a partner is unique), the optimal matching *is* the set of candidate pairs, so TP and
  the summed matched score are read off directly; the Hungarian algorithm
  (:func:`scipy.optimize.linear_sum_assignment`) only runs on the connected groups of objects
  that do compete for partners, with StarDist's cost ``-(s >= τ) - s / (2 min(n_true, n_pred))``.

References
----------
Schmidt et al., "Cell detection with star-convex polygons", MICCAI 2018 (StarDist matching).
Caicedo et al., "Nucleus segmentation across imaging experiments: the 2018 Data Science Bowl",
Nat. Methods 16, 2019 (the TP/(TP+FP+FN) "average precision").
Kirillov et al., "Panoptic segmentation", CVPR 2019 (panoptic quality).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from cellrobust._validation import InputError, check_choice
from cellrobust.metrics.aggregate import ratio
from cellrobust.table import DEFAULT_THRESHOLDS

#: The default IoU thresholds are the results table's (:data:`cellrobust.table.
#: DEFAULT_THRESHOLDS`, 0.5:0.1:0.9, the studies' AP curves; the Neuromatch plot used the
#: same). ``STARDIST_THRESHOLDS`` is the finer StarDist/COCO range 0.50:0.05:0.95.
NEUROMATCH_THRESHOLDS: tuple[float, ...] = DEFAULT_THRESHOLDS
STARDIST_THRESHOLDS: tuple[float, ...] = tuple(
    float(round(t, 2)) for t in np.arange(0.5, 0.96, 0.05))
CRITERIA = ("iou", "iot", "iop")


@dataclass(frozen=True, eq=False)
class Overlap:
    """Sparse overlap table of two label images (objects renumbered 0..n-1, background dropped).

    Attributes
    ----------
    rows, cols : ndarray of int64, shape (k,)
        Index of the true / predicted object of each overlapping pair.
    inter : ndarray of int64, shape (k,)
        Pixels shared by the pair.
    area_true : ndarray of int64, shape (n_true,)
    area_pred : ndarray of int64, shape (n_pred,)
    """

    rows: np.ndarray
    cols: np.ndarray
    inter: np.ndarray
    area_true: np.ndarray
    area_pred: np.ndarray

    @property
    def n_true(self) -> int:
        return int(self.area_true.size)

    @property
    def n_pred(self) -> int:
        return int(self.area_pred.size)

    def scores(self, criterion: str = "iou") -> np.ndarray:
        """Score of every pair (float64): IoU, intersection over true or over predicted area."""
        inter = self.inter.astype(np.float64)
        if criterion == "iou":
            return inter / (self.area_true[self.rows] + self.area_pred[self.cols] - self.inter)
        if criterion == "iot":
            return inter / self.area_true[self.rows]
        if criterion == "iop":
            return inter / self.area_pred[self.cols]
        check_choice("criterion", criterion, CRITERIA)
        raise AssertionError  # pragma: no cover


def _flat_labels(labels: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """Flattened labels (validated: integer, >= 0) and their maximum."""
    flat = np.asarray(labels).ravel()
    if flat.dtype.kind == "b":
        flat = flat.view(np.uint8)
    if flat.dtype.kind not in "iu":
        raise InputError(f"{name}: expected integer labels, got dtype {flat.dtype}")
    if flat.size == 0:
        return flat, 0
    if flat.dtype.kind == "i" and flat.min() < 0:
        raise InputError(f"{name}: labels must be >= 0 (0 = background), got {flat.min()}")
    return flat, int(flat.max())


def _compact(flat: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber the ids of ``flat`` 0..m keeping 0 (for ids too large for a dense table)."""
    ids, inverse = np.unique(flat, return_inverse=True)
    if ids[0] != 0:
        inverse = inverse + 1
    return inverse.astype(np.intp, copy=False), int(inverse.max(initial=0))


def overlap(labels_true: np.ndarray, labels_pred: np.ndarray) -> Overlap:
    """Count the pixels every true object shares with every predicted object.

    One :func:`numpy.bincount` over the combined index ``true * (max_pred + 1) + pred`` gives
    the whole contingency table (areas are its margins); ids absent from an image are dropped,
    so labels need not be sequential. Very large ids are first compacted with
    :func:`numpy.unique`, and tables too large to hold densely are counted sparsely.

    Parameters
    ----------
    labels_true, labels_pred : ndarray of int, same shape (any number of dimensions)
        Instance labels, 0 = background.

    Returns
    -------
    Overlap
    """
    if np.shape(labels_true) != np.shape(labels_pred):
        raise InputError(
            f"labels_pred: shape {np.shape(labels_pred)} differs from labels_true "
            f"{np.shape(labels_true)}; the two label images must match pixel for pixel"
        )
    t, mt = _flat_labels(labels_true, "labels_true")
    p, mp = _flat_labels(labels_pred, "labels_pred")
    limit = 2 * t.size + 65536  # dense table at most ~16 bytes per pixel
    if (mt + 1) * (mp + 1) > limit:
        (t, mt), (p, mp) = _compact(t), _compact(p)
        if (mt + 1) * (mp + 1) > limit:
            return _sparse_overlap(t, mt, p, mp)
    key = t.astype(np.intp)
    key *= mp + 1
    key += p.astype(np.intp, copy=False)
    table = np.bincount(key, minlength=(mt + 1) * (mp + 1)).reshape(mt + 1, mp + 1)
    return _from_table(table)


def _from_table(table: np.ndarray) -> Overlap:
    area_t, area_p = table.sum(axis=1)[1:], table.sum(axis=0)[1:]
    inner = table[1:, 1:]
    rows, cols = np.nonzero(inner)
    inter = inner[rows, cols]
    keep_t, keep_p = area_t > 0, area_p > 0
    if not keep_t.all():
        rows = (np.cumsum(keep_t) - 1)[rows]
    if not keep_p.all():
        cols = (np.cumsum(keep_p) - 1)[cols]
    return Overlap(rows.astype(np.int64), cols.astype(np.int64), inter.astype(np.int64),
                   area_t[keep_t].astype(np.int64), area_p[keep_p].astype(np.int64))


def _sparse_overlap(t: np.ndarray, mt: int, p: np.ndarray, mp: int) -> Overlap:
    """Overlap of compacted labels (ids 0..m, all present) without a dense table."""
    area_t = np.bincount(t, minlength=mt + 1)[1:].astype(np.int64)
    area_p = np.bincount(p, minlength=mp + 1)[1:].astype(np.int64)
    both = (t > 0) & (p > 0)
    key = (t[both].astype(np.int64) - 1) * mp + (p[both] - 1)
    uniq, inter = np.unique(key, return_counts=True)
    rows, cols = np.divmod(uniq, mp)
    return Overlap(rows, cols, inter.astype(np.int64), area_t, area_p)


@dataclass(frozen=True, eq=False)
class MatchResult:
    """Counts of an optimal one-to-one matching at several thresholds, for one image.

    ``ap`` is the Data Science Bowl 2018 "average precision" TP / (TP + FP + FN) at each
    threshold — called *accuracy* by StarDist and *average precision* by Cellpose — and is
    **not** COCO's average precision (the area under the precision-recall curve).

    Attributes
    ----------
    thresholds : ndarray of float64, shape (T,)
    tp, fp, fn : ndarray of int64, shape (T,)
        Matched pairs with score >= τ; unmatched predicted; unmatched true objects.
    n_true, n_pred : int
        Objects in the true / predicted image (background never counts).
    sum_iou : ndarray of float64, shape (T,)
        Sum of the scores (IoU for ``criterion="iou"``) of the matched pairs.
    criterion : {"iou", "iot", "iop"}
    empty : float
        Value of every ratio when there is nothing to find and nothing found
        (``n_true == n_pred == 0``). Otherwise a ratio with TP = 0 is 0, as in StarDist.
        StarDist reports 0 and Cellpose NaN in that case.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    n_true: int
    n_pred: int
    sum_iou: np.ndarray
    criterion: str = "iou"
    empty: float = 1.0

    def _ratio(self, num, den) -> np.ndarray:
        return ratio(num, den, perfect=(self.n_true == 0 and self.n_pred == 0), empty=self.empty)

    def _scores(self) -> dict[str, np.ndarray]:
        return instance_scores(self.tp, self.fp, self.fn, empty=self.empty)

    @property
    def precision(self) -> np.ndarray:
        return self._scores()["precision"]

    @property
    def recall(self) -> np.ndarray:
        return self._scores()["recall"]

    @property
    def f1(self) -> np.ndarray:
        return self._scores()["f1"]

    @property
    def ap(self) -> np.ndarray:
        """TP / (TP + FP + FN) per threshold (DSB 2018 convention; not COCO AP)."""
        return self._scores()["ap"]

    @property
    def mean_iou(self) -> np.ndarray:
        """Mean score of the matched pairs (StarDist's ``mean_matched_score``)."""
        return self._ratio(self.sum_iou, self.tp)

    @property
    def mean_true_score(self) -> np.ndarray:
        """Summed matched score over the number of true objects (StarDist's name)."""
        return self._ratio(self.sum_iou, np.full(self.tp.shape, self.n_true))

    @property
    def pq(self) -> np.ndarray:
        """Panoptic quality: sum of matched scores / (TP + FP/2 + FN/2)."""
        return self._ratio(self.sum_iou, self.tp + 0.5 * self.fp + 0.5 * self.fn)

    def as_rows(self) -> list[dict]:
        """One dict per threshold with the counts and the derived scores (JSON-friendly)."""
        keys = ("precision", "recall", "f1", "ap", "mean_iou", "pq")
        derived = {k: getattr(self, k) for k in keys}
        return [
            {"threshold": float(t), "criterion": self.criterion, "tp": int(self.tp[i]),
             "fp": int(self.fp[i]), "fn": int(self.fn[i]), "n_true": self.n_true,
             "n_pred": self.n_pred, "sum_iou": float(self.sum_iou[i]),
             **{k: float(v[i]) for k, v in derived.items()}}
            for i, t in enumerate(self.thresholds)
        ]


def instance_scores(tp, fp, fn, *, empty: float = 1.0) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and AP from matched counts: the one home of these formulas.

    Parameters
    ----------
    tp, fp, fn : array-like of int, broadcastable (any shape: thresholds, images, replicates)
        Matched pairs, unmatched predictions, unmatched true objects.
    empty : float, default 1.0
        Every ratio where ``tp + fp + fn == 0`` (no true and no predicted object: nothing to
        find, nothing found). Elsewhere a 0 denominator gives 0.

    Returns
    -------
    dict of str to ndarray of float64
        ``precision`` TP/(TP+FP), ``recall`` TP/(TP+FN), ``f1`` 2TP/(2TP+FP+FN) and ``ap``
        TP/(TP+FP+FN) (Data Science Bowl 2018 "average precision", *not* COCO AP).
    """
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    perfect = (tp + fp + fn) == 0  # for one image: n_true == n_pred == 0
    return {"precision": ratio(tp, tp + fp, perfect=perfect, empty=empty),
            "recall": ratio(tp, tp + fn, perfect=perfect, empty=empty),
            "f1": ratio(2 * tp, 2 * tp + fp + fn, perfect=perfect, empty=empty),
            "ap": ratio(tp, tp + fp + fn, perfect=perfect, empty=empty)}


def _check_thresholds(thresholds) -> np.ndarray:
    thr = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if thr.ndim != 1 or thr.size == 0 or not np.all((thr > 0) & (thr <= 1)):
        raise InputError(f"thresholds: expected one or more values in (0, 1], got {thresholds!r}")
    return thr


def match(
    labels_true: np.ndarray,
    labels_pred: np.ndarray,
    *,
    thresholds=DEFAULT_THRESHOLDS,
    criterion: str = "iou",
    empty: float = 1.0,
) -> MatchResult:
    """Optimal one-to-one matching of predicted to true objects at each threshold.

    Parameters
    ----------
    labels_true, labels_pred : ndarray of int, same shape
        Instance labels (0 = background; ids need not be sequential, any non-negative ints).
    thresholds : float or sequence of float in (0, 1], default 0.5:0.1:0.9
        A pair counts as a true positive when its score is ``>= τ``.
    criterion : {"iou", "iot", "iop"}, default "iou"
        Pair score: intersection over union, over the true area, or over the predicted area.
    empty : float, default 1.0
        Ratio reported when both images have no object (see :class:`MatchResult`).

    Returns
    -------
    MatchResult
        Counts per threshold; ``.ap`` = TP / (TP + FP + FN) (DSB 2018, *not* COCO AP).

    Notes
    -----
    TP and the summed matched score equal those of ``stardist.matching.matching`` (which
    maximises the number of pairs with score ``>= τ``, ties broken by the summed score).
    """
    check_choice("criterion", criterion, CRITERIA)
    thr = _check_thresholds(thresholds)
    ov = overlap(labels_true, labels_pred)
    tp, sum_iou = _match_counts(ov, ov.scores(criterion), thr)
    return MatchResult(thr, tp, ov.n_pred - tp, ov.n_true - tp, ov.n_true, ov.n_pred,
                       sum_iou, criterion, float(empty))


def _match_counts(ov: Overlap, s: np.ndarray, thr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    above = s[None, :] >= thr[:, None]
    tp = above.sum(axis=1).astype(np.int64)
    sum_iou = (above * s[None, :]).sum(axis=1)
    contested = np.flatnonzero(thr <= _conflict_level(ov, s))
    if contested.size:
        comp = _components(ov)
        for i in contested:
            tp[i], sum_iou[i] = _hungarian_counts(ov, s, thr[i], comp)
    return tp, sum_iou


def _second_largest(group: np.ndarray, s: np.ndarray) -> float:
    """Largest over groups of the second-largest score within a group (-inf when none)."""
    if s.size < 2:
        return -np.inf
    order = np.lexsort((s, group))
    g, v = group[order], s[order]
    same = g[1:] == g[:-1]  # v[j] is not the group's first element: v[j-1] <= v[j] same group
    return float(v[:-1][same].max()) if same.any() else -np.inf


def _conflict_level(ov: Overlap, s: np.ndarray) -> float:
    """Thresholds above this level give every object at most one candidate partner."""
    return max(_second_largest(ov.rows, s), _second_largest(ov.cols, s))


def _components(ov: Overlap) -> np.ndarray:
    """Connected group of every object (true objects first) in the graph of overlapping pairs."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = ov.n_true + ov.n_pred
    graph = coo_matrix((np.ones(ov.rows.size), (ov.rows, ov.n_true + ov.cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _hungarian_counts(ov: Overlap, s: np.ndarray, t: float, comp: np.ndarray) -> tuple[int, float]:
    """TP and summed score at threshold ``t`` where some objects compete for partners.

    Groups of objects linked by overlaps are independent assignment problems (pairs across
    groups score 0), so the Hungarian algorithm runs only on the groups where an object has two
    or more candidates ``>= t``; elsewhere every candidate pair is matched.
    """
    n_t, n_p = ov.n_true, ov.n_pred
    pair_comp = comp[ov.rows]
    edge = s >= t
    deg_t = np.bincount(ov.rows[edge], minlength=n_t)
    deg_p = np.bincount(ov.cols[edge], minlength=n_p)
    busy = np.unique(np.concatenate([comp[:n_t][deg_t > 1], comp[n_t:][deg_p > 1]]))
    free = edge & ~np.isin(pair_comp, busy)
    tp, total = int(free.sum()), float(s[free].sum())
    n_matched = min(n_t, n_p)
    for c in busy:
        sel = pair_comp == c
        r_ids, r = np.unique(ov.rows[sel], return_inverse=True)
        c_ids, q = np.unique(ov.cols[sel], return_inverse=True)
        dense = np.zeros((r_ids.size, c_ids.size))
        dense[r, q] = s[sel]
        cost = -(dense >= t).astype(float) - dense / (2 * n_matched)
        ri, ci = linear_sum_assignment(cost)
        ok = dense[ri, ci] >= t
        tp += int(ok.sum())
        total += float(dense[ri, ci][ok].sum())
    return tp, total
