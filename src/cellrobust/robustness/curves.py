"""Metric-vs-severity curves, paired differences and AP-vs-IoU curves, with frame-bootstrap
intervals (:mod:`cellrobust.robustness.bootstrap`).

The raw clean reference rows (artefact :data:`CLEAN`, written by a sweep with its clean
reference on) are kept apart: :func:`curves` leaves them out of the per-artefact curves unless
asked, and :func:`clean_replicates` returns them as the clean score of every artefact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cellrobust import table as schema
from cellrobust._validation import DataError, check_choice
from cellrobust.robustness.bootstrap import (DEFAULT_CI, DEFAULT_N_BOOT, MIN_FRAMES,
                                             FrameBootstrap, frame_bootstrap, interval)
from cellrobust.robustness.columns import average_for, compute_metric, metric_columns
from cellrobust.table import CLEAN

__all__ = ["CLEAN", "Replicates", "ap_curve", "clean_replicates", "curves",
           "group_replicates", "paired_differences", "validate_table"]

KEYS = ["segmenter", "artefact", "severity_index"]


def validate_table(table: pd.DataFrame) -> None:
    """DataError unless ``table`` has the columns every score needs and at least one row."""
    need = {"segmenter", "artefact", "severity_index", "severity", "sample"}
    missing = sorted(need - set(table.columns))
    if missing:
        raise DataError(f"results table: missing columns {missing}; is this a cellrobust table?")
    if table.empty:
        raise DataError("results table: no rows; the sweep selected nothing")


@dataclass(frozen=True, eq=False)
class Replicates:
    """A metric per group of rows, with its bootstrap replicates.

    Attributes
    ----------
    keys : DataFrame
        One row per group: ``segmenter, artefact, severity_index, severity, unit,
        n_images, n_frames``.
    point : ndarray of float64, shape (G,)
        The metric on all rows of the group.
    reps : ndarray of float64, shape (G, n_boot)
        The metric on each frame resample (NaN where a replicate drew none of the group's
        frames).
    """

    keys: pd.DataFrame
    point: np.ndarray
    reps: np.ndarray

    def both(self) -> np.ndarray:
        """Point and replicates side by side, shape (G, 1 + n_boot): column 0 is the point."""
        return np.column_stack([self.point, self.reps])


def group_replicates(table: pd.DataFrame, metric: str, boot: FrameBootstrap, *,
                     average: str = "micro") -> Replicates:
    """``metric`` per segmenter x artefact x severity index, on all rows and per replicate.

    micro: counts are summed per frame, replicate ``b`` sums ``weights[b] @ frame sums``;
    macro: per-image values, replicate ``b`` averages the images of the drawn frames.
    """
    cols, func, _ = metric_columns(metric, table)
    average = average_for(metric, average)
    grouped = table.groupby(KEYS, sort=True)
    gid = grouped.ngroup().to_numpy()
    fid = boot.index_of(table["sample"])
    n_g, n_f = int(gid.max()) + 1, boot.n_frames
    values = table[list(cols)].to_numpy(np.float64)
    n_img = np.zeros((n_g, n_f))
    np.add.at(n_img, (gid, fid), 1.0)
    w = boot.weights.astype(np.float64)
    drawn = n_img @ w.T  # (G, B) images in each replicate
    if average == "micro":
        sums = np.zeros((n_g, n_f, len(cols)))
        np.add.at(sums, (gid, fid), values)
        point = func(tuple(sums.sum(axis=1).T))
        rep_sums = np.einsum("bf,gfk->kgb", w, sums)
        reps = func(tuple(rep_sums)) if boot.n_boot else np.zeros((n_g, 0))
    else:
        per = np.zeros((n_g, n_f))
        np.add.at(per, (gid, fid), func(tuple(values.T)))
        point = per.sum(axis=1) / n_img.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = (per @ w.T) / drawn
    reps = np.where(drawn > 0, reps, np.nan)
    return Replicates(_keys(grouped, table), np.asarray(point, np.float64), reps)


def _keys(grouped, table: pd.DataFrame) -> pd.DataFrame:
    unit = "unit" if "unit" in table.columns else "severity"
    keys = grouped.agg(severity=("severity", "first"), unit=(unit, "first"),
                       n_images=("sample", "size")).reset_index()
    if unit == "severity":
        keys["unit"] = ""
    frames = table.assign(_f=table["sample"].map(schema.frame_of)).groupby(KEYS)["_f"]
    keys["n_frames"] = frames.nunique().to_numpy()
    keys["unit"] = keys["unit"].fillna("").astype(str)
    return keys


def _prepare(table, n_boot, ci, seed):
    validate_table(table)
    interval(None, ci)  # validates ci
    return frame_bootstrap(table["sample"], n_boot=n_boot, seed=seed)


def curves(table: pd.DataFrame, metric: str = "jaccard", *, average: str = "micro",
           n_boot: int = DEFAULT_N_BOOT, ci: float = DEFAULT_CI, seed: int = 0,
           include_clean: bool = False) -> pd.DataFrame:
    """Metric-vs-severity curves with percentile frame-bootstrap confidence intervals.

    Parameters
    ----------
    table : DataFrame
        The tidy results table (:mod:`cellrobust.table`).
    metric : str
        A name from :func:`metric_names` (``"jaccard"``, ``"accuracy"``, ``"ap@0.50"``...).
    average : {"micro", "macro"}
        Pool counts over images (micro) or average per-image values (macro).
    n_boot : int
        Frame resamples (0 = no interval: ``lo``/``hi`` NaN).
    ci : float in (0, 1)
    seed : int
        Root of the one resampling stream (the same replicates for every group).
    include_clean : bool
        Keep the raw clean reference rows (artefact :data:`CLEAN`) as their own group.

    Returns
    -------
    DataFrame
        ``segmenter, artefact, severity_index, severity, unit, metric, value, lo, hi,
        n_images, n_frames``, sorted by artefact, segmenter, severity index.
    """
    boot = _prepare(table, n_boot, ci, seed)
    rep = group_replicates(table, metric, boot, average=average)
    lo, hi = interval(rep.reps, ci)
    out = rep.keys.assign(metric=metric, value=rep.point, lo=lo, hi=hi)
    if not include_clean:
        out = out[out["artefact"] != CLEAN]
    cols = ["segmenter", "artefact", "severity_index", "severity", "unit", "metric", "value",
            "lo", "hi", "n_images", "n_frames"]
    return out[cols].sort_values(["artefact", "segmenter", "severity_index"], ignore_index=True)


def clean_replicates(rep: Replicates) -> dict[tuple[str, str], np.ndarray]:
    """The clean score (point and replicates, shape (1 + n_boot,)) per (segmenter, artefact).

    The raw clean reference (artefact :data:`CLEAN`) when the table has it, for every
    artefact; else each artefact's own severity index 0.
    """
    both, keys = rep.both(), rep.keys
    raw = {s: both[i] for i, s in enumerate(keys["segmenter"]) if keys["artefact"].iloc[i] == CLEAN}
    out = {}
    for i, row in keys[keys["severity_index"] == keys.groupby(
            ["segmenter", "artefact"])["severity_index"].transform("min")].iterrows():
        if row["artefact"] != CLEAN:
            out[(row["segmenter"], row["artefact"])] = raw.get(row["segmenter"], both[i])
    return out


def paired_differences(table: pd.DataFrame, a: str, b: str, metric: str = "jaccard", *,
                       average: str = "micro", n_boot: int = DEFAULT_N_BOOT,
                       ci: float = DEFAULT_CI, seed: int = 0) -> pd.DataFrame:
    """``metric(a) - metric(b)`` per artefact and severity (clean reference row included).

    Both segmenters were scored on the same corrupted images, and each replicate weighs the
    same frames for both: the interval reflects the paired design. ``significant`` is True
    only when the design supports a test - at least :data:`MIN_FRAMES` independent frames -
    and the interval excludes 0; ``assessed`` says whether it was tested and ``note`` why not.

    Returns
    -------
    DataFrame
        ``artefact, severity_index, severity, unit, a, b, metric, diff, lo, hi, significant,
        assessed, note, n_images, n_frames``.
    """
    boot = _prepare(table, n_boot, ci, seed)
    segs = sorted(set(table["segmenter"]))
    check_choice("a", a, segs)
    check_choice("b", b, segs)
    rep = group_replicates(table[table["segmenter"].isin([a, b])], metric, boot, average=average)
    both, keys = rep.both(), rep.keys
    pos = {k: n for n, k in enumerate(keys[KEYS].itertuples(index=False, name=None))}
    rows = []
    for i, r in keys[keys["segmenter"] == b].iterrows():
        j = pos.get((a, r["artefact"], r["severity_index"]))
        if j is not None:
            d = both[j] - both[i]
            lo, hi = interval(d[1:], ci)
            rows.append(_paired_row(r, a, b, metric, d[0], float(lo), float(hi), boot.n_boot))
    return pd.DataFrame(rows, columns=["artefact", "severity_index", "severity", "unit", "a",
                                       "b", "metric", "diff", "lo", "hi", "significant",
                                       "assessed", "note", "n_images", "n_frames"])


def _paired_row(r, a, b, metric, diff, lo, hi, n_boot) -> tuple:
    n_frames = int(r["n_frames"])
    assessed = n_frames >= MIN_FRAMES and n_boot > 0 and np.isfinite(lo)
    note = "" if assessed else (f"not assessed: {n_frames} frames (< {MIN_FRAMES})"
                                if n_frames < MIN_FRAMES else "not assessed: no bootstrap")
    sig = bool(assessed and (lo > 0 or hi < 0))
    return (r["artefact"], int(r["severity_index"]), float(r["severity"]), r["unit"], a, b,
            metric, float(diff), lo, hi, sig, bool(assessed), note, int(r["n_images"]),
            n_frames)


def ap_curve(table: pd.DataFrame, *, average: str = "micro") -> pd.DataFrame:
    """AP = TP/(TP+FP+FN) (DSB 2018, not COCO AP) against IoU threshold per segmenter,
    artefact and severity (the clean reference rows, when present, as artefact ``"none"``).

    Returns
    -------
    DataFrame
        ``segmenter, artefact, severity_index, severity, threshold, ap``.
    """
    taus = schema.thresholds_in(table.columns)
    if not taus:
        raise DataError("results table: no instance columns (tp@t); the sweep had no thresholds")
    rows = []
    keys = ["segmenter", "artefact", "severity_index", "severity"]
    for key, grp in table.groupby(keys, sort=True):
        for t in taus:
            rows.append((*key, float(t), compute_metric(grp, f"ap@{t}", average=average)))
    return pd.DataFrame(rows, columns=[*keys, "threshold", "ap"])
