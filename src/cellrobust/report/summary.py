"""``summary.md``: the verdict, the trusted ranges, findings and scores for terminals and
notebooks (the same content as the top of ``report.html``)."""

from __future__ import annotations

import json

import pandas as pd

__all__ = ["markdown_table", "summary_markdown"]


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table; floats with 3 decimals, NaN as "—"."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = ["—" if isinstance(v, float) and v != v else
                 (f"{v:.3f}" if isinstance(v, float) else str(v)) for v in row]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def summary_markdown(*, title, folder, verdict, trusted, findings, scores, figures, files,
                     run, metric, average, reference, clean_reference=None,
                     models=None) -> str:
    """The whole ``summary.md`` text."""
    parts = [f"# {title}", "", f"Results: `{folder}`", "", "## Verdict", ""]
    parts += [f"- {c}" for c in verdict.claims] or ["- no recommendation"]
    parts += [f"- **Warning:** {w}" for w in verdict.warnings]
    parts += ["", f"## Trusted range ({metric})", "", markdown_table(trusted), "",
              "## Findings", ""] + [f"- {f}" for f in findings]
    parts += ["", f"## Robustness scores ({metric}, {average} average, 95% CI over frames, "
              f"CE reference {reference})", "", markdown_table(scores), ""]
    if clean_reference is not None:
        parts += ["### Clean reference: raw images vs the studies' min-max rescale", "",
                  markdown_table(clean_reference), ""]
    if models is not None and not models.empty:
        parts += ["## Models", "", "Provenance of every judged model (full record: "
                  "`study.json`, key `models`).", "", markdown_table(models), ""]
    parts += ["## Figures", ""]
    parts += [f"- {f.title}: `{f.png.relative_to(folder)}`" for f in figures]
    parts += ["", "## Files", ""] + [f"- `{n}`: {d}" for n, d in files]
    parts += ["", "## What was run", "", "```json", json.dumps(run, indent=2, default=str),
              "```", ""]
    return "\n".join(parts)
