"""Robustness scores computed from the tidy results table (never stored instead of it).

Every score is derived from the per-image counts of the results table (see
:mod:`cellrobust.sweep` and ``docs/CONTRACTS.md``): one row per segmenter x artefact x
severity x image. Metrics are ratios of summed counts.

Averaging is explicit: ``"micro"`` pools the counts of all images of a group before taking the
ratio (the default, robust to images with few cells); ``"macro"`` takes the ratio per image
and averages. The 0/0 rule: a ratio whose numerator *and* denominator are 0 is 1.0 when the
truth and the prediction are both empty (nothing to find, nothing found) and 0.0 otherwise.

Scores (for one segmenter and one artefact, metric ``m``, severity levels ``s = 1..S``):

- ``clean``  - ``m`` at severity index 0 (the unmodified images).
- ``mpc``    - mean performance under corruption, ``mean_s m_s`` (Michaelis et al. 2019).
- ``rpc``    - relative performance under corruption, ``mpc / clean``.
- ``auc``    - area under the degradation curve over the severity index scaled to [0, 1]
  (trapezoids, includes the clean point), divided by ``clean``: 1.0 = no degradation.
- ``ce``     - corruption error ``sum_s (1 - m_s) / sum_s (1 - m_s^ref)`` relative to a
  reference segmenter (Hendrycks & Dietterich 2019, ImageNet-C; the reference plays AlexNet's
  role, default DoG+Otsu). Below 1 = fewer errors than the reference.
- ``rel_ce`` - relative corruption error ``sum_s (m_0 - m_s) / sum_s (m^ref_0 - m^ref_s)``:
  the degradation relative to the reference's degradation.

Confidence intervals are percentile bootstraps that resample images (the same resampled image
sets for every segmenter, so paired differences are paired).

References
----------
Michaelis C. et al. (2019) Benchmarking robustness in object detection. arXiv:1907.07484.
Hendrycks D., Dietterich T. (2019) Benchmarking neural network robustness to common
corruptions and perturbations. ICLR.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from cellrobust._rng import derive_rng
from cellrobust._validation import DataError, InputError, check_choice, check_range

__all__ = [
    "METRICS",
    "ap_curve",
    "compute_metric",
    "curves",
    "metric_columns",
    "metric_names",
    "paired_differences",
    "scores",
]

PIXEL = ("tp_px", "fp_px", "fn_px", "tn_px")


def _ratio(num: np.ndarray, den: np.ndarray, both_empty: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1), np.where(both_empty, 1.0, 0.0))
    return out


def _accuracy(c):
    tp, fp, fn, tn = c
    return _ratio(tp + tn, tp + fp + fn + tn, np.zeros_like(tp, dtype=bool))


def _bg_accuracy(c):
    tp, fp, fn, tn = c
    return _ratio(fp + tn, tp + fp + fn + tn, np.zeros_like(tp, dtype=bool))


def _jaccard(c):
    tp, fp, fn, _ = c
    return _ratio(tp, tp + fp + fn, (tp + fp + fn) == 0)


def _dice(c):
    tp, fp, fn, _ = c
    return _ratio(2 * tp, 2 * tp + fp + fn, (tp + fp + fn) == 0)


def _precision(c):
    tp, fp, fn, _ = c
    return _ratio(tp, tp + fp, (tp + fp + fn) == 0)


def _recall(c):
    tp, fp, fn, _ = c
    return _ratio(tp, tp + fn, (tp + fp + fn) == 0)


def _count_ratio(c):
    true, pred = c
    return _ratio(pred, true, (true + pred) == 0)


#: name -> (columns summed per group, function of those sums, description)
METRICS: dict[str, tuple[tuple[str, ...], Callable, str]] = {
    "accuracy": (PIXEL, _accuracy, "pixel accuracy (TP+TN)/(TP+FP+FN+TN)"),
    "background_accuracy": (PIXEL, _bg_accuracy, "accuracy of an all-background prediction"),
    "jaccard": (PIXEL, _jaccard, "foreground pixel IoU TP/(TP+FP+FN)"),
    "dice": (PIXEL, _dice, "foreground pixel Dice 2TP/(2TP+FP+FN)"),
    "precision": (PIXEL, _precision, "pixel precision TP/(TP+FP)"),
    "recall": (PIXEL, _recall, "pixel recall TP/(TP+FN)"),
    "count_ratio": (("count_true", "count_pred"), _count_ratio, "predicted / true cell count"),
    "count_pred": (("count_pred",), lambda c: np.asarray(c[0], float), "predicted cell count"),
    "count_true": (("count_true",), lambda c: np.asarray(c[0], float), "true cell count"),
}


#: metrics that are per-image means whatever the requested averaging (counts per image)
MEAN_METRICS = frozenset({"count_pred", "count_true"})


def _average_for(metric: str, average: str) -> str:
    return "macro" if metric in MEAN_METRICS else average


def _instance_metric(kind: str, tau: str):
    cols = (f"tp@{tau}", f"fp@{tau}", f"fn@{tau}")

    def ap(c):
        tp, fp, fn = c
        return _ratio(tp, tp + fp + fn, (tp + fp + fn) == 0)

    def f1(c):
        tp, fp, fn = c
        return _ratio(2 * tp, 2 * tp + fp + fn, (tp + fp + fn) == 0)

    return cols, (ap if kind == "ap" else f1), f"instance {kind.upper()} at IoU >= {tau}"


def thresholds_in(table: pd.DataFrame) -> list[str]:
    """The IoU thresholds of a table as 2-decimal strings (from its ``tp@t`` columns)."""
    return sorted(c[3:] for c in table.columns if c.startswith("tp@"))


def metric_names(table: pd.DataFrame | None = None) -> list[str]:
    """Every metric name :func:`compute_metric` accepts (``ap@0.50`` etc. need a table)."""
    names = list(METRICS)
    if table is not None:
        for tau in thresholds_in(table):
            names += [f"ap@{tau}", f"f1@{tau}"]
    return names


def metric_columns(metric: str, table: pd.DataFrame | None = None):
    """Return ``(columns, function, description)`` for ``metric``."""
    if metric in METRICS:
        return METRICS[metric]
    kind, _, tau = metric.partition("@")
    if kind in ("ap", "f1") and table is not None and tau in thresholds_in(table):
        return _instance_metric(kind, tau)
    check_choice("metric", metric, metric_names(table))
    raise AssertionError  # unreachable


def compute_metric(counts: pd.DataFrame, metric: str, *, average: str = "micro") -> float:
    """One metric over the rows of ``counts`` (images of one group), micro or macro."""
    check_choice("average", average, ("micro", "macro"))
    cols, func, _ = metric_columns(metric, counts)
    average = _average_for(metric, average)
    values = counts[list(cols)].to_numpy(dtype=float)
    if average == "micro":
        return float(func(tuple(values.sum(axis=0))))
    return float(np.mean(func(tuple(values.T))))


def _boot_values(values: np.ndarray, func, idx: np.ndarray | None, average: str):
    """Point estimate and bootstrap replicates; values (n_images, n_cols)."""
    if average == "micro":
        point = float(func(tuple(values.sum(axis=0))))
        reps = None if idx is None else func(tuple(values[idx].sum(axis=1).T))
    else:
        per = func(tuple(values.T))
        point = float(per.mean())
        reps = None if idx is None else per[idx].mean(axis=1)
    return point, reps


def _validate(table: pd.DataFrame, n_boot: int, ci: float) -> None:
    need = {"segmenter", "artefact", "severity_index", "severity", "sample"}
    missing = sorted(need - set(table.columns))
    if missing:
        raise DataError(f"results table: missing columns {missing}; is this a cellrobust table?")
    if table.empty:
        raise DataError("results table: no rows; the sweep selected nothing")
    if int(n_boot) < 0:
        raise InputError(f"n_boot: expected an integer >= 0, got {n_boot!r}")
    check_range("ci", ci, low=0, high=1, low_inclusive=False, high_inclusive=False)


def _groups(table: pd.DataFrame):
    """Yield (artefact, severity_index, severity, {segmenter: rows sorted by sample})."""
    for (art, sidx), grp in table.groupby(["artefact", "severity_index"], sort=True):
        by_seg = {s: g.sort_values("sample") for s, g in grp.groupby("segmenter", sort=True)}
        yield art, int(sidx), float(grp["severity"].iloc[0]), by_seg


def curves(
    table: pd.DataFrame,
    metric: str = "jaccard",
    *,
    average: str = "micro",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Metric-vs-severity curves with percentile-bootstrap confidence intervals.

    Parameters
    ----------
    table : DataFrame
        The tidy results table.
    metric : str
        A name from :func:`metric_names` (e.g. ``"jaccard"``, ``"accuracy"``, ``"ap@0.50"``).
    average : {"micro", "macro"}
        Pool counts over images (micro) or average per-image values (macro).
    n_boot : int
        Bootstrap replicates resampling images (0 = no interval, ``lo``/``hi`` are NaN).
    ci : float
        Coverage of the interval in (0, 1).
    seed : int
        Root of the resampling streams; replicate ``b`` uses the same images for every
        segmenter at a given artefact and severity (paired).

    Returns
    -------
    DataFrame
        Columns ``segmenter, artefact, severity_index, severity, metric, value, lo, hi,
        n_images``, sorted.
    """
    _validate(table, n_boot, ci)
    check_choice("average", average, ("micro", "macro"))
    cols, func, _ = metric_columns(metric, table)
    average = _average_for(metric, average)
    rows = []
    for art, sidx, sev, by_seg in _groups(table):
        idx = _resample(by_seg, n_boot, seed, art, sidx)
        for seg, rows_seg in by_seg.items():
            point, reps = _boot_values(rows_seg[list(cols)].to_numpy(float), func, idx, average)
            lo, hi = _interval(reps, ci)
            rows.append((seg, art, sidx, sev, metric, point, lo, hi, len(rows_seg)))
    out = pd.DataFrame(
        rows,
        columns=["segmenter", "artefact", "severity_index", "severity", "metric", "value", "lo",
                 "hi", "n_images"],
    )
    return out.sort_values(["artefact", "segmenter", "severity_index"], ignore_index=True)


def _resample(by_seg, n_boot: int, seed: int, art: str, sidx: int) -> np.ndarray | None:
    sizes = {len(g) for g in by_seg.values()}
    if n_boot == 0:
        return None
    n = max(sizes)
    return derive_rng(seed, "bootstrap", art, sidx).integers(0, n, size=(int(n_boot), n))


def _interval(reps: np.ndarray | None, ci: float) -> tuple[float, float]:
    if reps is None or len(reps) == 0:
        return float("nan"), float("nan")
    alpha = (1 - ci) / 2
    lo, hi = np.quantile(reps, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _score_row(curve: pd.DataFrame) -> dict:
    curve = curve.sort_values("severity_index")
    values = curve["value"].to_numpy(float)
    clean = values[0]
    corrupted = values[1:] if len(values) > 1 else values
    x = curve["severity_index"].to_numpy(float)
    x = (x - x[0]) / (x[-1] - x[0]) if x[-1] > x[0] else np.zeros_like(x)
    area = float(np.trapezoid(values, x)) if len(values) > 1 else float(clean)
    mpc = float(np.mean(corrupted))
    return {
        "clean": float(clean),
        "mpc": mpc,
        "rpc": mpc / clean if clean > 0 else float("nan"),
        "auc": area / clean if clean > 0 else float("nan"),
        "worst": float(np.min(values)),
        "_err": float(np.sum(1 - corrupted)),
        "_drop": float(np.sum(clean - corrupted)),
    }


def scores(
    table: pd.DataFrame,
    metric: str = "jaccard",
    *,
    reference: str | None = "dog_otsu",
    average: str = "micro",
) -> pd.DataFrame:
    """Summary robustness scores per segmenter and artefact (see the module docstring).

    Parameters
    ----------
    table : DataFrame
        The tidy results table.
    metric : str
        Metric whose degradation is scored (higher = better, in [0, 1] for CE to make sense).
    reference : str or None
        Segmenter in AlexNet's role for ``ce`` / ``rel_ce`` (NaN when absent or None).
    average : {"micro", "macro"}

    Returns
    -------
    DataFrame
        Columns ``segmenter, artefact, metric, clean, mpc, rpc, auc, worst, ce, rel_ce``; one
        extra row per segmenter with ``artefact == "mean"`` averaging over artefacts
        (``ce`` there is the mCE, ``rel_ce`` the relative mCE).
    """
    curve = curves(table, metric, average=average, n_boot=0)
    rows = []
    for (seg, art), grp in curve.groupby(["segmenter", "artefact"], sort=True):
        rows.append({"segmenter": seg, "artefact": art, "metric": metric, **_score_row(grp)})
    out = pd.DataFrame(rows)
    out["ce"] = np.nan
    out["rel_ce"] = np.nan
    if reference is not None and reference in set(out["segmenter"]):
        ref = out[out["segmenter"] == reference].set_index("artefact")
        for i, row in out.iterrows():
            if row["artefact"] in ref.index:
                r = ref.loc[row["artefact"]]
                out.loc[i, "ce"] = _safe_div(row["_err"], r["_err"])
                out.loc[i, "rel_ce"] = _safe_div(row["_drop"], r["_drop"])
    out = out.drop(columns=["_err", "_drop"])
    means = out.groupby("segmenter", sort=True).mean(numeric_only=True).reset_index()
    means["artefact"] = "mean"
    means["metric"] = metric
    out = pd.concat([out, means[out.columns]], ignore_index=True)
    return out


def _safe_div(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def paired_differences(
    table: pd.DataFrame,
    a: str,
    b: str,
    metric: str = "jaccard",
    *,
    average: str = "micro",
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Difference ``metric(a) - metric(b)`` per artefact and severity, with a paired bootstrap.

    Both segmenters are evaluated on the same corrupted images; each replicate resamples image
    *names* once and uses them for both, so the interval reflects the paired design.
    ``significant`` is True when the interval excludes 0.

    Returns
    -------
    DataFrame
        Columns ``artefact, severity_index, severity, a, b, metric, diff, lo, hi, significant,
        n_images``.
    """
    _validate(table, n_boot, ci)
    segs = sorted(set(table["segmenter"]))
    check_choice("a", a, segs)
    check_choice("b", b, segs)
    cols, func, _ = metric_columns(metric, table)
    average = _average_for(metric, average)
    rows = []
    for art, sidx, sev, by_seg in _groups(table):
        if a not in by_seg or b not in by_seg:
            continue
        ra, rb = by_seg[a].set_index("sample"), by_seg[b].set_index("sample")
        common = sorted(set(ra.index) & set(rb.index))
        va = ra.loc[common, list(cols)].to_numpy(float)
        vb = rb.loc[common, list(cols)].to_numpy(float)
        idx = derive_rng(seed, "paired", art, sidx).integers(0, len(common), (int(n_boot), len(common)))
        pa, reps_a = _boot_values(va, func, idx if n_boot else None, average)
        pb, reps_b = _boot_values(vb, func, idx if n_boot else None, average)
        lo, hi = _interval(None if reps_a is None else reps_a - reps_b, ci)
        sig = bool(lo > 0 or hi < 0) if np.isfinite(lo) else False
        rows.append((art, sidx, sev, a, b, metric, pa - pb, lo, hi, sig, len(common)))
    return pd.DataFrame(
        rows,
        columns=["artefact", "severity_index", "severity", "a", "b", "metric", "diff", "lo",
                 "hi", "significant", "n_images"],
    )


def ap_curve(table: pd.DataFrame, *, average: str = "micro") -> pd.DataFrame:
    """AP (TP/(TP+FP+FN)) against IoU threshold per segmenter, artefact and severity.

    Returns
    -------
    DataFrame
        Columns ``segmenter, artefact, severity_index, severity, threshold, ap``.
    """
    taus = thresholds_in(table)
    if not taus:
        raise DataError("results table: no instance columns (tp@t); the sweep had no thresholds")
    rows = []
    keys = ["segmenter", "artefact", "severity_index", "severity"]
    for key, grp in table.groupby(keys, sort=True):
        for tau in taus:
            rows.append((*key, float(tau), compute_metric(grp, f"ap@{tau}", average=average)))
    return pd.DataFrame(rows, columns=[*keys, "threshold", "ap"])
