"""Which results-table columns each metric sums, and the :mod:`cellrobust.metrics` formula
that turns the summed columns into the metric.

No formula lives here: pixel scores come from :func:`cellrobust.metrics.scores_from_counts`,
instance AP/F1 from :func:`cellrobust.metrics.instance_scores`, the count ratio from
:func:`cellrobust.metrics.count_ratio`, all with the package's one 0/0 rule (``empty = 1.0``
when nothing was to be found and nothing was found, else 0; see
:mod:`cellrobust.metrics.aggregate`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from cellrobust import table as schema
from cellrobust._validation import check_choice
from cellrobust.metrics import count_ratio, instance_scores, scores_from_counts

__all__ = ["AVERAGES", "MEAN_METRICS", "METRICS", "average_for", "compute_metric",
           "metric_columns", "metric_names"]

AVERAGES = ("micro", "macro")
PIXEL = ("tp_px", "fp_px", "fn_px", "tn_px")


def _pixel(name: str) -> Callable:
    def score(c):
        tp, fp, fn, tn = c
        return scores_from_counts({"tp": tp, "fp": fp, "fn": fn, "tn": tn})[name]
    return score


def _mean_count(c):
    return np.asarray(c[0], dtype=np.float64)


#: name -> (columns summed per group, function of the summed columns, description)
METRICS: dict[str, tuple[tuple[str, ...], Callable, str]] = {
    "accuracy": (PIXEL, _pixel("accuracy"), "pixel accuracy (TP+TN)/(TP+FP+FN+TN)"),
    "background_accuracy": (PIXEL, _pixel("background_accuracy"),
                            "accuracy of an all-background prediction"),
    "jaccard": (PIXEL, _pixel("jaccard"), "foreground pixel IoU TP/(TP+FP+FN)"),
    "dice": (PIXEL, _pixel("dice"), "foreground pixel Dice 2TP/(2TP+FP+FN)"),
    "precision": (PIXEL, _pixel("precision"), "pixel precision TP/(TP+FP)"),
    "recall": (PIXEL, _pixel("recall"), "pixel recall TP/(TP+FN)"),
    "count_ratio": (("count_true", "count_pred"), lambda c: count_ratio(c[0], c[1]),
                    "predicted / true cell count"),
    "count_pred": (("count_pred",), _mean_count, "predicted cells per image"),
    "count_true": (("count_true",), _mean_count, "true cells per image"),
}

#: metrics that are per-image means whatever the requested averaging (counts per image)
MEAN_METRICS = frozenset({"count_pred", "count_true"})


def average_for(metric: str, average: str) -> str:
    """The averaging actually used: cells per image are always a per-image (macro) mean."""
    check_choice("average", average, AVERAGES)
    return "macro" if metric in MEAN_METRICS else average


def _instance_metric(kind: str, t: str):
    cols = (f"tp@{t}", f"fp@{t}", f"fn@{t}")

    def score(c):
        return instance_scores(*c)[kind]

    return cols, score, f"instance {kind.upper()} at IoU >= {t}"


def metric_names(table: pd.DataFrame | None = None) -> list[str]:
    """Every metric name :func:`compute_metric` accepts (``ap@0.50`` etc. need a table)."""
    names = list(METRICS)
    if table is not None:
        for t in schema.thresholds_in(table.columns):
            names += [f"ap@{t}", f"f1@{t}"]
    return names


def metric_columns(metric: str, table: pd.DataFrame | None = None):
    """Return ``(columns, function, description)`` for ``metric``."""
    if metric in METRICS:
        return METRICS[metric]
    kind, _, t = str(metric).partition("@")
    if kind in ("ap", "f1") and table is not None and t in schema.thresholds_in(table.columns):
        return _instance_metric(kind, t)
    check_choice("metric", metric, metric_names(table))
    raise AssertionError  # unreachable: check_choice raised


def compute_metric(counts: pd.DataFrame, metric: str, *, average: str = "micro") -> float:
    """One metric over the rows of ``counts`` (the images of one group).

    ``"micro"`` sums the counts of all rows, then applies the formula; ``"macro"`` applies it
    per row and averages. Equal, by construction, to :func:`cellrobust.metrics.pixel_scores` /
    :func:`cellrobust.metrics.match_dataset` on the same counts.
    """
    cols, func, _ = metric_columns(metric, counts)
    average = average_for(metric, average)
    values = counts[list(cols)].to_numpy(dtype=np.float64)
    if average == "micro":
        return float(func(tuple(values.sum(axis=0))))
    return float(np.mean(func(tuple(values.T))))
