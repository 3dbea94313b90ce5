"""Matching over a data set: pooled (micro) or per-image averaged (macro) scores.

``average="micro"`` pools TP/FP/FN and summed IoU over the images, then forms the ratios
(StarDist's ``matching_dataset`` default); ``average="macro"`` averages the per-image scores
(Cellpose's per-image AP, StarDist's ``by_image=True``). Per-image 0/0 follows ``empty``
(see :class:`~cellrobust.metrics.instance.MatchResult`); NaN images drop out of a macro mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellrobust._validation import InputError, check_choice
from cellrobust.metrics.aggregate import AVERAGES, macro_mean
from cellrobust.metrics.instance import DEFAULT_THRESHOLDS, MatchResult, match


@dataclass(frozen=True, eq=False)
class DatasetMatch:
    """Matching scores over a data set, per threshold.

    Attributes
    ----------
    average : {"micro", "macro"}
        ``micro``: scores of the pooled counts (StarDist ``matching_dataset`` default);
        ``macro``: mean of the per-image scores (Cellpose, StarDist ``by_image=True``).
    pooled : MatchResult
        Counts summed over the images (``tp``, ``fp``, ``fn``, ``n_true``, ``n_pred``,
        ``sum_iou``), whatever the average.
    per_image : tuple of MatchResult
    scores : dict of str to ndarray, shape (T,)
        ``precision``, ``recall``, ``f1``, ``ap`` (TP/(TP+FP+FN), *not* COCO AP), ``mean_iou``,
        ``mean_true_score``, ``pq``.
    """

    average: str
    pooled: MatchResult
    per_image: tuple
    scores: dict

    @property
    def thresholds(self) -> np.ndarray:
        return self.pooled.thresholds

    def __getattr__(self, name: str):
        scores = self.__dict__.get("scores", {})
        if name in scores:
            return scores[name]
        raise AttributeError(name)

    def as_rows(self) -> list[dict]:
        """One dict per threshold: pooled counts plus the ``average``d scores."""
        rows = self.pooled.as_rows()
        for i, row in enumerate(rows):
            row.update({k: float(v[i]) for k, v in self.scores.items()}, average=self.average)
        return rows


SCORE_NAMES = ("precision", "recall", "f1", "ap", "mean_iou", "mean_true_score", "pq")


def pool(results) -> MatchResult:
    """Sum the counts of several :class:`MatchResult` (same thresholds and criterion)."""
    first = results[0]
    for r in results[1:]:
        if r.criterion != first.criterion or not np.array_equal(r.thresholds, first.thresholds):
            raise InputError(
                "results: every MatchResult must use the same thresholds and criterion, got "
                f"{list(first.thresholds)} ({first.criterion}) and {list(r.thresholds)} "
                f"({r.criterion})")
    return MatchResult(
        first.thresholds,
        sum(r.tp for r in results), sum(r.fp for r in results), sum(r.fn for r in results),
        sum(r.n_true for r in results), sum(r.n_pred for r in results),
        sum(r.sum_iou for r in results), first.criterion, first.empty,
    )


def match_dataset(
    pairs,
    *,
    thresholds=DEFAULT_THRESHOLDS,
    criterion: str = "iou",
    average: str = "micro",
    empty: float = 1.0,
) -> DatasetMatch:
    """Match every ``(labels_true, labels_pred)`` pair and summarise over the data set.

    Parameters
    ----------
    pairs : iterable of (ndarray, ndarray) or of MatchResult
        Label image pairs (see :func:`match`), or results already computed.
    thresholds, criterion, empty
        As in :func:`match`.
    average : {"micro", "macro"}, default "micro"
        Pool the counts (StarDist's default) or average the per-image scores (Cellpose's).

    Returns
    -------
    DatasetMatch
    """
    check_choice("average", average, AVERAGES)
    results = tuple(
        p if isinstance(p, MatchResult)
        else match(p[0], p[1], thresholds=thresholds, criterion=criterion, empty=empty)
        for p in pairs
    )
    if not results:
        raise InputError("pairs: expected at least one (labels_true, labels_pred) pair, got none")
    pooled = pool(results)
    if average == "micro":
        scores = {k: getattr(pooled, k) for k in SCORE_NAMES}
    else:
        scores = {k: macro_mean([getattr(r, k) for r in results]) for k in SCORE_NAMES}
    return DatasetMatch(average, pooled, results, scores)
