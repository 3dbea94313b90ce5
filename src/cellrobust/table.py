"""The results-table schema: one home for its columns and for the counts of one image.

Every table cellrobust writes - a sweep's ``results.parquet``, ``cellrobust evaluate``'s
``per_image.csv`` - has one row per segmenter x (artefact, severity) x image with *counts*, never
averages, so any summary (micro or macro, any IoU threshold) is computed later from the same
numbers (:mod:`cellrobust.metrics.aggregate`, :mod:`cellrobust.robustness`).

Columns
-------
``segmenter, artefact, severity_index, severity, unit, sample, params``
    What was segmented: ``params`` is the JSON of the drawn artefact parameters (any row can be
    regenerated alone); ``sample`` names the image (``<frame>/p<i>`` for a crop of a frame).
``tp_px, fp_px, fn_px, tn_px``
    Pixel counts of foreground (labels > 0).
``n_true, n_pred``
    Instances (distinct labels) in the reference and the prediction.
``count_true, count_pred``
    Cell counts: instance labels when the reference has real instances, else connected
    components (:func:`cellrobust.metrics.count_cells`).
``tp@τ, fp@τ, fn@τ, sum_iou@τ``
    Instance matching at IoU ≥ τ (τ with 2 decimals), :func:`cellrobust.metrics.match`.
``runtime_s``
    Seconds of segmentation per image (a measurement: the only column that differs between
    two runs of one sweep).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["BASE_COLUMNS", "CLEAN", "COUNT_COLUMNS", "DEFAULT_THRESHOLDS", "SORT_KEYS",
           "frame_of", "tau", "threshold_columns", "thresholds_in"]

#: The ``artefact`` of the raw clean reference rows: each image as read, no artefact and no
#: rescale - the "clean" of every score (severity index 0, severity 0, unit "none").
CLEAN = "none"
#: The IoU thresholds of the studies' AP curves (0.5:0.1:0.9).
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
COUNT_COLUMNS = ("tp_px", "fp_px", "fn_px", "tn_px", "n_true", "n_pred", "count_true",
                 "count_pred")
BASE_COLUMNS = ("segmenter", "artefact", "severity_index", "severity", "unit", "sample",
                "params", *COUNT_COLUMNS, "runtime_s")
SORT_KEYS = ["artefact", "severity_index", "segmenter", "sample"]
_THRESHOLD_COLUMN = re.compile(r"^tp@(\d\.\d\d)$")
_PATCH_SUFFIX = re.compile(r"/(p|w)\d+$")


def tau(t: float) -> str:
    """The column spelling of an IoU threshold: ``0.5 -> "0.50"``."""
    return f"{float(t):.2f}"


def threshold_columns(thresholds: Iterable[float]) -> list[str]:
    """``tp@τ, fp@τ, fn@τ, sum_iou@τ`` for every τ, in that order."""
    return [f"{k}@{tau(t)}" for t in thresholds for k in ("tp", "fp", "fn", "sum_iou")]


def thresholds_in(columns: Iterable[str]) -> list[str]:
    """The τ spellings (``"0.50"``, ...) present in a table's columns, ascending."""
    found = (m.group(1) for m in map(_THRESHOLD_COLUMN.match, map(str, columns)) if m)
    return sorted(set(found), key=float)


def frame_of(sample: str) -> str:
    """The frame a sample came from: ``"seq/t001/p3" -> "seq/t001"`` (patches ``/pN`` and
    frame-level windows ``/wN``); a whole frame is its own frame. Bootstraps resample frames,
    since the patches of one frame are not independent."""
    return _PATCH_SUFFIX.sub("", str(sample))
