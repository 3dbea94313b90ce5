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
from cellrobust._validation import DataError, check_choice, collect_errors
from cellrobust.report import plots
from cellrobust.report.html import Figure, ReportContent, render_html
from cellrobust.report.strategies import paired_mpc, strategy_report
from cellrobust.report.style import display_name, number, severity_text
from cellrobust.report.summary import summary_markdown
from cellrobust.report.tables import (clean_reference_view, models_view, paired_view,
                                     scores_view, trusted_view)
from cellrobust.report.verdict import eligible, make_verdict

__all__ = ["ReportOptions", "build_report", "findings", "read_results"]


@dataclass(frozen=True)
class ReportOptions:
    """How summaries are computed (validated; every invalid field reported at once).

    Attributes
    ----------
    metric : str
        Scored metric (higher = better).
    reference : str
        Segmenter in AlexNet's role for CE / relative CE.
    average : {"micro", "macro"}
    n_boot : int >= 0
        Frame-bootstrap replicates of every interval.
    seed : int
    robust, baseline : str
        A pair always compared in ``paired.csv`` (besides the recommended model against
        every other model).
    tolerance : float in (0, 1] or None; floor : float >= 0 or None
        Trusted-range rule (:func:`cellrobust.robustness.trusted_range_table`).
    title : str
    formats : tuple of str
        Figure formats besides PNG ("svg", "pdf").
    """

    metric: str = "jaccard"
    reference: str = "dog_otsu"
    average: str = "micro"
    n_boot: int = rb.DEFAULT_N_BOOT
    seed: int = 0
    robust: str = "artefact"
    baseline: str = "original"
    tolerance: float | None = 0.9
    floor: float | None = None
    title: str = "cellrobust robustness report"
    formats: tuple[str, ...] = ("png", "svg")

    def __post_init__(self):
        errors = []
        if self.average not in ("micro", "macro"):
            errors.append(f"average: expected 'micro' or 'macro', got {self.average!r}")
        if isinstance(self.n_boot, bool) or not isinstance(self.n_boot, int) or self.n_boot < 0:
            errors.append(f"n_boot: expected an integer >= 0, got {self.n_boot!r}")
        if self.tolerance is None and self.floor is None:
            errors.append("tolerance: give a tolerance, a floor, or both; got neither")
        if self.tolerance is not None and not 0 < float(self.tolerance) <= 1:
            errors.append(f"tolerance: expected a value in (0, 1], got {self.tolerance!r}")
        if self.floor is not None and not float(self.floor) >= 0:
            errors.append(f"floor: expected a value >= 0, got {self.floor!r}")
        bad = [f for f in self.formats if f not in ("png", "svg", "pdf")]
        if bad:
            errors.append(f"formats: unknown {bad}; valid values are: png, svg, pdf")
        collect_errors(errors, "report options")


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
    """``study.json`` or ``sweep.json``; a sweep's models' provenance comes from the stage's
    ``config.json`` (``segmenters``): ``sweep.json``'s own ``models`` holds only their digests
    (the resume fingerprint)."""
    for name in ("study.json", "sweep.json"):
        if (folder / name).is_file():
            info = json.loads((folder / name).read_text())
            if not _are_records(info.get("models")) and (folder / "config.json").is_file():
                recorded = json.loads((folder / "config.json").read_text()).get("segmenters")
                if _are_records(recorded):
                    info["models"] = recorded
            return info
    return {"segmenters": sorted(set(table["segmenter"])),
            "artefacts": sorted(set(table["artefact"]))}


def _are_records(models) -> bool:
    """Whether ``models`` maps names to provenance records (not to bare digests)."""
    return isinstance(models, dict) and bool(models) and all(
        isinstance(v, dict) for v in models.values())


def _artefact_table(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for art, grp in table.groupby("artefact", sort=True):
        sev = grp.groupby("severity_index")["severity"].first()
        info = _registry_info(art)
        rows.append({"artefact": art, "parameter": info.get("parameter", ""),
                     "unit": str(grp["unit"].iloc[0]) if "unit" in grp else "",
                     "levels": ", ".join(number(v) for v in sev.to_numpy()),
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
    per_art = score_table[score_table["artefact"] != "mean"]
    means = score_table[score_table["artefact"] == "mean"]
    ok = eligible(means) if len(means) else []
    for art, grp in per_art.groupby("artefact"):
        keep = grp[grp["segmenter"].isin(ok)] if ok else grp
        out.append(_most_robust(art, keep if len(keep) else grp, opts.metric))
    segs = set(table["segmenter"])
    if {opts.robust, opts.baseline} <= segs:
        diffs = rb.paired_differences(table, opts.robust, opts.baseline, opts.metric,
                                      average=opts.average, n_boot=opts.n_boot, seed=opts.seed)
        for art, d in diffs[diffs["artefact"] != rb.CLEAN].groupby("artefact"):
            out.append(_main_effect(art, d.sort_values("severity_index").iloc[-1], opts))
        mpc = paired_mpc(table, opts.robust, opts.baseline, metric=opts.metric,
                         average=opts.average, n_boot=opts.n_boot, seed=opts.seed)
        if len(mpc):
            out.append(_mpc_effect(mpc, opts))
    out += _failure_modes(table, opts.average)
    return out


def _mpc_effect(mpc: pd.DataFrame, opts: ReportOptions) -> str:
    """One sentence: the robust model's mPC minus the baseline's, per artefact and overall."""
    def part(row) -> str:
        tag = "" if row["n_frames"] >= rb.MIN_FRAMES else f", {row['n_frames']} frames"
        return (f"{'mean over artefacts' if row['artefact'] == 'mean' else row['artefact']} "
                f"{row['diff']:+.3f} [{row['lo']:+.3f}, {row['hi']:+.3f}]{tag}")

    overall = mpc[mpc["artefact"] == "mean"].iloc[0]
    verdict = ("not assessed" if overall["n_frames"] < rb.MIN_FRAMES else
               "significantly higher" if overall["significant"] and overall["diff"] > 0 else
               "significantly lower" if overall["significant"] else
               "not significantly different")
    return (f"mPC (severities >= 1), {display_name(opts.robust)} minus "
            f"{display_name(opts.baseline)}, paired 95% CI over frames: "
            + "; ".join(part(r) for _, r in mpc.iterrows()) + f" - {verdict}.")


def _main_effect(art: str, top, opts: ReportOptions) -> str:
    if not top["assessed"]:
        verdict = top["note"]
    else:
        verdict = ("significantly better" if top["significant"] and top["diff"] > 0 else
                   "significantly worse" if top["significant"] else
                   "not significantly different")
    return (f"{art} at its strongest severity ({severity_text(top['severity'], top['unit'])}): "
            f"{display_name(opts.robust)} minus {display_name(opts.baseline)} {opts.metric} "
            f"{top['diff']:+.3f} [95% CI {top['lo']:+.3f}, {top['hi']:+.3f}] - {verdict}.")


def _most_robust(art: str, grp: pd.DataFrame, metric: str) -> str:
    """Best under corruption (mPC) and, when another, smallest relative loss (rPC): a
    segmenter that is poor on clean images can lose little and still be the worse choice."""
    best = grp.sort_values("mpc", ascending=False).iloc[0]
    steady = grp.sort_values("rpc", ascending=False).iloc[0]
    text = (f"{art}: best {metric} under corruption (mPC) is {display_name(best['segmenter'])} "
            f"(mPC {best['mpc']:.2f}, clean {best['clean']:.2f}, rPC {best['rpc']:.2f})")
    if steady["segmenter"] != best["segmenter"]:
        text += (f"; smallest relative loss (rPC) is {display_name(steady['segmenter'])} "
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
        if art == rb.CLEAN:
            continue
        if recall < 0.2:
            out.append(f"{display_name(seg)} collapses toward background under strong {art} "
                       f"(pixel recall {recall:.2f}).")
        elif ratio > 1.5:
            out.append(f"{display_name(seg)} over-segments under strong {art} "
                       f"({ratio:.1f}× the true cell count).")
    return out


def _figures(table, score_table, trusted, folder, opts) -> list[Figure]:
    figdir = folder / "figures"
    figs: list[Figure] = []

    def add(fig, stem, title, caption):
        paths = plots.save_figure(fig, figdir / stem, ("png", *(f for f in opts.formats
                                                              if f != "png")))
        svg = next((p.relative_to(folder) for p in paths if p.suffix == ".svg"), None)
        figs.append(Figure(title, paths[0], caption, svg))

    add(plots.figure_trusted_range(trusted), "trusted_range", "Trusted range",
        "Severity, in each artefact's unit, up to which each model keeps the stated share of "
        "its clean score; interpolated at the first crossing; whiskers: 95% CI over frames.")
    if (figdir / "gallery.png").is_file():
        figs.append(Figure("Artefact gallery", figdir / "gallery.png",
                           "A clean patch, its mask and each artefact at increasing severity."))
    for art in sorted(set(table["artefact"]) - {rb.CLEAN}):
        add(plots.figure_artefact_panels(table, art, n_boot=opts.n_boot, seed=opts.seed,
                                         average=opts.average),
            f"curves_{art}", f"{art}: metrics vs severity",
            "Bands: 95% bootstrap CI over frames. Dashed: all-background accuracy; true count.")
    if (figdir / "examples.png").is_file():
        figs.append(Figure("Example predictions", figdir / "examples.png",
                           "Per segmenter: white TP, magenta FP, green FN pixels."))
    if any(c.startswith("tp@") for c in table.columns):
        add(plots.figure_ap_vs_iou(table), "ap_vs_iou", "AP vs IoU threshold",
            "AP = TP/(TP+FP+FN) of matched instances (not COCO AP); clean and at two "
            "severities per artefact.")
    add(plots.figure_heatmap(score_table, "rpc"), "heatmap_rpc", "Robustness heat map (rPC)",
        "Relative performance under corruption: mean corrupted score / clean score.")
    if score_table["ce"].notna().any():
        add(plots.figure_heatmap(score_table, "ce"), "heatmap_ce",
            f"Corruption error vs {display_name(opts.reference)}",
            "Below 1: fewer errors than the reference.")
    hist = _histories(folder)
    if hist:
        add(plots.figure_training_curves(hist), "training_curves", "Training curves",
            "Loss per epoch (solid: training, dashed: validation) and validation score.")
    return figs


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:  # a reader never sees a half-written table
        frame.to_csv(tmp, index=False)


def _paired_all(table: pd.DataFrame, recommended: str | None, opts: ReportOptions):
    """The recommended model against every other model, plus the robust/baseline pair."""
    segs = sorted(set(table["segmenter"]))
    pairs = [(recommended, b) for b in segs if recommended and b != recommended]
    if {opts.robust, opts.baseline} <= set(segs) and (opts.robust, opts.baseline) not in pairs:
        pairs.append((opts.robust, opts.baseline))
    parts = [rb.paired_differences(table, a, b, opts.metric, average=opts.average,
                                   n_boot=opts.n_boot, seed=opts.seed) for a, b in pairs]
    return pd.concat(parts, ignore_index=True) if parts else None


def _parameters(table: pd.DataFrame) -> dict[str, str]:
    return {a: _registry_info(a).get("parameter", "") for a in set(table["artefact"])}


FILES = [("results.parquet / results.csv", "tidy results table, one row per segmenter x "
          "artefact x severity x image"),
         ("scores.csv", "robustness scores with 95% CIs and the reason for any undefined one"),
         ("trusted.csv", "trusted range per model and artefact, with CI"),
         ("curves.csv", "metric vs severity with CI"),
         ("paired.csv", "paired differences: recommended model vs every other (and the "
          "robust/baseline pair)"),
         ("summary.md", "verdict, trusted ranges, findings and scores as text"),
         ("report.html", "this report"), ("figures/", "PNG and SVG figures")]
EXTRA_FILES = [("study.json", "the resolved study configuration"),
               ("sweep.json", "the sweep configuration"),
               ("strategies.csv", "each strategy against its plain model: trusted range and "
                "mPC with paired 95% CIs"),
               ("models/", "trained models: config.yaml, best.pt, last.pt, history.csv"),
               ("cells/", "finished sweep cells (resume)")]


def _files(folder: Path) -> list[tuple[str, str]]:
    return FILES + [(n, d) for n, d in EXTRA_FILES if (folder / n.rstrip("/")).exists()]


def build_report(results_dir: str | Path, options: ReportOptions = ReportOptions()) -> Path:
    """Write scores, trusted ranges, figures, ``report.html`` and ``summary.md``.

    Returns
    -------
    Path
        The HTML report.
    """
    folder, opts = Path(results_dir), options
    table = read_results(folder)
    check_choice("metric", opts.metric, rb.metric_names(table))
    kw = dict(average=opts.average, n_boot=opts.n_boot, seed=opts.seed)
    score_table = rb.scores(table, opts.metric, reference=opts.reference, **kw)
    trusted = rb.trusted_range_table(table, metric=opts.metric, tolerance=opts.tolerance,
                                     floor=opts.floor, **kw)
    _write_csv(score_table, folder / "scores.csv")
    _write_csv(trusted, folder / "trusted.csv")
    curves = rb.curves(table, opts.metric, **kw)
    _write_csv(curves, folder / "curves.csv")
    verdict = make_verdict(score_table, trusted, None, metric=opts.metric)
    paired = _paired_all(table, verdict.recommended, opts)
    if paired is not None:
        _write_csv(paired, folder / "paired.csv")
    params = _parameters(table)
    verdict = make_verdict(score_table, trusted, paired, metric=opts.metric, parameters=params)
    figs = _figures(table, score_table, trusted, folder, opts)
    strategies = strategy_report(table, folder, opts)  # None without strategy segmenters
    if strategies is not None:
        figs.append(strategies.figure)
    run, finds, files = _run_info(folder, table), findings(table, score_table, opts), _files(folder)
    finds += list(strategies.sentences) if strategies is not None else []
    content = ReportContent(title=opts.title, run=run, scores=scores_view(score_table),
                            figures=figs, artefacts=_artefact_table(table), findings=finds,
                            paired=None if paired is None else paired_view(paired), files=files,
                            verdict=verdict, trusted=trusted_view(trusted, params),
                            strategies=strategies, models=models_view(run),
                            clean_reference=clean_reference_view(curves, score_table))
    out = write_text(folder / "report.html", render_html(content))
    write_text(folder / "summary.md", summary_markdown(
        title=opts.title, folder=folder, verdict=verdict, trusted=content.trusted,
        findings=finds, scores=content.scores, figures=figs, files=files, run=run,
        metric=opts.metric, average=opts.average, reference=opts.reference,
        clean_reference=content.clean_reference, models=content.models))
    return out
