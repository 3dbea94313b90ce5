"""Figures, each a pure function from tables (or arrays) to a :class:`matplotlib.figure.Figure`.

No pyplot state is used (figures are built with ``Figure()``), so plotting is safe in worker
threads and never opens a window. Each segmenter keeps one colour in every figure
(:func:`segmenter_colours`). :func:`save_figure` writes PNG and SVG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cellrobust import robustness as rb
from cellrobust.report.style import (DPI, KNOWN_COLOURS, display_name, number, save_figure,
                                     segmenter_colours, severity_text)
from cellrobust.report.trust_plots import figure_trusted_range

__all__ = [
    "figure_ap_vs_iou",
    "figure_artefact_panels",
    "figure_examples",
    "figure_gallery",
    "figure_heatmap",
    "figure_paired_differences",
    "figure_training_curves",
    "figure_trusted_range",
    "save_figure",
    "segmenter_colours",
]

def _unit(table: pd.DataFrame, artefact: str) -> str:
    units = table.loc[table["artefact"] == artefact, "unit"] if "unit" in table else []
    return str(units.iloc[0]) if len(units) else ""


def _plot_curve(ax, curve: pd.DataFrame, colours: Mapping[str, str]) -> None:
    col = _xcol(curve)
    for seg, grp in curve.groupby("segmenter", sort=True):
        grp = grp.sort_values(col)
        x = grp[col].to_numpy(float)
        ax.plot(x, grp["value"], "-o", ms=3, lw=1.5, color=colours[seg],
                label=display_name(seg))
        if grp["lo"].notna().any():
            ax.fill_between(x, grp["lo"], grp["hi"], color=colours[seg], alpha=0.18, lw=0)


def figure_artefact_panels(
    table: pd.DataFrame, artefact: str, *, n_boot: int = 500, seed: int = 0,
    average: str = "micro",
) -> Figure:
    """The paper's Figures 3-5 for one artefact: six panels, all segmenters, 95 % CI bands.

    Panels: accuracy vs severity (dashed: accuracy of an all-background prediction); cell count
    vs severity (dashed: true count); Jaccard, precision and recall vs severity;
    precision-recall trajectory with the severity index annotated.
    """
    sub = table[table["artefact"] == artefact]
    if sub.empty:
        from cellrobust._validation import check_choice

        check_choice("artefact", artefact, sorted(set(table["artefact"])))
    colours = segmenter_colours(table["segmenter"].unique())
    unit = _unit(table, artefact)
    fig = Figure(figsize=(13, 7.5), layout="constrained")
    axes = fig.subplots(2, 3)
    panels = [("accuracy", "pixel accuracy"), ("count_pred", "cell count"),
              ("jaccard", "Jaccard (pixel IoU)"), ("precision", "pixel precision"),
              ("recall", "pixel recall")]
    kw = dict(average=average, n_boot=n_boot, seed=seed)
    for ax, (metric, label) in zip(axes.flat, panels):
        curve = rb.curves(sub, metric, **kw)
        _plot_curve(ax, curve, colours)
        ax.set_ylabel(label)
        ax.set_xlabel(f"{artefact} severity" + (f" ({unit})" if unit else ""))
        ax.grid(alpha=0.3)
    _reference_line(axes[0, 0], rb.curves(sub, "background_accuracy", **{**kw, "n_boot": 0}),
                    "all background")
    # every segmenter's rows carry the same true count: the mean over rows = cells per image
    counts = sub.groupby("severity_index")[["severity", "count_true"]].agg(
        {"severity": "first", "count_true": "mean"})
    counts["per_image"] = counts["count_true"]
    counts = counts.reset_index().sort_values(_xcol(counts))
    axes[0, 1].plot(counts[_xcol(counts)], counts["per_image"], "k--", lw=1,
                    label="true count")
    axes[0, 1].set_ylabel("cells per image")
    axes[0, 1].legend(fontsize=7)
    _pr_trajectory(axes[1, 2], sub, colours, average, unit)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{artefact}: segmentation vs severity ({average} average, "
                 f"95% bootstrap CI over frames)")
    return fig


def _reference_line(ax, curve: pd.DataFrame, label: str) -> None:
    first = curve[curve["segmenter"] == curve["segmenter"].iloc[0]]
    x = _xcol(first)
    first = first.sort_values(x)
    ax.plot(first[x], first["value"], "k--", lw=1, label=label)


def _xcol(frame: pd.DataFrame) -> str:
    """Plot against the severity value when finite everywhere, else the severity index."""
    return "severity" if np.isfinite(frame["severity"].to_numpy(float)).all() else "severity_index"


def _pr_trajectory(ax, sub: pd.DataFrame, colours, average: str, unit: str = "") -> None:
    """Pixel precision vs recall as severity grows: open circle = clean end, cross = strongest;
    only the strongest severity is written (once, in the title), so no numbers overlap."""
    prec = rb.curves(sub, "precision", average=average, n_boot=0)
    rec = rb.curves(sub, "recall", average=average, n_boot=0)
    both = prec.merge(rec, on=["segmenter", "severity_index"], suffixes=("_p", "_r"))
    for seg, grp in both.groupby("segmenter", sort=True):
        grp = grp.sort_values("severity_index")
        ax.plot(grp["value_r"], grp["value_p"], "-", lw=1.2, color=colours[seg],
                label=display_name(seg))
        ax.plot(grp["value_r"].iloc[0], grp["value_p"].iloc[0], "o", mfc="white",
                color=colours[seg], ms=5)
        ax.plot(grp["value_r"].iloc[-1], grp["value_p"].iloc[-1], "x", color=colours[seg], ms=6)
    top = both.sort_values("severity_index")["severity_p"].iloc[-1] if len(both) else 0
    ax.set_xlabel("pixel recall")
    ax.set_ylabel("pixel precision")
    ax.set_title(f"precision-recall trajectory: ○ clean → × {severity_text(top, unit)}",
                 fontsize=8)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")


def figure_ap_vs_iou(table: pd.DataFrame, *, levels: Sequence[int] | None = None) -> Figure:
    """AP = TP/(TP+FP+FN) (not COCO AP) vs IoU threshold: clean, then per artefact at chosen
    severity levels (default: the middle and the strongest).

    One panel per artefact (first panel: clean images - the raw clean reference rows when the
    table has them), colour = segmenter, line style = severity (named in each panel's own
    small key); one shared segmenter legend outside the panels, so nothing covers a curve.
    """
    ap = rb.ap_curve(table)
    colours = segmenter_colours(table["segmenter"].unique())
    arts = sorted(set(ap["artefact"]) - {rb.CLEAN})
    fig = Figure(figsize=(3.6 * (len(arts) + 1) + 1.8, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(arts) + 1, sharey=True))
    clean_art = rb.CLEAN if (ap["artefact"] == rb.CLEAN).any() else arts[0]
    _ap_lines(axes[0], ap[(ap["severity_index"] == 0) & (ap["artefact"] == clean_art)],
              colours, "-")
    axes[0].set_title("clean")
    for ax, art in zip(axes[1:], arts):
        sub = ap[ap["artefact"] == art]
        unit = _unit(table, art)
        chosen = levels or _default_levels(sub["severity_index"].unique())
        handles = []
        for style, lvl in zip(["--", ":", "-."], chosen):
            part = sub[sub["severity_index"] == lvl]
            if not part.empty:
                _ap_lines(ax, part, colours, style)
                handles.append(ax.plot([], [], style, color="0.3",
                                       label=severity_text(part["severity"].iloc[0], unit))[0])
        ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  ncols=len(handles) or 1, title="severity", title_fontsize=7, frameon=False)
        ax.set_title(art.replace("_", " "))
    for ax in axes:
        ax.set_xlabel("IoU threshold")
        ax.grid(alpha=0.3)
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("AP = TP/(TP+FP+FN)")
    segs = sorted(set(ap["segmenter"]))
    fig.legend([axes[0].plot([], [], "-", color=colours[s])[0] for s in segs],
               [display_name(s) for s in segs], loc="outside right center", fontsize=8)
    return fig


def _default_levels(levels) -> list[int]:
    levels = sorted(int(v) for v in levels if v > 0)
    if not levels:
        return []
    return sorted({levels[len(levels) // 2], levels[-1]})


def _ap_lines(ax, part, colours, style):
    for seg, grp in part.groupby("segmenter", sort=True):
        ax.plot(grp["threshold"], grp["ap"], style, marker="o", ms=3, color=colours[seg])


HEATMAP_TITLES = {
    "rpc": "Share of the clean {metric} kept under corruption (rPC; 1 = no loss)",
    "auc": "Area under the {metric}-vs-severity curve over the clean score (1 = no loss)",
    "ce": "Errors relative to the reference segmenter (CE; below 1 = fewer errors)",
    "rel_ce": "Loss relative to the reference segmenter's loss (relative CE; below 1 = less)",
    "mpc": "Mean {metric} under corruption (mPC)",
}


def figure_heatmap(score_table: pd.DataFrame, value: str = "rpc", *,
                   artefacts_as_rows: bool | None = None) -> Figure:
    """Segmenter x artefact heat map of one robustness score (e.g. ``rpc``, ``auc``, ``ce``).

    ``artefacts_as_rows`` (default: when there are more than 6 artefacts and more artefacts
    than segmenters) puts the artefacts down the side, so a study of every artefact gives a
    readable portrait figure instead of a strip 27 inches wide.
    """
    grid = score_table.pivot(index="segmenter", columns="artefact", values=value)
    cols = [c for c in grid.columns if c != "mean"] + (["mean"] if "mean" in grid.columns else [])
    grid = grid[cols]
    if artefacts_as_rows is None:
        n_artefacts = len(cols) - ("mean" in cols)
        artefacts_as_rows = n_artefacts > 6 and n_artefacts > len(grid)
    if artefacts_as_rows:
        grid = grid.T
    fig = Figure(figsize=(1.4 * grid.shape[1] + 3, 0.55 * grid.shape[0] + 1.8),
                 layout="constrained")
    ax = fig.subplots()
    data = grid.to_numpy(float)
    cmap = "RdYlGn_r" if value in ("ce", "rel_ce") else "RdYlGn"
    im = ax.imshow(data, cmap=cmap, aspect="auto",
                   vmin=np.nanmin(data) if np.isfinite(data).any() else 0,
                   vmax=np.nanmax(data) if np.isfinite(data).any() else 1)
    for (i, j), v in np.ndenumerate(data):
        ax.text(j, i, "—" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center",
                fontsize=8)
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right")
    ax.set_yticks(range(grid.shape[0]), [display_name(i) for i in grid.index])
    if artefacts_as_rows:
        ax.set_xticks(range(grid.shape[1]), [display_name(c) for c in grid.columns],
                      rotation=30, ha="right")
    metric = score_table["metric"].iloc[0] if "metric" in score_table else ""
    ax.set_title(HEATMAP_TITLES.get(value, value).format(metric=metric), fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def figure_training_curves(histories: Mapping[str, pd.DataFrame]) -> Figure:
    """Training and validation loss per epoch for each trained model.

    ``histories`` maps a model name to a frame with an ``epoch`` column and any of
    ``train_loss``, ``val_loss``, ``val_iou`` (other numeric columns are ignored).
    """
    colours = segmenter_colours(list(histories))
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_loss, ax_val = fig.subplots(1, 2)
    for name, hist in histories.items():
        x = hist["epoch"] if "epoch" in hist else np.arange(len(hist))
        if "train_loss" in hist:
            ax_loss.plot(x, hist["train_loss"], "-", color=colours[name], label=f"{display_name(name)} train")
        if "val_loss" in hist:
            ax_loss.plot(x, hist["val_loss"], "--", color=colours[name], label=f"{display_name(name)} val")
        score = next((c for c in ("val_iou", "val_jaccard", "val_dice") if c in hist), None)
        if score:
            ax_val.plot(x, hist[score], "-o", ms=3, color=colours[name], label=f"{display_name(name)} {score}")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_val.set_xlabel("epoch")
    ax_val.set_ylabel("validation score")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return fig


def figure_gallery(rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray, object]]]], *,
                   vrange: tuple[float, float] | None = None, title: str = "") -> Figure:
    """Artefact x severity gallery (the studies' Figure 2, for any artefacts).

    Parameters
    ----------
    rows : sequence of (row label, [(caption, image (H, W), outline labels or None), ...])
        One row per artefact, its panels in increasing severity (level 0 = the clean image).
        Labels given with a panel (geometric artefacts) are drawn as red outlines, so the
        image/label alignment can be checked by eye.
    vrange : (float, float), optional
        One gray scale for every panel (brightness changes stay visible); None = each
        panel's own range.
    title : str
    """
    from skimage.segmentation import find_boundaries

    ncol = max((len(items) for _, items in rows), default=1)
    fig = Figure(figsize=(1.75 * ncol, 1.85 * max(1, len(rows))), layout="constrained")
    axes = np.atleast_2d(fig.subplots(max(1, len(rows)), ncol, squeeze=False))
    vmin, vmax = vrange if vrange is not None else (None, None)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for r, (label, items) in enumerate(rows):
        for c, (caption, img, outline) in enumerate(items):
            ax = axes[r, c]
            ax.imshow(np.asarray(img, dtype=float), cmap="gray", vmin=vmin, vmax=vmax,
                      interpolation="nearest")
            if outline is not None:
                edges = find_boundaries(np.asarray(outline), mode="inner")
                over = np.zeros((*edges.shape, 4), dtype=np.float32)
                over[edges] = (1.0, 0.2, 0.1, 0.8)
                ax.imshow(over, interpolation="nearest")
            ax.set_title(caption, fontsize=7, pad=2)
        axes[r, 0].set_ylabel(label, fontsize=7)
        for c in range(len(items), ncol):
            axes[r, c].set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _show(ax, img, title):
    ax.imshow(np.asarray(img, dtype=float), cmap="gray", interpolation="nearest")
    ax.set_title(title, fontsize=7)
    ax.set_axis_off()


def overlay(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RGB float image: true positives white, false positives magenta, false negatives green."""
    t, p = np.asarray(true) > 0, np.asarray(pred) > 0
    rgb = np.zeros(t.shape + (3,), dtype=float)
    rgb[t & p] = (1, 1, 1)
    rgb[~t & p] = (1, 0, 1)
    rgb[t & ~p] = (0, 0.8, 0)
    return rgb


def figure_examples(panels: Sequence[tuple[str, np.ndarray, np.ndarray, Mapping[str, np.ndarray]]]
                    ) -> Figure:
    """Example predictions (the paper's Figure 6).

    ``panels``: rows of ``(caption, corrupted image, true labels, {segmenter: predicted
    labels})``. Each row shows the input, then one overlay per segmenter (white: true positive,
    magenta: false positive, green: false negative).
    """
    segs = sorted({s for *_, preds in panels for s in preds})
    fig = Figure(figsize=(2.0 * (len(segs) + 1), 2.1 * len(panels)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(panels), len(segs) + 1))
    for r, (caption, image, true, preds) in enumerate(panels):
        _show(axes[r, 0], image, caption)
        for c, seg in enumerate(segs, start=1):
            axes[r, c].set_axis_off()
            if seg in preds:
                axes[r, c].imshow(overlay(true, preds[seg]), interpolation="nearest")
                axes[r, c].set_title(seg, fontsize=7)
    fig.suptitle("white: true positive, magenta: false positive, green: false negative",
                 fontsize=8)
    return fig


def figure_paired_differences(diffs: pd.DataFrame) -> Figure:
    """Paired difference ``a - b`` vs severity per artefact with its bootstrap CI."""
    arts = sorted(set(diffs["artefact"]))
    fig = Figure(figsize=(3.6 * len(arts), 3.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(arts)))
    for ax, art in zip(axes, arts):
        d = diffs[diffs["artefact"] == art].sort_values("severity_index")
        ax.axhline(0, color="k", lw=0.8)
        ax.plot(d["severity"], d["diff"], "-o", ms=3, color="#2ca02c")
        ax.fill_between(d["severity"], d["lo"], d["hi"], color="#2ca02c", alpha=0.2, lw=0)
        sig = d[d["significant"]]
        ax.plot(sig["severity"], sig["diff"], "k*", ms=6, label="CI excludes 0")
        ax.set_title(art)
        ax.set_xlabel("severity")
        ax.grid(alpha=0.3)
    first = diffs.iloc[0]
    axes[0].set_ylabel(f"{first['metric']}: {first['a']} - {first['b']}")
    axes[0].legend(fontsize=7)
    return fig
