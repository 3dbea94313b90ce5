"""The trusted-range figure: how far along each artefact's grid each model keeps its clean
score, with the frame-bootstrap interval as whiskers and the severity in the artefact's unit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cellrobust.report.style import display_name, number, segmenter_colours

__all__ = ["figure_trusted_range"]


def figure_trusted_range(trusted: pd.DataFrame) -> Figure:
    """One panel per artefact, one horizontal bar per segmenter.

    Parameters
    ----------
    trusted : DataFrame
        :func:`cellrobust.robustness.trusted_range_table` output.

    Bars end at the trusted severity (whiskers: the CI); a bar reaching the grid's end is
    drawn with an arrow and labelled "≥ x"; "below at start" models get no bar and say so.
    """
    arts = sorted(set(trusted["artefact"]))
    segs = sorted(set(trusted["segmenter"]))
    colours = segmenter_colours(segs)
    ncol = min(3, len(arts))
    nrow = int(np.ceil(len(arts) / ncol))
    fig = Figure(figsize=(4.6 * ncol, 0.45 * len(segs) * nrow + 1.6 * nrow),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    for ax in axes[len(arts):]:
        ax.set_axis_off()
    for ax, art in zip(axes, arts):
        _panel(ax, trusted[trusted["artefact"] == art].set_index("segmenter"), segs, colours)
        ax.set_title(art.replace("_", " "), fontsize=10)
    first = trusted.iloc[0]
    rule = _rule(first)
    fig.suptitle(f"Trusted range: severity up to which {first['metric']} stays {rule} "
                 "(whiskers: 95% bootstrap CI over frames)", fontsize=10)
    return fig


def _rule(row) -> str:
    parts = []
    if pd.notna(row.get("tolerance")):
        parts.append(f"≥ {float(row['tolerance']):.0%} of the model's clean score")
    if pd.notna(row.get("floor")):
        parts.append(f"≥ {float(row['floor']):g}")
    return " and ".join(parts)


def _panel(ax, rows: pd.DataFrame, segs, colours) -> None:
    unit = str(rows["unit"].iloc[0]) if len(rows) else ""
    start = float(rows["grid_start"].iloc[0])
    end = float(rows["grid_end"].iloc[0])
    finite = np.isfinite([start, end]).all()
    left = start if finite else 0.0
    for y, seg in enumerate(segs):
        if seg not in rows.index:
            continue
        r = rows.loc[seg]
        value = float(r["trusted"]) if np.isfinite(r["trusted"]) else left
        ax.barh(y, value - left, left=left, color=colours[seg], alpha=0.85, height=0.6)
        if np.isfinite(r["ci_low"]) and r["status"] != "below_at_start":
            ax.errorbar(value, y, xerr=[[max(value - r["ci_low"], 0)],
                                        [max(r["ci_high"] - value, 0)]],
                        fmt="none", ecolor="k", capsize=3, lw=1)
        ax.text(value, y, "  " + _label(r), va="center", fontsize=8)
    ax.set_yticks(range(len(segs)), [display_name(s) for s in segs], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"severity ({unit})" if unit else "severity", fontsize=8)
    if finite and end != start:
        lo, hi = sorted((start, end))
        ax.set_xlim(lo, hi + 0.35 * (hi - lo))
        if end < start:
            ax.invert_xaxis()
    ax.grid(axis="x", alpha=0.3)


def _label(r) -> str:
    if r["status"] == "below_at_start":
        return "below at severity 0"
    text = ("≥ " if r["reached_end"] else "≈ ") + number(r["trusted"])
    return text
