"""Summary robustness scores per segmenter and artefact, each with a frame-bootstrap interval.

For one segmenter and artefact, metric ``m_s`` at severity levels ``s = 0..S`` (level 0 =
the artefact's identity) and clean score ``c`` (the raw clean reference rows when the table
has them, else ``m_0``; see :func:`~cellrobust.robustness.curves.clean_replicates`):

- ``clean`` = ``c``; ``mpc`` = ``mean_{s>=1} m_s`` (Michaelis et al. 2019); ``rpc`` =
  ``mpc / c``; ``auc`` = trapezoid area of ``m`` over the severity index scaled to [0, 1],
  divided by ``c``; ``worst`` = ``min_s m_s``.
- ``ce`` = ``sum_{s>=1} (1 - m_s) / sum_{s>=1} (1 - m^ref_s)`` and ``rel_ce`` =
  ``sum_{s>=1} (c - m_s) / sum_{s>=1} (c^ref - m^ref_s)`` (Hendrycks & Dietterich 2019,
  ImageNet-C; the reference segmenter plays AlexNet's role).

Guards (a score whose denominator is ~0 is NaN, with the reason in ``note``, never a huge or
a flattering number):

- ``rpc``, ``auc`` and ``rel_ce`` need ``clean >= MIN_CLEAN``: a model that finds nothing on
  clean images has nothing to lose, so its rel_ce of 0 would read "perfectly robust".
- ``ce`` needs the reference's mean error per level ``>= MIN_REF_ERROR``; ``rel_ce`` needs the
  reference's mean loss per level ``>= MIN_REF_DROP`` (a reference that barely degrades made
  rel_ce read 154 or 455).

Every interval comes from the one frame bootstrap of
:mod:`cellrobust.robustness.bootstrap` (replicate ``b`` of ``rpc`` is replicate ``b`` of
``mpc`` over replicate ``b`` of ``clean``; replicates failing a guard are left out).

References
----------
Michaelis C. et al. (2019) Benchmarking robustness in object detection. arXiv:1907.07484.
Hendrycks D., Dietterich T. (2019) Benchmarking neural network robustness to common
corruptions and perturbations. ICLR.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellrobust.robustness.bootstrap import DEFAULT_CI, DEFAULT_N_BOOT, interval
from cellrobust.robustness.curves import (CLEAN, _prepare, clean_replicates,
                                          group_replicates)

__all__ = ["MIN_CLEAN", "MIN_REF_DROP", "MIN_REF_ERROR", "SCORE_NAMES", "scores"]

MIN_CLEAN = 0.1
MIN_REF_ERROR = 0.02
MIN_REF_DROP = 0.02
SCORE_NAMES = ("clean", "mpc", "rpc", "auc", "worst", "ce", "rel_ce")


def _curve_scores(values: np.ndarray, sidx: np.ndarray, clean: np.ndarray) -> dict:
    """Scores of one curve; ``values`` (levels, 1 + n_boot) sorted by severity index."""
    corrupted = values[1:] if len(values) > 1 else values
    x = sidx.astype(float)
    x = (x - x[0]) / (x[-1] - x[0]) if x[-1] > x[0] else np.zeros_like(x)
    area = np.trapezoid(values, x, axis=0) if len(values) > 1 else values[0]
    ok = clean >= MIN_CLEAN
    with np.errstate(divide="ignore", invalid="ignore"):
        mpc = corrupted.mean(axis=0)
        return {"clean": clean, "mpc": mpc, "rpc": np.where(ok, mpc / clean, np.nan),
                "auc": np.where(ok, area / clean, np.nan), "worst": values.min(axis=0),
                "_err": (1 - corrupted).mean(axis=0), "_drop": (clean - corrupted).mean(axis=0),
                "_ok": ok}


def _per_curve(rep) -> dict[tuple[str, str], dict]:
    both, keys = rep.both(), rep.keys
    clean = clean_replicates(rep)
    out = {}
    for (seg, art), grp in keys[keys["artefact"] != CLEAN].groupby(["segmenter", "artefact"]):
        grp = grp.sort_values("severity_index")
        s = _curve_scores(both[grp.index.to_numpy()], grp["severity_index"].to_numpy(),
                          clean[(seg, art)])
        s["n_frames"] = int(grp["n_frames"].min())
        out[(seg, art)] = s
    return out


def _add_ce(curves: dict, reference: str | None) -> None:
    for (seg, art), s in curves.items():
        ref = curves.get((reference, art)) if reference is not None else None
        notes = [] if s["_ok"][0] else [f"rPC/AUC/rel. CE undefined: clean {s['clean'][0]:.2f}"
                                        f" < {MIN_CLEAN:g}"]
        nan = np.full_like(s["mpc"], np.nan)
        if ref is None:
            s["ce"], s["rel_ce"] = nan, nan.copy()
            notes.append(f"CE undefined: no reference {reference!r}" if reference else "")
        else:
            err_ok = ref["_err"] >= MIN_REF_ERROR
            drop_ok = (ref["_drop"] >= MIN_REF_DROP) & s["_ok"]
            with np.errstate(divide="ignore", invalid="ignore"):
                s["ce"] = np.where(err_ok, s["_err"] / ref["_err"], np.nan)
                s["rel_ce"] = np.where(drop_ok, s["_drop"] / ref["_drop"], np.nan)
            if not err_ok[0]:
                notes.append(f"CE undefined: {reference} errs {ref['_err'][0]:.3f} per level "
                             f"(< {MIN_REF_ERROR:g})")
            if not (ref["_drop"] >= MIN_REF_DROP)[0]:
                notes.append(f"rel. CE undefined: {reference} loses {ref['_drop'][0]:.3f} per "
                             f"level (< {MIN_REF_DROP:g})")
        s["note"] = "; ".join(n for n in notes if n)


def _rows(curves: dict, ci: float, metric: str, clean_source: str) -> list[dict]:
    rows = []
    for (seg, art), s in sorted(curves.items()):
        row = {"segmenter": seg, "artefact": art, "metric": metric}
        for name in SCORE_NAMES:
            lo, hi = interval(s[name][1:], ci) if np.isfinite(s[name][0]) else (np.nan, np.nan)
            row.update({name: float(s[name][0]), f"{name}_lo": float(lo), f"{name}_hi": float(hi)})
        row.update(n_frames=s["n_frames"], clean_source=clean_source, note=s["note"])
        rows.append(row)
    return rows


def _means(curves: dict) -> dict:
    out = {}
    for seg in sorted({seg for seg, _ in curves}):
        mine = [s for (g, _), s in curves.items() if g == seg]
        mean = {n: np.mean([s[n] for s in mine], axis=0) for n in SCORE_NAMES}
        undefined = [n for n in ("rpc", "auc", "ce", "rel_ce") if not np.isfinite(mean[n][0])]
        note = f"mean of {len(mine)} artefacts" + (
            f"; {', '.join(undefined)} undefined for some artefact" if undefined else "")
        out[(seg, "mean")] = {**mean, "n_frames": min(s["n_frames"] for s in mine), "note": note}
    return out


def scores(table: pd.DataFrame, metric: str = "jaccard", *, reference: str | None = "dog_otsu",
           average: str = "micro", n_boot: int = DEFAULT_N_BOOT, ci: float = DEFAULT_CI,
           seed: int = 0) -> pd.DataFrame:
    """Robustness scores per segmenter and artefact with frame-bootstrap intervals.

    Parameters
    ----------
    table : DataFrame
        The tidy results table.
    metric : str
        Metric whose degradation is scored (higher = better; in [0, 1] for CE to make sense).
    reference : str or None
        Segmenter in AlexNet's role for ``ce`` / ``rel_ce`` (NaN when absent or None).
    average : {"micro", "macro"}
    n_boot : int
        Frame resamples for the intervals (0 = none).
    ci : float in (0, 1)
    seed : int

    Returns
    -------
    DataFrame
        ``segmenter, artefact, metric``, then for every score in ``SCORE_NAMES`` the value and
        ``<score>_lo``, ``<score>_hi``; ``n_frames``, ``clean_source`` (``"none"``: the raw
        clean reference rows; ``"level 0"``: each artefact's identity level) and ``note`` (why
        a score is undefined). One extra row per segmenter with ``artefact == "mean"``
        averages the artefacts (``ce`` there is the mCE, ``rel_ce`` the relative mCE).
    """
    boot = _prepare(table, n_boot, ci, seed)
    rep = group_replicates(table, metric, boot, average=average)
    curves = _per_curve(rep)
    _add_ce(curves, reference)
    source = CLEAN if (table["artefact"] == CLEAN).any() else "level 0"
    rows = _rows(curves, ci, metric, source) + _rows(_means(curves), ci, metric, source)
    return pd.DataFrame(rows)
