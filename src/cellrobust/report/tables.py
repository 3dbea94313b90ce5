"""Reader-facing views of the score tables: values with their intervals, units on every
severity, display names, "—" with the reason for an undefined score."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd

from cellrobust.report.style import display_name, number, severity_text
from cellrobust.report.verdict import trusted_text
from cellrobust.table import CLEAN

__all__ = ["clean_reference_view", "models_view", "paired_view", "scores_view",
           "trusted_view"]

RAW = "raw images (the clean reference)"
RESCALED = "min-max rescaled (the studies' level 0)"


def _cell(value, lo, hi) -> str:
    if not np.isfinite(value):
        return "—"
    return f"{value:.2f} [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else f"{value:.2f}"


def scores_view(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per model x artefact: every score as "value [lo, hi]", reasons in "note"."""
    out = pd.DataFrame({"model": scores["segmenter"].map(display_name),
                        "artefact": scores["artefact"]})
    for name, label in (("clean", "clean"), ("mpc", "mPC"), ("rpc", "rPC"), ("auc", "AUC"),
                        ("worst", "worst"), ("ce", "CE"), ("rel_ce", "rel. CE")):
        out[label] = [_cell(v, lo, hi) for v, lo, hi in
                      scores[[name, f"{name}_lo", f"{name}_hi"]].to_numpy(float)]
    out["frames"] = scores["n_frames"].astype(int)
    out["note"] = scores["note"].fillna("")
    return out


def trusted_view(trusted: pd.DataFrame, parameters: dict[str, str] | None = None
                 ) -> pd.DataFrame:
    """Trusted range per model and artefact, severities in units ("≥ x" when never crossed)."""
    parameters = parameters or {}
    trusted = trusted.sort_values(["artefact", "segmenter"], ignore_index=True)
    return pd.DataFrame({
        "artefact": trusted["artefact"],
        "model": trusted["segmenter"].map(display_name),
        "clean": [_cell(v, lo, hi) for v, lo, hi in
                  trusted[["clean", "clean_lo", "clean_hi"]].to_numpy(float)],
        "trusted up to": [trusted_text(r, parameters.get(r["artefact"], ""))
                          for _, r in trusted.iterrows()],
        "grid": [f"{number(a)} … {severity_text(b, u)}" for a, b, u in
                 trusted[["grid_start", "grid_end", "unit"]].itertuples(index=False)],
    })


def paired_view(paired: pd.DataFrame) -> pd.DataFrame:
    """Paired differences with the severity in units and the significance stated in words."""
    return pd.DataFrame({
        "artefact": paired["artefact"],
        "severity": [severity_text(s, u) for s, u in paired[["severity", "unit"]].to_numpy()],
        "model": paired["a"].map(display_name),
        "minus": paired["b"].map(display_name),
        "difference [95% CI]": [f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" if np.isfinite(lo)
                                else f"{d:+.3f}" for d, lo, hi in
                                paired[["diff", "lo", "hi"]].to_numpy(float)],
        "significant": ["yes" if s else (n if n else "no") for s, n in
                        paired[["significant", "note"]].itertuples(index=False)],
    })


def _rescaled_at_level_0(names) -> list[str]:
    """The artefacts whose level 0 is the min-max rescaled image (registry default)."""
    from cellrobust import artefacts

    return sorted(n for n in set(names) if n in artefacts.names()
                  and artefacts.get(n).default_normalise == "minmax")


def clean_reference_view(curves: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame | None:
    """Each model's raw clean score beside the studies' min-max rescaled level 0.

    Every score and figure uses the raw clean reference (artefact ``"none"``); the studies'
    level 0 of illumination and noise rescaled the image to [0, 255] first, which alone can
    cost a model much (a finding kept visible here, labelled as what it is).

    Parameters
    ----------
    curves : DataFrame
        :func:`cellrobust.robustness.curves` (``segmenter, artefact, severity_index, value,
        lo, hi``).
    scores : DataFrame
        :func:`cellrobust.robustness.scores` (``segmenter, clean, clean_lo, clean_hi,
        clean_source``).

    Returns
    -------
    DataFrame or None
        One row per model; ``None`` when the table has no raw clean rows or no rescaled level 0.
    """
    raw = scores[scores["clean_source"] == CLEAN].rename(
        columns={"clean": "value", "clean_lo": "lo", "clean_hi": "hi"})
    rescaled = _rescaled_at_level_0(curves["artefact"])
    level0 = curves[(curves["severity_index"] == 0) & curves["artefact"].isin(rescaled)]
    if raw.empty or level0.empty:
        return None
    rows = []
    for seg, ref in raw.groupby("segmenter", sort=True):
        ref, mine = ref.iloc[0], level0[level0["segmenter"] == seg].sort_values("artefact")
        if mine.empty:
            continue
        first = mine.iloc[0]  # the same rescaled image for every such artefact
        rows.append({"model": display_name(seg), RAW: _cell(ref["value"], ref["lo"], ref["hi"]),
                     RESCALED: _cell(first["value"], first["lo"], first["hi"]),
                     "difference": f"{first['value'] - ref['value']:+.3f}",
                     "rescaled at level 0": ", ".join(mine["artefact"])})
    return pd.DataFrame(rows) if rows else None


#: Provenance entries shown as a model's "details" (when present), in this order.
_DETAILS = ("contract", "model", "encoder", "n_rays", "thresholds", "api", "pretrained")


def _compact(value, nested: bool = False) -> str:
    """``k=v, k2=(a=1, b=2), k3=[1, 2]``: a provenance entry on one line."""
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}={_compact(v, True)}" for k, v in value.items() if v is not None)
        return f"({text})" if nested else text
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_compact(v, True) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, str) and "," in value else str(value)


def models_view(run: Mapping | None) -> pd.DataFrame | None:
    """One row per judged model from the run's provenance (``study.json`` ``models``): kind,
    target, SHA-256 (first 12 hex digits; the full one is in ``study.json``), the options,
    kind-specific details (contract, weights, encoder, thresholds) and library versions.
    None when the run recorded no provenance (e.g. a bare sweep)."""
    models = (run or {}).get("models")
    if not isinstance(models, Mapping) or not models:
        return None
    rows = []
    for name, prov in models.items():
        prov = prov if isinstance(prov, Mapping) else {}
        sha = prov.get("sha256")
        details = {k: prov[k] for k in _DETAILS if prov.get(k) not in (None, {}, [])}
        versions = {k: v for k, v in (prov.get("versions") or {}).items() if k != "cellrobust"}
        rows.append({"model": display_name(name), "kind": str(prov.get("kind", "")),
                     "target": str(prov.get("target", "")),
                     "SHA-256": str(sha)[:12] if sha else "—",
                     "options": _compact(prov.get("options") or {}) or "—",
                     "details": _compact(details) or "—",
                     "versions": ", ".join(f"{k} {v}" for k, v in versions.items()) or "—"})
    return pd.DataFrame(rows)
