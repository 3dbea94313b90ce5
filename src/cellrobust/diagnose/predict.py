"""Predict each segmenter's metric at diagnosed severities from a study's results table.

A study's ``results.parquet`` holds per-image pixel counts for every segmenter x artefact x
severity (:mod:`cellrobust.table`). For one segmenter and artefact the curve is the pooled
(micro) metric per severity; the prediction at an estimated severity is linear interpolation
between grid points on the axis :func:`severity_axis` (``1 / photons`` for ``poisson``,
``100 - quality`` for ``jpeg``, the value itself otherwise), clamped to the grid's ends (flagged
``beyond_grid``); an artefact the diagnosis did not detect (``detected`` False: the estimate
is within what the clean reference images read) is predicted at the identity. The 95 %
interval combines two sources in one bootstrap: replicate ``b``
resamples the study's *frames* (``table.frame_of``; the same resample for every segmenter) and
draws the severity from a normal distribution matching the estimate's own interval. That
interval is the uncertainty of the *curve* (the pooled score of many images); one image scatters
around it far more, so every prediction also carries a per-image 95 % prediction interval
(``pi_low``, ``pi_high``): the 2.5 and 97.5 % quantiles of the study's per-image scores,
interpolated on the severity axis and taken over the estimate's own interval (the widest span
between its ends).

The identity point of every curve is the study's raw clean reference (rows ``artefact ==
"none"``, the unmodified images) when the table has it, not the artefact's level 0: for
illumination and noise that level is the studies' min-max rescaled image, which alone can cost
a model much (a user's unmodified image is not rescaled).

Trusted range (``trusted_ranges``): the largest severity up to which the curve stays at or above
``tolerance x clean`` (and ``floor``), linear interpolation to the first crossing; two-sided
artefacts (``cell_size``, ``zoom``) get a range on each side of the identity. When
:func:`cellrobust.robustness.trusted_range_table` exists its one-sided values are used instead.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cellrobust._rng import derive_rng
from cellrobust._validation import DataError, check_choice, check_range
from cellrobust.diagnose.api import TWO_SIDED
from cellrobust.table import CLEAN, frame_of

METRICS = ("jaccard", "dice")
#: Diagnosed artefact -> study artefacts that share its parameter and unit.
STUDY_NAMES = {"cell_size": ("cell_size", "zoom")}


def severity_axis(artefact: str, values) -> np.ndarray:
    """Map severities to an axis that grows with severity (interpolation is linear on it)."""
    v = np.asarray(values, dtype=float)
    if artefact == "poisson":
        with np.errstate(divide="ignore"):
            return np.where(np.isinf(v), 0.0, 1.0 / v)
    if artefact == "jpeg":
        return 100.0 - v
    return v


def _metric(tp, fp, fn, metric):
    num = tp if metric == "jaccard" else 2 * tp
    den = tp + fp + fn if metric == "jaccard" else 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)


CLEAN_POINTS = ("raw", "level0")


def study_curves(table: pd.DataFrame, *, metric: str = "jaccard", n_boot: int = 1000,
                 seed: int = 0, clean: str = "raw") -> dict:
    """Curves with frame-bootstrap replicates: ``{(segmenter, artefact): dict}``.

    Each value holds ``x`` (severity axis, ascending), ``severity``, ``value`` (S,),
    ``reps`` (n_boot, S), ``unit``, ``clean`` and ``n_frames``. ``clean="raw"``: the
    identity point is the raw clean reference when the table has it (for unmodified images);
    ``"level0"``: the artefact's own level 0 (for images min-max rescaled as the study's).
    """
    check_choice("metric", metric, METRICS)
    check_choice("clean", clean, CLEAN_POINTS)
    need = {"segmenter", "artefact", "severity", "sample", "tp_px", "fp_px", "fn_px"}
    missing = sorted(need - set(table.columns))
    if missing:
        raise DataError(f"results table: missing columns {missing}; expected a cellrobust "
                        "sweep table (results.parquet)")
    from cellrobust import artefacts

    out = {}
    table = table.assign(frame=table["sample"].map(frame_of))
    raw = table[table["artefact"] == CLEAN] if clean == "raw" else table.iloc[:0]
    data = table[table["artefact"].isin(artefacts.names())]
    for art, rows in data.groupby("artefact", sort=True):
        frames = sorted(rows["frame"].unique())
        idx = derive_rng(seed, "diagnose-boot", art).integers(0, len(frames),
                                                              (int(n_boot), len(frames)))
        for seg, part in rows.groupby("segmenter", sort=True):
            out[(seg, art)] = _curve(part, raw[raw["segmenter"] == seg], frames, idx, art,
                                     metric)
    return out


def _curve(part, raw, frames, idx, art, metric):
    """One curve; ``raw`` (the segmenter's clean reference rows, maybe empty) replaces the
    artefact's identity level when it covers the same images."""
    sev = np.array(sorted(part["severity"].unique(), key=lambda v: severity_axis(art, v)))
    identity = _identity(art)
    clean_i = int(np.argmin(np.abs(severity_axis(art, sev) - severity_axis(art, identity))))
    same = not raw.empty and set(raw["sample"]) == set(
        part.loc[part["severity"] == sev[clean_i], "sample"])
    if same:
        part = pd.concat([part[part["severity"] != sev[clean_i]],
                          raw.assign(severity=sev[clean_i])])
    per = part.groupby(["severity", "frame"])[["tp_px", "fp_px", "fn_px"]].sum()
    counts = np.zeros((len(sev), len(frames), 3))
    pos = {f: i for i, f in enumerate(frames)}
    for (s, f), row in per.iterrows():
        counts[int(np.nonzero(sev == s)[0][0]), pos[f]] = row.to_numpy(float)
    value = _metric(*counts.sum(axis=1).T, metric)
    boot = counts[:, idx].sum(axis=2)  # (S, B, 3)
    reps = _metric(boot[..., 0], boot[..., 1], boot[..., 2], metric).T  # (B, S)
    one = part.assign(m=_metric(part["tp_px"].to_numpy(float), part["fp_px"].to_numpy(float),
                                part["fn_px"].to_numpy(float), metric))
    spread = one.groupby("severity")["m"].quantile([0.025, 0.975]).unstack().loc[sev]
    return {"severity": sev, "x": severity_axis(art, sev), "value": value, "reps": reps,
            "image_quantiles": spread.to_numpy(float),  # (S, 2): one image's 95 % range
            "unit": str(part["unit"].iloc[0]) if "unit" in part else "",
            "clean": float(value[clean_i]), "clean_index": clean_i, "n_frames": len(frames),
            "clean_source": CLEAN if same else "level 0"}


def _identity(art: str) -> float:
    from cellrobust import artefacts

    try:
        return artefacts.get(art).identity
    except Exception:  # an artefact the registry no longer has: its lowest severity
        return math.nan


def _crossing(x, y, threshold, start, step):
    """First x (walking from ``start`` by ``step``) where y falls below threshold, interpolated."""
    i = start
    while 0 <= i + step < len(x):
        j = i + step
        if y[j] < threshold:
            if y[i] == y[j]:
                return float(x[i])
            return float(x[i] + (threshold - y[i]) * (x[j] - x[i]) / (y[j] - y[i]))
        i = j
    return float(x[i])


def _trusted(curve, values, tolerance, floor, art):
    threshold = tolerance * values[curve["clean_index"]]
    if floor is not None:
        threshold = max(threshold, floor)
    x, c = curve["x"], curve["clean_index"]
    high = _crossing(x, values, threshold, c, +1)
    low = _crossing(x, values, threshold, c, -1) if art in TWO_SIDED else math.nan
    return low, high


def trusted_ranges(table: pd.DataFrame, *, metric: str = "jaccard", tolerance: float = 0.9,
                   floor: float | None = None, n_boot: int = 1000, seed: int = 0,
                   curves: dict | None = None) -> pd.DataFrame:
    """Trusted range per segmenter x artefact (see the module docstring).

    Returns
    -------
    DataFrame
        ``segmenter, artefact, unit, clean, trusted, ci_low, ci_high, trusted_low, source``;
        ``trusted``/``ci_*`` on the severity axis mapped back to the artefact's unit;
        ``trusted_low`` is the lower end for two-sided artefacts (NaN otherwise).
    """
    check_range("tolerance", tolerance, low=0, high=1, low_inclusive=False)
    curves = study_curves(table, metric=metric, n_boot=n_boot, seed=seed) if curves is None \
        else curves
    rows = []
    for (seg, art), cur in curves.items():
        low, high = _trusted(cur, cur["value"], tolerance, floor, art)
        boot = np.array([_trusted(cur, r, tolerance, floor, art)[1] for r in cur["reps"]])
        lo, hi = np.quantile(boot, [0.025, 0.975]) if boot.size else (math.nan, math.nan)
        rows.append({"segmenter": seg, "artefact": art, "unit": cur["unit"],
                     "clean": cur["clean"], "trusted": _from_axis(art, high),
                     "ci_low": _from_axis(art, lo), "ci_high": _from_axis(art, hi),
                     "trusted_low": _from_axis(art, low), "source": "cellrobust.diagnose"})
    out = pd.DataFrame(rows)
    return _prefer_robustness(out, table, metric, tolerance, floor, n_boot, seed)


def _prefer_robustness(out, table, metric, tolerance, floor, n_boot, seed):
    """Use ``cellrobust.robustness.trusted_range_table`` for one-sided artefacts when present."""
    try:
        from cellrobust.robustness import trusted_range_table
    except ImportError:
        return out
    theirs = trusted_range_table(table, metric=metric, tolerance=tolerance, floor=floor,
                                 n_boot=n_boot, seed=seed)
    keyed = theirs.set_index(["segmenter", "artefact"])
    for i, row in out.iterrows():
        key = (row["segmenter"], row["artefact"])
        if row["artefact"] not in TWO_SIDED and key in keyed.index:
            for col in ("trusted", "ci_low", "ci_high"):
                out.at[i, col] = float(keyed.loc[key, col])
            out.at[i, "source"] = "cellrobust.robustness.trusted_range_table"
    return out


def _from_axis(art: str, x: float) -> float:
    if not np.isfinite(x):
        return float(x)
    if art == "poisson":
        return math.inf if x == 0 else 1.0 / x
    if art == "jpeg":
        return 100.0 - x
    return float(x)


def predict(diagnosis: pd.DataFrame, table: pd.DataFrame, *, metric: str = "jaccard",
            tolerance: float = 0.9, n_boot: int = 1000, seed: int = 0,
            clean: str = "raw") -> pd.DataFrame:
    """Each segmenter's predicted metric at every diagnosed severity the study covers.

    Parameters
    ----------
    diagnosis : DataFrame
        :func:`~cellrobust.diagnose.diagnose_images` output.
    table : DataFrame
        The study's results table.
    clean : {"raw", "level0"}
        Identity point of the curves (:func:`study_curves`): ``"raw"`` for unmodified images,
        ``"level0"`` for images min-max rescaled as the study's corrupted ones.

    Returns
    -------
    DataFrame
        ``image, artefact, study_artefact, severity, unit, segmenter, predicted, ci_low,
        ci_high`` (95 % interval of the curve), ``pi_low, pi_high`` (95 % prediction interval
        for one image), ``clean, trusted, trusted_low, outside_trusted, beyond_grid``.
    """
    curves = study_curves(table, metric=metric, n_boot=n_boot, seed=seed, clean=clean)
    trusted = trusted_ranges(table, metric=metric, tolerance=tolerance, curves=curves,
                             n_boot=n_boot, seed=seed).set_index(["segmenter", "artefact"])
    rows = []
    for _, d in diagnosis.iterrows():
        for (seg, art), cur in curves.items():
            if art not in STUDY_NAMES.get(d["artefact"], (d["artefact"],)):
                continue
            rows.append({"image": d["image"], "artefact": d["artefact"], "study_artefact": art,
                         "severity": d["estimate"], "unit": d["unit"], "segmenter": seg,
                         **_predict_one(cur, art, d, seed),
                         **_trust_flags(trusted.loc[(seg, art)], art, d["estimate"])})
    return pd.DataFrame(rows)


def _predict_one(cur, art, d, seed) -> dict:
    """Prediction at the estimate; an artefact not detected (the estimate within what the
    reference images themselves read) is predicted at the identity, the clean point."""
    if not bool(d.get("detected", True)):  # NaN (no verdict) counts as detected
        x = lo = hi = float(severity_axis(art, _identity(art)))
    else:
        x = severity_axis(art, d["estimate"])
        lo, hi = (severity_axis(art, d[k]) for k in ("ci_low", "ci_high"))
    sd = abs(hi - lo) / (2 * 1.96) if np.isfinite(lo) and np.isfinite(hi) else 0.0
    n = len(cur["reps"])
    draws = derive_rng(seed, "diagnose-sev", str(d["image"]), art).normal(x, sd, n) if n else []
    pred = float(np.interp(x, cur["x"], cur["value"])) if np.isfinite(x) else math.nan
    boot = np.array([np.interp(s, cur["x"], r) for s, r in zip(draws, cur["reps"])])
    ci = np.quantile(boot, [0.025, 0.975]) if boot.size else (math.nan, math.nan)
    beyond = bool(np.isfinite(x) and (x > cur["x"].max() or x < cur["x"].min()))
    return {"predicted": pred, "ci_low": float(ci[0]), "ci_high": float(ci[1]),
            **_image_interval(cur, x, lo, hi), "clean": cur["clean"], "beyond_grid": beyond}


def _image_interval(cur, x, lo, hi) -> dict:
    """Per-image 95 % prediction interval: the study images' 2.5-97.5 % quantiles over the
    severity span ``[lo, hi]`` (its ends interpolated, the grid points inside it included)."""
    if not np.isfinite(x):
        return {"pi_low": math.nan, "pi_high": math.nan}
    ends = [v for v in (lo, hi) if np.isfinite(v)] or [x]
    a, b = min(ends + [x]), max(ends + [x])
    xs = np.concatenate([[a, b], cur["x"][(cur["x"] > a) & (cur["x"] < b)]])
    q = cur["image_quantiles"]
    return {"pi_low": float(np.interp(xs, cur["x"], q[:, 0]).min()),
            "pi_high": float(np.interp(xs, cur["x"], q[:, 1]).max())}


def _trust_flags(tr, art, estimate) -> dict:
    x = float(severity_axis(art, estimate))
    high = float(severity_axis(art, tr["trusted"]))
    low = float(severity_axis(art, tr["trusted_low"])) if np.isfinite(tr["trusted_low"]) \
        else -math.inf
    outside = bool(np.isfinite(x) and (x > high or x < low))
    return {"trusted": float(tr["trusted"]), "trusted_low": float(tr["trusted_low"]),
            "outside_trusted": outside}


def recommend(predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recommended segmenter per image and for the set.

    Per image and segmenter the *binding* prediction is the lowest over the image's diagnosed
    artefacts (the study varies one artefact at a time, so no interaction is modelled); the
    recommended segmenter maximises it. For the set: the highest mean binding prediction.
    Undefined (NaN) predictions are left out; an image with none is not recommended for.

    Returns
    -------
    per_image : DataFrame
        ``image, segmenter, predicted, ci_low, ci_high, binding_artefact, outside_trusted``
        (the recommended row per image; ``outside_trusted`` = any artefact outside the
        recommended model's trusted range).
    per_set : DataFrame
        ``segmenter, mean_predicted, mean_ci_low, mean_ci_high, n_images, n_outside,
        recommended`` (intervals: means of the per-image bounds).
    """
    if predictions.empty:
        raise DataError("predictions: empty; the study covers none of the diagnosed artefacts")
    finite = predictions[np.isfinite(predictions["predicted"].to_numpy(float))]
    if finite.empty:
        raise DataError("predictions: no finite prediction; every diagnosed severity is "
                        "undefined (NaN estimates: see diagnosis.csv)")
    worst = finite.loc[finite.groupby(["image", "segmenter"])["predicted"].idxmin()]
    outside = predictions.groupby(["image", "segmenter"])["outside_trusted"].any()
    worst = worst.assign(outside_trusted=[outside[(i, s)] for i, s in
                                          zip(worst["image"], worst["segmenter"])])
    best = worst.loc[worst.groupby("image")["predicted"].idxmax()]
    per_image = best[["image", "segmenter", "predicted", "ci_low", "ci_high", "artefact",
                      "outside_trusted"]].rename(columns={"artefact": "binding_artefact"})
    per_set = worst.groupby("segmenter").agg(
        mean_predicted=("predicted", "mean"), mean_ci_low=("ci_low", "mean"),
        mean_ci_high=("ci_high", "mean"), n_images=("image", "nunique"),
        n_outside=("outside_trusted", "sum")).reset_index()
    per_set["recommended"] = per_set["mean_predicted"] == per_set["mean_predicted"].max()
    return per_image.reset_index(drop=True), per_set.sort_values(
        "mean_predicted", ascending=False, ignore_index=True)
