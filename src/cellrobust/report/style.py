"""One style for every figure and table of the report: colours, display names, severities.

Names in tables and CSV files stay the segmenters' own; only what a reader sees is renamed
(the recipe ``artefact`` reads "artefact-trained" so it never reads as the ``artefact``
column).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from cellrobust._io import atomic_path

__all__ = ["DISPLAY_NAMES", "DPI", "KNOWN_COLOURS", "display_name", "number",
           "save_figure", "segmenter_colours", "severity_text"]

#: Fixed colours for the study's segmenters; others get the remaining colours in order.
KNOWN_COLOURS = {
    "original": "#d62728", "augmented": "#ff7f0e", "artefact": "#2ca02c", "nma": "#9467bd",
    "dog_otsu": "#1f77b4", "nlm_otsu": "#17becf", "otsu": "#7f7f7f",
}
_SPARE = ["#8c564b", "#e377c2", "#bcbd22", "#393b79", "#637939", "#843c39", "#7b4173"]
DPI = 150

#: How the study's recipes and baselines are named for readers.
DISPLAY_NAMES = {
    "original": "original", "augmented": "augmented (dihedral)",
    "artefact": "artefact-trained", "nma": "NMA (speckle + Adamax)",
    "dog_otsu": "DoG + Otsu", "nlm_otsu": "NLM + Otsu", "otsu": "Otsu",
}
_SYMBOLS = {"sigma": "σ"}


def _known(name: str) -> str | None:
    return next((k for k in KNOWN_COLOURS if name == k or name.endswith(f"/{k}")), None)


def segmenter_colours(names: Sequence[str]) -> dict[str, str]:
    """Map segmenter names to colours, stable across figures (known names fixed, others sorted)."""
    out, spare = {}, iter(_SPARE * 4)
    for name in sorted(set(names)):
        key = _known(name)
        out[name] = KNOWN_COLOURS[key] if key else next(spare)
    return out


def display_name(name: str) -> str:
    """Reader-facing name of a segmenter (``"artefact"`` -> ``"artefact-trained"``)."""
    return DISPLAY_NAMES.get(str(name), str(name))


def number(value: float) -> str:
    """A severity or score value without spurious digits: 27.0 -> "27", 0.094 -> "0.094"."""
    v = float(value)
    if not math.isfinite(v):
        return "∞" if v > 0 else ("−∞" if v < 0 else "—")
    if v == 0 or abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def severity_text(value: float, unit: str = "", parameter: str = "") -> str:
    """A severity with its unit: "σ 95 gray levels", "zoom 2×", "390 gray levels"."""
    unit = str(unit or "")
    if "magnification" in unit or unit.strip() in ("x", "×"):
        return f"{parameter + ' ' if parameter else ''}{number(value)}×"
    symbol = _SYMBOLS.get(parameter, "")
    return " ".join(p for p in (symbol, number(value), unit) if p)


def save_figure(fig: Figure, stem: str | Path, formats=("png", "svg")) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.svg`` atomically; return the paths (in order)."""
    paths = []
    for ext in ("." + f for f in formats):
        target = Path(stem).with_suffix(ext)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, dpi=DPI, format=ext[1:])  # constrained layout: no "tight" pass
        paths.append(target)
    return paths
