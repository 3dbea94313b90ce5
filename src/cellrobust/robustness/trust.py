"""Trusted range: how far along an artefact's severity grid a model keeps its clean score.

For one segmenter and artefact with clean score ``c`` (the raw clean reference rows when the
table has them - artefact ``"none"`` - else the artefact's own severity index 0) the
acceptance level is ``L = tolerance * c`` and/or the absolute ``floor`` (both given: the
larger). Walking the curve ``m`` in grid order (severity index 0, 1, ...), the trusted range
ends at the *first* grid point whose score falls below ``L``; between that point ``j`` and the
previous one the crossing is interpolated linearly in the severity value,
``x = x_{j-1} + (x_j - x_{j-1}) (m_{j-1} - L) / (m_{j-1} - m_j)``. Later recoveries of a
non-monotone curve are ignored (the model was not trustworthy in between). Three outcomes:

- ``"crossed"``: ``trusted`` is the interpolated severity;
- ``"reached_end"``: the metric never fell below ``L``; ``trusted`` is the last grid value,
  a lower bound (shown as "≥ x");
- ``"below_at_start"``: already below ``L`` at severity index 0 (e.g. a model broken by the
  studies' min-max rescale alone); ``trusted`` is the first grid value.

Where a grid value is not finite (Poisson's identity is infinite photons) the crossing is
not interpolated: ``trusted`` is the last grid value still accepted. For artefacts whose
parameter falls as the strength rises (Poisson photons, JPEG quality, contrast kept) the
"largest severity" is the furthest point along the grid, i.e. the smallest parameter value.

The interval repeats the computation on every replicate of the frame bootstrap
(:mod:`cellrobust.robustness.bootstrap`, the same replicates for every segmenter).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellrobust._validation import InputError, check_range
from cellrobust.robustness.bootstrap import DEFAULT_CI, DEFAULT_N_BOOT, interval
from cellrobust.robustness.curves import (CLEAN, _prepare, clean_replicates,
                                          group_replicates)

__all__ = ["TRUSTED_COLUMNS", "crossing", "trusted_range_table"]

TRUSTED_COLUMNS = ["segmenter", "artefact", "unit", "clean", "clean_lo", "clean_hi", "level",
                   "trusted", "ci_low", "ci_high", "reached_end", "status", "grid_start",
                   "grid_end", "n_frames", "clean_source", "metric", "tolerance", "floor"]


def crossing(x: np.ndarray, values: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Severity of the first downward crossing of ``level``, for many curves at once.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Severity values in grid order.
    values : ndarray, shape (n, k)
        ``k`` curves (point and bootstrap replicates) at those severities.
    level : ndarray, shape (k,)
        Acceptance level of each curve.

    Returns
    -------
    trusted : ndarray, shape (k,)
    status : ndarray of int, shape (k,)
        0 crossed, 1 reached the end, 2 below at the start (NaN values never count as below).
    """
    below = values < level[None, :]
    first = np.argmax(below, axis=0)
    status = np.where(~below.any(axis=0), 1, np.where(first == 0, 2, 0))
    j = np.clip(first, 1, len(x) - 1) if len(x) > 1 else np.zeros_like(first)
    cols = np.arange(values.shape[1])
    x0, x1 = x[j - 1], x[j]
    y0, y1 = values[j - 1, cols], values[j, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip((y0 - level) / (y0 - y1), 0.0, 1.0)
        inter = np.where(np.isfinite(x0) & np.isfinite(x1), x0 + (x1 - x0) * frac, x0)
    trusted = np.select([status == 1, status == 2], [x[-1], x[0]], inter)
    return trusted.astype(np.float64), status


def _check(tolerance, floor) -> None:
    if tolerance is None and floor is None:
        raise InputError("tolerance: give a tolerance (e.g. 0.9 of the clean score), an "
                         "absolute floor, or both; got neither")
    if tolerance is not None:
        check_range("tolerance", tolerance, low=0, high=1, low_inclusive=False)
    if floor is not None:
        check_range("floor", floor, low=0)


def _level(clean: np.ndarray, tolerance, floor) -> np.ndarray:
    parts = ([tolerance * clean] if tolerance is not None else []) + (
        [np.full_like(clean, float(floor))] if floor is not None else [])
    return np.maximum.reduce(parts)


STATUS = np.array(["crossed", "reached_end", "below_at_start"])


def trusted_range_table(table: pd.DataFrame, *, metric: str = "jaccard",
                        tolerance: float | None = 0.9, floor: float | None = None,
                        n_boot: int = DEFAULT_N_BOOT, seed: int = 0, average: str = "micro",
                        ci: float = DEFAULT_CI) -> pd.DataFrame:
    """Trusted range per segmenter and artefact (see the module docstring for the rule).

    Parameters
    ----------
    table : DataFrame
        The tidy results table (:mod:`cellrobust.table`).
    metric : str
        Higher-is-better metric (``"jaccard"``, ``"ap@0.50"``, ...).
    tolerance : float in (0, 1] or None
        Fraction of the segmenter's own clean score that must be kept.
    floor : float or None
        Absolute score that must be kept (metric units).
    n_boot : int
        Frame resamples for ``ci_low``/``ci_high`` (0 = none, NaN).
    seed : int
    average : {"micro", "macro"}
    ci : float in (0, 1)

    Returns
    -------
    DataFrame
        One row per segmenter x artefact (raw clean rows excluded): ``segmenter, artefact,
        unit, clean, clean_lo, clean_hi, level`` (the acceptance level), ``trusted`` (severity
        in the artefact's unit), ``ci_low, ci_high, reached_end`` (True: ``trusted`` is a lower
        bound, "≥"), ``status`` ("crossed" | "reached_end" | "below_at_start"), ``grid_start,
        grid_end, n_frames, clean_source`` ("none" or "level 0"), ``metric, tolerance,
        floor``.
    """
    _check(tolerance, floor)
    boot = _prepare(table, n_boot, ci, seed)
    rep = group_replicates(table, metric, boot, average=average)
    clean = clean_replicates(rep)
    both, keys = rep.both(), rep.keys
    source = CLEAN if (keys["artefact"] == CLEAN).any() else "level 0"
    rows = []
    for (seg, art), grp in keys[keys["artefact"] != CLEAN].groupby(["segmenter", "artefact"]):
        grp = grp.sort_values("severity_index")
        x = grp["severity"].to_numpy(np.float64)
        c = clean[(seg, art)]
        level = _level(c, tolerance, floor)
        trusted, status = crossing(x, both[grp.index.to_numpy()], level)
        lo, hi = interval(trusted[1:], ci)
        c_lo, c_hi = interval(c[1:], ci)
        rows.append([seg, art, grp["unit"].iloc[0], c[0], float(c_lo), float(c_hi), level[0],
                     trusted[0], float(lo), float(hi), bool(status[0] == 1),
                     STATUS[status[0]], x[0], x[-1], int(grp["n_frames"].min()), source,
                     metric, tolerance, floor])
    return pd.DataFrame(rows, columns=TRUSTED_COLUMNS)
