"""A single self-contained HTML report: every figure embedded as a ``data:`` URI, no scripts,
no external resources (it opens offline, can be e-mailed, and renders identically anywhere).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["GLOSSARY", "REFERENCE_NOTES", "Figure", "ReportContent", "render_html"]

GLOSSARY: dict[str, str] = {
    "severity": "Strength of an artefact in its physical unit (gray levels, pixels, zoom "
    "factor...). Severity index 0 is the unmodified image; each artefact's ladder/grid is "
    "listed in the artefact table.",
    "pixel accuracy": "(TP+TN)/(TP+FP+FN+TN) over pixels, foreground = label > 0. Cells cover "
    "few pixels, so an all-background prediction already scores high: the dashed "
    "'all background' line shows that level.",
    "Jaccard (pixel IoU)": "TP/(TP+FP+FN) over foreground pixels. 0/0 (nothing true, nothing "
    "predicted) counts as 1.",
    "precision / recall": "TP/(TP+FP) and TP/(TP+FN) over foreground pixels.",
    "cell count": "Connected components (8-connectivity) of the binary mask, background "
    "excluded. Rising counts under noise mean over-segmentation (speckles called cells).",
    "AP at IoU τ": "TP/(TP+FP+FN) of instances matched one-to-one with IoU ≥ τ (the DSB 2018 / "
    "StarDist / Cellpose convention) - not COCO's area under the precision-recall curve.",
    "micro vs macro": "micro pools the counts of all images before the ratio (default here); "
    "macro computes the ratio per image and averages the images.",
    "SEG": "Cell Tracking Challenge measure: mean Jaccard of each reference cell with the "
    "predicted cell covering more than half of it (0 when none).",
    "95% CI": "Percentile bootstrap resampling frames (patches of one frame are not "
    "independent), the same resamples for every segmenter and severity, so differences are "
    "paired. Significance is assessed only with at least 5 independent frames.",
    "clean": "Score on the raw images as read (the 'none' reference rows) when the sweep has "
    "them, else on each artefact's severity index 0.",
    "trusted range": "Largest severity, in the artefact's unit, up to which the score stays at "
    "or above the stated share of the model's own clean score (and/or an absolute floor); "
    "linearly interpolated at the first downward crossing between grid points. '≥ x': never "
    "crossed on the grid.",
    "—": "A score left undefined because its denominator is ~0 (a clean score below 0.1, a "
    "reference that barely errs or degrades); the reason is in the 'note' column.",
    "mPC / rPC": "Mean performance under corruption (mean over severities > 0) and its ratio "
    "to the clean score (Michaelis et al. 2019). rPC = 1: no loss.",
    "AUC (normalised)": "Area under the score-vs-severity-index curve (index scaled to [0, 1]), "
    "divided by the clean score. 1 = no degradation.",
    "CE / relative CE": "Corruption error: summed error (1 - score) over severities divided by "
    "the reference segmenter's; relative CE: summed drop from clean divided by the "
    "reference's drop (ImageNet-C, Hendrycks & Dietterich 2019, reference in AlexNet's role). "
    "Below 1 = better than the reference. The 'mean' column gives mCE / relative mCE.",
}

REFERENCE_NOTES = [
    "Robustness study of the DeepImageJ pancreatic-stem-cell U-Net (PhC-C2DL-PSC): U-Nets not "
    "trained with artefacts collapse toward an all-background prediction under strong "
    "non-uniform illumination (accuracy falls to the background-only line, recall to ~0) and "
    "over-segment under strong gaussian noise (cell counts far above the truth); the "
    "artefact-trained U-Net degrades least; DoG+Otsu and NLM+Otsu hold at first and then "
    "fail. Cell-size changes hurt every model away from the training scale.",
    "Neuromatch Academy project (speckle noise, affine + speckle augmentation, Adamax): AP "
    "against IoU threshold drops under speckle noise for the plain model and is largely "
    "recovered by robust training.",
    "Compare shapes, not numbers: this run's data, budgets and grids may differ from the "
    "studies' (see 'What was run').",
]


@dataclass(frozen=True)
class Figure:
    """One figure: PNG path (embedded) and optional SVG path relative to the report (linked)."""

    title: str
    png: Path
    caption: str = ""
    svg: Path | None = None


@dataclass(frozen=True)
class ReportContent:
    """Everything the HTML page shows."""

    title: str
    run: Mapping[str, object]
    scores: pd.DataFrame
    figures: Sequence[Figure]
    artefacts: pd.DataFrame
    findings: Sequence[str] = ()
    paired: pd.DataFrame | None = None
    files: Sequence[tuple[str, str]] = field(default_factory=tuple)
    verdict: object | None = None  # report.verdict.Verdict
    trusted: pd.DataFrame | None = None
    strategies: object | None = None  # report.strategies.StrategySection
    clean_reference: pd.DataFrame | None = None  # raw clean vs the studies' min-max level 0
    models: pd.DataFrame | None = None  # provenance per model (study.json 'models')


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #2ca02c}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:13px;color:#555}dt{font-weight:600}dd{margin:0 0 .6em 1.5em}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:12px}
.find{background:#f4fbf4;border-left:4px solid #2ca02c;padding:.5em 1em}
nav a{margin-right:1em}
.verdict{background:#eef5fc;border-left:4px solid #1f77b4;padding:.5em 1em}
.warn{background:#fff6e5;border-left:4px solid #ff7f0e;padding:.4em 1em;margin:.5em 0}
"""


def _esc(value: object) -> str:
    return html.escape(str(value))


def data_uri(path: Path) -> str:
    """``data:image/png;base64,...`` for a PNG file."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _table(frame: pd.DataFrame, *, digits: int = 3) -> str:
    head = "".join(f"<th class='l'>{_esc(c)}</th>" if i == 0 else f"<th>{_esc(c)}</th>"
                   for i, c in enumerate(frame.columns))
    body = []
    for _, row in frame.iterrows():
        cells = []
        for i, v in enumerate(row):
            text = f"{v:.{digits}f}" if isinstance(v, float) else str(v)
            text = "—" if text == "nan" else text
            cells.append(f"<td class='l'>{_esc(text)}</td>" if i == 0 or not
                         isinstance(v, (int, float)) else f"<td>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(fig: Figure, index: int) -> str:
    svg = f" (<a href='{_esc(Path(fig.svg).as_posix())}'>SVG</a>)" if fig.svg else ""
    return (f"<figure id='fig{index}'><img src='{data_uri(fig.png)}' alt='{_esc(fig.title)}'>"
            f"<figcaption><b>Figure {index}. {_esc(fig.title)}.</b> {_esc(fig.caption)}{svg}"
            "</figcaption></figure>")


def _run_section(run: Mapping[str, object]) -> str:
    simple = [(k, v) for k, v in run.items() if not isinstance(v, (dict, list))]
    rows = "".join(f"<tr><th class='l'>{_esc(k)}</th><td class='l'>{_esc(v)}</td></tr>"
                   for k, v in simple)
    full = json.dumps(run, indent=2, default=str)
    return (f"<table>{rows}</table><details><summary>full resolved configuration</summary>"
            f"<pre>{_esc(full)}</pre></details>")


def _verdict_section(content: ReportContent) -> list[str]:
    """The first screen: the verdict with its warnings, then the trusted-range table."""
    out = []
    v = content.verdict
    if v is not None:
        claims = "".join(f"<li>{_esc(c)}</li>" for c in v.claims) or "<li>no recommendation</li>"
        out += ["<h2 id='verdict'>Verdict</h2>", f"<div class='verdict'><ul>{claims}</ul></div>"]
        out += [f"<p class='warn'><b>Warning:</b> {_esc(w)}</p>" for w in v.warnings]
    if content.trusted is not None and not content.trusted.empty:
        out += ["<h2 id='trusted'>Trusted range</h2>",
                "<p>Severity up to which each model keeps the stated share of its own clean "
                "score (interpolated at the first crossing; [95% CI over frames]; '≥': never "
                "crossed on the grid).</p>", _table(content.trusted)]
    return out


def _strategies_section(section) -> list[str]:
    """"Fix the data vs fix the model": sentences, then the strategy-vs-plain table."""
    if section is None:
        return []
    items = "".join(f"<li>{_esc(s)}</li>" for s in section.sentences)
    return ["<h2 id='strategies'>Fix the data vs fix the model</h2>",
            "<p>Each test-time strategy against the plain model it wraps, on the same "
            "corrupted images: trusted range and mPC, differences with paired 95% CIs over "
            "frames (figure 'Fix the data vs fix the model').</p>",
            f"<div class='find'><ul>{items}</ul></div>", _table(section.table)]


def render_html(content: ReportContent) -> str:
    """Return the report page as a string (figures embedded)."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_esc(content.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_esc(content.title)}</h1>",
        "<nav><a href='#verdict'>Verdict</a><a href='#trusted'>Trusted range</a>"
        "<a href='#findings'>Findings</a><a href='#scores'>Scores</a>"
        "<a href='#models'>Models</a><a href='#figures'>Figures</a>"
        "<a href='#artefacts'>Artefacts</a>"
        "<a href='#glossary'>Glossary</a><a href='#run'>What was run</a></nav>",
        *_verdict_section(content),
        "<h2 id='findings'>Findings</h2><div class='find'><ul>",
        "".join(f"<li>{_esc(f)}</li>" for f in content.findings) or "<li>none computed</li>",
        "</ul></div>",
        "<h2 id='scores'>Robustness scores</h2>",
        "<p>Per model and artefact, value [95% CI over frames]; definitions in the "
        "<a href='#glossary'>glossary</a>. Row 'mean' averages the artefacts; '—' is a score "
        "whose denominator is ~0 (reason in 'note').</p>",
        _table(content.scores),
    ]
    if content.clean_reference is not None:
        parts += ["<h3>Clean reference: raw images vs the studies' min-max rescale</h3>",
                  "<p>Every score above uses the raw images as 'clean'. The studies' level 0 "
                  "of illumination and noise min-max rescaled the image first; its score is "
                  "shown here on its own, not as the clean reference.</p>",
                  _table(content.clean_reference)]
    if content.paired is not None and not content.paired.empty:
        head = "<h3>Paired differences (95% bootstrap CI over frames)</h3>"
        if len(content.paired) > 24:
            parts += [head, f"<details><summary>{len(content.paired)} rows</summary>",
                      _table(content.paired), "</details>"]
        else:
            parts += [head, _table(content.paired)]
    parts += _strategies_section(content.strategies)
    if content.models is not None and not content.models.empty:
        parts += ["<h2 id='models'>Models</h2>",
                  "<p>Every judged model side by side with its provenance: kind, file, SHA-256 "
                  "(first 12 digits; the full record is in <code>study.json</code>), options "
                  "and library versions.</p>", _table(content.models)]
    parts.append("<h2 id='figures'>Figures</h2>")
    parts += [_figure(f, i) for i, f in enumerate(content.figures, start=1)]
    parts += ["<h2 id='artefacts'>Artefacts</h2>", _table(content.artefacts)]
    parts.append("<h2 id='glossary'>Glossary</h2><dl>")
    parts += [f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in GLOSSARY.items()]
    parts.append("</dl><h2>Reference studies, for comparison</h2><ul>")
    parts += [f"<li>{_esc(n)}</li>" for n in REFERENCE_NOTES]
    parts += ["</ul>", "<h2 id='run'>What was run</h2>", _run_section(content.run)]
    if content.files:
        parts.append("<h3>Files</h3><ul>")
        parts += [f"<li><code>{_esc(n)}</code>: {_esc(d)}</li>" for n, d in content.files]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
