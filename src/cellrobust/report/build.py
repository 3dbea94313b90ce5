"""Rebuild scores, figures, ``report.html`` and ``summary.md`` from a results folder.

Nothing is recomputed but summaries: the input is the tidy results table
(``results.parquet``, or ``results.csv``) plus what the study left beside it (``study.json``
or ``sweep.json`` for "what was run", ``models/*/history.csv`` training curves, and
``figures/gallery.png`` / ``figures/examples.png`` drawn from images by the study).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cellrobust import robustness as rb
from cellrobust._io import atomic_path, write_text
from cellrobust._validation import DataError
from cellrobust.report import plots
from cellrobust.report.html import Figure, ReportContent, render_html

__all__ = ["ReportOptions", "build_report", "findings", "read_results"]


@dataclass(frozen=True)
class ReportOptions:
    """How summaries are computed: scored metric, CE reference, averaging, bootstrap."""

    metric: str = "jaccard"
    reference: str = "dog_otsu"
    average: str = "micro"
    n_boot: int = 500
    seed: int = 0
    robust: str = "artefact"
    baseline: str = "original"
    title: str = "cellrobust robustness report"
    formats: tuple[str, ...] = ("png", "svg")


def read_results(results_dir: str | Path) -> pd.DataFrame:
    """Read ``results.parquet`` (or ``results.csv``) from a results folder."""
    folder = Path(results_dir)
    for name, reader in (("results.parquet", pd.read_parquet), ("results.csv", pd.read_csv)):
        if (folder / name).is_file():
            return reader(folder / name)
    raise DataError(
        f"{folder}: no results.parquet or results.csv; run a sweep or study into this "
        "folder first"
    )


def _run_info(folder: Path, table: pd.DataFrame) -> dict:
    for name in ("study.json", "sweep.json"):
        if (folder / name).is_file():
            return json.loads((folder / name).read_text())
    return {"segmenters": sorted(set(table["segmenter"])),
            "artefacts": sorted(set(table["artefact"]))}


def _artefact_table(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for art, grp in table.groupby("artefact", sort=True):
        sev = grp.groupby("severity_index")["severity"].first()
        info = _registry_info(art)
        rows.append({"artefact": art, "parameter": info.get("parameter", ""),
                     "unit": str(grp["unit"].iloc[0]) if "unit" in grp else "",
                     "levels": ", ".join(f"{v:g}" for v in sev.to_numpy()),
                     "description": info.get("description", "")})
    return pd.DataFrame(rows)


def _registry_info(name: str) -> dict:
    try:
        from cellrobust import artefacts

        spec = artefacts.get(name)
        return {"parameter": spec.parameter, "description": spec.description}
    except Exception:  # noqa: BLE001 - registry absent or name unknown: table-only info
        return {}


def _histories(folder: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for path in sorted(folder.glob("models/*/history.csv")):
        frame = pd.read_csv(path)
        if not frame.empty:
            out[path.parent.name] = frame
    return out


def findings(table: pd.DataFrame, score_table: pd.DataFrame, opts: ReportOptions) -> list[str]:
    """Plain-language findings derived from the table (the main effect, collapse, counts)."""
    out = []
    for art, grp in score_table[score_table["artefact"] != "mean"].groupby("artefact"):
        out.append(_most_robust(art, grp, opts.metric))
    segs = set(table["segmenter"])
    if {opts.robust, opts.baseline} <= segs:
        diffs = rb.paired_differences(table, opts.robust, opts.baseline, opts.metric,
                                      average=opts.average, n_boot=opts.n_boot, seed=opts.seed)
        for art, d in diffs.groupby("artefact"):
            top = d.sort_values("severity_index").iloc[-1]
            verdict = "significantly better" if top["significant"] and top["diff"] > 0 else (
                "significantly worse" if top["significant"] else "not significantly different")
            out.append(f"{art} at the strongest severity ({top['severity']:g}): {opts.robust} "
                       f"vs {opts.baseline} {opts.metric} difference {top['diff']:+.3f} "
                       f"[95% CI {top['lo']:+.3f}, {top['hi']:+.3f}] - {verdict}.")
    out += _failure_modes(table, opts.average)
    return out


def _most_robust(art: str, grp: pd.DataFrame, metric: str) -> str:
    """Best under corruption (mPC) and, when another, smallest relative loss (rPC): a
    segmenter that is poor on clean images can lose little and still be the worse choice."""
    best = grp.sort_values("mpc", ascending=False).iloc[0]
    steady = grp.sort_values("rpc", ascending=False).iloc[0]
    text = (f"{art}: best {metric} under corruption (mPC) is {best['segmenter']} "
            f"(mPC {best['mpc']:.2f}, clean {best['clean']:.2f}, rPC {best['rpc']:.2f})")
    if steady["segmenter"] != best["segmenter"]:
        text += (f"; smallest relative loss (rPC) is {steady['segmenter']} "
                 f"(rPC {steady['rpc']:.2f}, but clean {steady['clean']:.2f}, "
                 f"mPC {steady['mpc']:.2f})")
    return text + "."


def _failure_modes(table: pd.DataFrame, average: str) -> list[str]:
    out = []
    last = table[table["severity_index"] == table.groupby("artefact")["severity_index"]
                 .transform("max")]
    for (art, seg), grp in last.groupby(["artefact", "segmenter"]):
        recall = rb.compute_metric(grp, "recall", average=average)
        ratio = rb.compute_metric(grp, "count_ratio", average="micro")
        if recall < 0.2:
            out.append(f"{seg} collapses toward background under strong {art} "
                       f"(pixel recall {recall:.2f}).")
        elif ratio > 1.5:
            out.append(f"{seg} over-segments under strong {art} "
                       f"({ratio:.1f}x the true cell count).")
    return out


def _markdown_table(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(c.replace("nan", "-") for c in cells) + " |")
    return "\n".join(lines)


def _summary_md(opts, run, score_table, finds, figs, folder) -> str:
    parts = [f"# {opts.title}", "", f"Results: `{folder}`", "", "## Findings", ""]
    parts += [f"- {f}" for f in finds] + ["", f"## Robustness scores ({opts.metric}, "
              f"{opts.average} average, CE reference {opts.reference})", "",
              _markdown_table(score_table), "", "## Figures", ""]
    parts += [f"- {f.title}: `{f.png.relative_to(folder)}`" for f in figs]
    parts += ["", "## What was run", "", "```json", json.dumps(run, indent=2, default=str),
              "```", ""]
    return "\n".join(parts)


def _figures(table, score_table, folder, opts) -> list[Figure]:
    figdir = folder / "figures"
    figs: list[Figure] = []

    def add(fig, stem, title, caption):
        paths = plots.save_figure(fig, figdir / stem, ("png", *(f for f in opts.formats
                                                              if f != "png")))
        svg = next((p.relative_to(folder) for p in paths if p.suffix == ".svg"), None)
        figs.append(Figure(title, paths[0], caption, svg))

    if (figdir / "gallery.png").is_file():
        figs.append(Figure("Artefact gallery", figdir / "gallery.png",
                           "A clean patch, its mask and each artefact at increasing severity."))
    for art in sorted(set(table["artefact"])):
        add(plots.figure_artefact_panels(table, art, n_boot=opts.n_boot, seed=opts.seed,
                                         average=opts.average),
            f"curves_{art}", f"{art}: metrics vs severity",
            "Bands: 95% bootstrap CI over images. Dashed: all-background accuracy; true count.")
    if (figdir / "examples.png").is_file():
        figs.append(Figure("Example predictions", figdir / "examples.png",
                           "Per segmenter: white TP, magenta FP, green FN pixels."))
    if any(c.startswith("tp@") for c in table.columns):
        add(plots.figure_ap_vs_iou(table), "ap_vs_iou", "AP vs IoU threshold",
            "AP = TP/(TP+FP+FN) of matched instances; clean and at two severity levels.")
    add(plots.figure_heatmap(score_table, "rpc"), "heatmap_rpc", "Robustness heat map (rPC)",
        "Relative performance under corruption: mean corrupted score / clean score.")
    if score_table["ce"].notna().any():
        add(plots.figure_heatmap(score_table, "ce"), "heatmap_ce",
            f"Corruption error vs {opts.reference}", "Below 1: fewer errors than the reference.")
    hist = _histories(folder)
    if hist:
        add(plots.figure_training_curves(hist), "training_curves", "Training curves",
            "Loss per epoch (solid: training, dashed: validation) and validation score.")
    return figs


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:  # a reader never sees a half-written table
        frame.to_csv(tmp, index=False)


def build_report(results_dir: str | Path, options: ReportOptions = ReportOptions()) -> Path:
    """Write scores, figures, ``report.html`` and ``summary.md`` into ``results_dir``.

    Returns
    -------
    Path
        The HTML report.
    """
    folder = Path(results_dir)
    table = read_results(folder)
    opts = options
    score_table = rb.scores(table, opts.metric, reference=opts.reference, average=opts.average)
    _write_csv(score_table, folder / "scores.csv")
    curve = rb.curves(table, opts.metric, average=opts.average, n_boot=opts.n_boot,
                      seed=opts.seed)
    _write_csv(curve, folder / "curves.csv")
    paired = None
    if {opts.robust, opts.baseline} <= set(table["segmenter"]):
        paired = rb.paired_differences(table, opts.robust, opts.baseline, opts.metric,
                                       average=opts.average, n_boot=opts.n_boot, seed=opts.seed)
        _write_csv(paired, folder / "paired.csv")
    figs = _figures(table, score_table, folder, opts)
    run = _run_info(folder, table)
    finds = findings(table, score_table, opts)
    files = [("results.parquet / results.csv", "tidy results table, one row per segmenter x "
              "artefact x severity x image"), ("scores.csv", "robustness scores"),
             ("curves.csv", "metric vs severity with CI"), ("figures/", "PNG and SVG figures")]
    content = ReportContent(title=opts.title, run=run, scores=score_table, figures=figs,
                            artefacts=_artefact_table(table), findings=finds,
                            paired=_paired_view(paired), files=files)
    out = write_text(folder / "report.html", render_html(content))
    write_text(folder / "summary.md", _summary_md(opts, run, score_table, finds, figs, folder))
    return out


def _paired_view(paired: pd.DataFrame | None) -> pd.DataFrame | None:
    if paired is None:
        return None
    cols = ["artefact", "severity_index", "severity", "a", "b", "diff", "lo", "hi",
            "significant"]
    return paired[cols]
