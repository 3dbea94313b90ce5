"""The ``cellrobust diagnose`` figure: images placed on the study's metric-vs-severity curves.

Table in, :class:`matplotlib.figure.Figure` out; nothing is written (the stage saves it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def curves_figure(curves: dict, predictions: pd.DataFrame, *, metric: str = "jaccard",
                  max_panels: int = 6):
    """One panel per diagnosed study artefact: every segmenter's curve with its 95 % frame-
    bootstrap band, and each image as a marker at (estimated severity, predicted metric).

    Parameters
    ----------
    curves : dict
        :func:`cellrobust.diagnose.study_curves` output.
    predictions : DataFrame
        :func:`cellrobust.diagnose.predict` output.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    arts = list(dict.fromkeys(predictions["study_artefact"]))[:max_panels]
    ncol = min(3, max(1, len(arts)))
    nrow = -(-len(arts) // ncol) if arts else 1
    fig = Figure(figsize=(4.6 * ncol, 3.6 * nrow), layout="constrained")
    axes = np.atleast_2d(fig.subplots(nrow, ncol, squeeze=False))
    segs = sorted({s for s, _ in curves})
    colours = {s: colormaps["tab10"](i % 10) for i, s in enumerate(segs)}
    for ax, art in zip(axes.ravel(), arts):
        _panel(ax, art, curves, predictions[predictions["study_artefact"] == art], colours)
        ax.set_ylabel(metric)
    for ax in axes.ravel()[len(arts):]:
        ax.axis("off")
    handles = [Line2D([], [], color=colours[s], label=s) for s in segs]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(segs), 5),
               frameon=False)
    fig.suptitle("Diagnosed images on the study's curves (markers: images; bands: 95 % CI)")
    return fig


def _panel(ax, art, curves, preds, colours):
    unit = ""
    for (seg, a), cur in curves.items():
        if a != art:
            continue
        sev = cur["severity"].astype(float)
        finite = np.isfinite(sev)
        lo, hi = np.quantile(cur["reps"], [0.025, 0.975], axis=0) if len(cur["reps"]) else (
            cur["value"], cur["value"])
        ax.plot(sev[finite], cur["value"][finite], color=colours[seg], lw=1.5)
        ax.fill_between(sev[finite], lo[finite], hi[finite], color=colours[seg], alpha=0.15)
        unit = cur["unit"]
    for _, p in preds.iterrows():
        ax.errorbar(p["severity"], p["predicted"],
                    yerr=[[max(p["predicted"] - p["ci_low"], 0)],
                          [max(p["ci_high"] - p["predicted"], 0)]],
                    fmt="x" if p["outside_trusted"] else "o", color=colours[p["segmenter"]],
                    ms=5, capsize=2)
    if art in ("poisson",):
        ax.set_xscale("log")
    ax.set_title(art)
    ax.set_xlabel(f"severity ({unit})" if unit else "severity")
    ax.set_ylim(-0.02, 1.02)
