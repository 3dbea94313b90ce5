"""Robustness scores computed from the tidy results table (never stored instead of it).

Every score is derived from the per-image counts of the results table
(:mod:`cellrobust.table`): one row per segmenter x artefact x severity x image. The formulas
are those of :mod:`cellrobust.metrics` (pixel ratios, instance AP/F1, count ratio) with its
one 0/0 rule: a ratio whose denominator is 0 is 1.0 when nothing was to be found and nothing
was found, else 0.

Averaging is explicit: ``"micro"`` pools the counts of all images of a group before taking the
ratio (default); ``"macro"`` takes the ratio per image and averages.

Clean reference: when the table holds the raw clean rows (artefact ``"none"``, severity index
0, severity 0.0), they are the clean score of every artefact; otherwise each artefact's
severity index 0 is (for illumination and noise that is the studies' min-max rescaled image).
The ``"none"`` rows are never part of a per-artefact curve.

Intervals: one frame-resampling bootstrap (:mod:`~cellrobust.robustness.bootstrap`) for every
score - clean, mPC, rPC, AUC, CE, trusted range and paired differences - with the same
replicates for every segmenter; significance is assessed only with at least ``MIN_FRAMES``
independent frames.

Modules: :mod:`~.columns` (metric -> columns and formula), :mod:`~.bootstrap`,
:mod:`~.curves` (curves, paired differences, AP vs IoU), :mod:`~.scores` (clean, mPC, rPC,
AUC, worst, CE, relative CE, with guards), :mod:`~.trust` (trusted range).
"""

from cellrobust.robustness.bootstrap import (DEFAULT_CI, DEFAULT_N_BOOT, MIN_FRAMES,
                                             FrameBootstrap, frame_bootstrap, interval)
from cellrobust.robustness.columns import (METRICS, compute_metric, metric_columns,
                                           metric_names)
from cellrobust.robustness.curves import CLEAN, ap_curve, curves, paired_differences
from cellrobust.robustness.scores import (MIN_CLEAN, MIN_REF_DROP, MIN_REF_ERROR, SCORE_NAMES,
                                          scores)
from cellrobust.robustness.trust import crossing, trusted_range_table

__all__ = [
    "CLEAN", "DEFAULT_CI", "DEFAULT_N_BOOT", "METRICS", "MIN_CLEAN", "MIN_FRAMES",
    "MIN_REF_DROP", "MIN_REF_ERROR", "SCORE_NAMES", "FrameBootstrap", "ap_curve",
    "compute_metric", "crossing", "curves", "frame_bootstrap", "interval", "metric_columns",
    "metric_names", "paired_differences", "scores", "trusted_range_table",
]
