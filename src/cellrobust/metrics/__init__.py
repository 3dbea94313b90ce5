"""Segmentation metrics: pixel scores, cell counts, instance matching, CTC SEG, PR curves.

Count first, summarise second: per image the functions return counts, and averaging
(``micro`` pools counts, ``macro`` averages per-image scores) and the 0/0 rule are explicit
arguments (see :mod:`cellrobust.metrics.aggregate`).

The instance "AP" (:attr:`MatchResult.ap`) is TP / (TP + FP + FN) at an IoU threshold, the
Data Science Bowl 2018 convention used by StarDist ("accuracy") and Cellpose — not COCO's area
under the precision-recall curve.
"""

from cellrobust.metrics.aggregate import AVERAGES, count_ratio, macro_mean, ratio, summarise
from cellrobust.metrics.counts import count_cells, count_error, count_objects
from cellrobust.metrics.dataset import DatasetMatch, match_dataset, pool
from cellrobust.metrics.instance import (
    CRITERIA,
    DEFAULT_THRESHOLDS,
    NEUROMATCH_THRESHOLDS,
    STARDIST_THRESHOLDS,
    MatchResult,
    Overlap,
    instance_scores,
    match,
    overlap,
)
from cellrobust.metrics.pixel import pixel_counts, pixel_scores, scores_from_counts
from cellrobust.metrics.pr import PRCurve, pr_curve
from cellrobust.metrics.seg import SegCounts, seg_dataset, seg_score

__all__ = [
    "AVERAGES", "CRITERIA", "DEFAULT_THRESHOLDS", "NEUROMATCH_THRESHOLDS", "STARDIST_THRESHOLDS",
    "DatasetMatch", "MatchResult", "Overlap", "PRCurve", "SegCounts", "count_cells",
    "count_error", "count_objects", "count_ratio", "instance_scores", "macro_mean", "match",
    "match_dataset", "overlap", "pixel_counts", "pixel_scores", "pool", "pr_curve", "ratio",
    "scores_from_counts", "seg_dataset", "seg_score", "summarise",
]
