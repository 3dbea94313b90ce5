"""The verdict that opens the report: which model to use under which conditions, and how
strong the evidence is.

Rules (stated in the report too):

- A model is *eligible* for a recommendation only when its clean score is at least
  ``CROWN_FLOOR`` and at least ``CROWN_SHARE`` of the best clean score: a model that finds
  almost nothing cannot be "most robust" by losing nothing.
- Per artefact the recommended model is the eligible one with the highest mPC (mean score
  under corruption); overall, the eligible one with the highest mean mPC over artefacts.
- Every claim carries its evidence: clean score and trusted range with their intervals, and
  the paired difference to the runner-up at the strongest severity with its interval.
- The evidence is called thin when there are fewer than ``MIN_FRAMES`` independent frames or
  when the recommended model's mPC interval overlaps the runner-up's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cellrobust.robustness import MIN_FRAMES
from cellrobust.report.style import display_name, number, severity_text

__all__ = ["CROWN_FLOOR", "CROWN_SHARE", "Verdict", "eligible", "make_verdict", "trusted_text"]

CROWN_FLOOR = 0.2
CROWN_SHARE = 0.5


@dataclass(frozen=True)
class Verdict:
    """Recommendation (segmenter name or None), claims and warnings, as plain sentences."""

    recommended: str | None
    claims: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _ci(value, lo, hi, fmt="{:.2f}") -> str:
    if not np.isfinite(value):
        return "—"
    core = fmt.format(value)
    return f"{core} [{fmt.format(lo)}, {fmt.format(hi)}]" if np.isfinite(lo) else core


def eligible(means: pd.DataFrame) -> list[str]:
    """Segmenters whose clean score clears the floor and ``CROWN_SHARE`` of the best."""
    best = float(means["clean"].max())
    ok = means[(means["clean"] >= CROWN_FLOOR) & (means["clean"] >= CROWN_SHARE * best)]
    return list(ok["segmenter"])


def trusted_text(row, parameter: str = "") -> str:
    """"≈ σ 27 gray levels [20, 35]", "≥ 390 gray levels", "not even at severity 0"."""
    if row["status"] == "below_at_start":
        return "not even at severity 0"
    sev = severity_text(row["trusted"], row["unit"], parameter)
    if row["reached_end"]:
        return f"≥ {sev} (the whole grid)"
    ci = (f" [{number(row['ci_low'])}, {number(row['ci_high'])}]"
          if np.isfinite(row["ci_low"]) else "")
    return f"≈ {sev}{ci}"


def make_verdict(scores: pd.DataFrame, trusted: pd.DataFrame, paired: pd.DataFrame | None,
                 *, metric: str, parameters: dict[str, str] | None = None) -> Verdict:
    """Build the verdict from :func:`~cellrobust.robustness.scores`, the trusted-range table
    and paired differences of the recommended model against every other one."""
    parameters = parameters or {}
    means = scores[scores["artefact"] == "mean"]
    ok = eligible(means)
    if not ok:
        return Verdict(None, (), (f"No model reaches a clean {metric} of {CROWN_FLOOR:g}: "
                                  "none is recommended.",))
    ranked = means[means["segmenter"].isin(ok)].sort_values("mpc", ascending=False)
    best = ranked.iloc[0]
    rec = best["segmenter"]
    claims = [f"Use {display_name(rec)}: highest mean {metric} under corruption "
              f"{_ci(best['mpc'], best['mpc_lo'], best['mpc_hi'])}, clean "
              f"{_ci(best['clean'], best['clean_lo'], best['clean_hi'])}."]
    warnings = _excluded(means, ok, metric)
    for art, grp in scores[scores["artefact"] != "mean"].groupby("artefact"):
        claims.append(_artefact_claim(art, grp[grp["segmenter"].isin(ok)], trusted, paired,
                                      rec, metric, parameters.get(art, "")))
    warnings += _thin(scores, ranked, metric)
    return Verdict(rec, tuple(claims), tuple(warnings))


def _excluded(means, ok, metric) -> list[str]:
    out = []
    for _, r in means[~means["segmenter"].isin(ok)].iterrows():
        out.append(f"{display_name(r['segmenter'])} is not considered: clean {metric} "
                   f"{r['clean']:.2f} is below {CROWN_FLOOR:g} or under {CROWN_SHARE:.0%} of "
                   "the best model's.")
    return out


def _artefact_claim(art, grp, trusted, paired, rec, metric, parameter) -> str:
    grp = grp.sort_values("mpc", ascending=False)
    top = grp.iloc[0]
    tr = trusted[(trusted["artefact"] == art)].set_index("segmenter")
    text = f"Under {art.replace('_', ' ')}: {display_name(top['segmenter'])}"
    if top["segmenter"] in tr.index:
        text += (f" keeps ≥ {float(tr.loc[top['segmenter'], 'tolerance'] or 0):.0%} of its clean "
                 f"{metric} up to {trusted_text(tr.loc[top['segmenter']], parameter)}")
    others = [s for s in grp["segmenter"].iloc[1:] if s in tr.index]
    if others:
        text += "; " + ", ".join(f"{display_name(s)} {trusted_text(tr.loc[s], parameter)}"
                                 for s in others)
    text += f" (mPC {_ci(top['mpc'], top['mpc_lo'], top['mpc_hi'])})"
    return text + _paired_text(paired, art, rec, parameter) + "."


def _paired_text(paired, art, rec, parameter="") -> str:
    if paired is None or paired.empty:
        return ""
    d = paired[(paired["artefact"] == art) & (paired["a"] == rec)]
    if d.empty:
        return ""
    d = d[d["severity_index"] == d["severity_index"].max()]
    parts = []
    for _, r in d.iterrows():
        verdict = ("significant" if r["significant"] else
                   (r["note"] if not r["assessed"] else "CI includes 0"))
        parts.append(f"{display_name(r['b'])} {r['diff']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]"
                     f", {verdict}")
    sev = severity_text(d["severity"].iloc[0], d["unit"].iloc[0], parameter)
    return f"; {display_name(rec)} minus " + "; ".join(parts) + f" at {sev}"


def _thin(scores, ranked, metric) -> list[str]:
    out = []
    n = int(scores["n_frames"].min())
    if n < MIN_FRAMES:
        out.append(f"Evidence is thin: {n} independent frame{'s' * (n != 1)} (< {MIN_FRAMES}). "
                   "Patches of one frame are not independent, so intervals are wide and no "
                   "difference is called significant; score more frames.")
    if len(ranked) > 1:
        a, b = ranked.iloc[0], ranked.iloc[1]
        if np.isfinite(a["mpc_lo"]) and a["mpc_lo"] <= b["mpc_hi"]:
            out.append(f"The mean-mPC intervals of {display_name(a['segmenter'])} and "
                       f"{display_name(b['segmenter'])} overlap: the overall choice between "
                       "them is not clear-cut.")
    return out
