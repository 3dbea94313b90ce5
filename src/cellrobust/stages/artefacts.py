"""``cellrobust artefacts gallery``: the artefact x severity gallery (the studies' Figure 2,
extended to every registered artefact); the figure itself is :func:`cellrobust.report.plots.
figure_gallery`, shared with the study's report."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellrobust.artefacts import apply_level, get, names, stream
from cellrobust.data.sample import Sample


def pick_patch(sample: Sample, *, size: int = 256) -> Sample:
    """The ``size`` x ``size`` window of ``sample`` with the most labelled pixels (or centre)."""
    h, w = sample.shape
    if h <= size and w <= size:
        return sample
    size_h, size_w = min(size, h), min(size, w)
    best, best_score = ((h - size_h) // 2, (w - size_w) // 2), -1.0
    if sample.labels is not None:
        fg = (sample.labels > 0).astype(np.float64)
        integral = np.pad(fg.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        for y in range(0, h - size_h + 1, max(size_h // 4, 1)):
            for x in range(0, w - size_w + 1, max(size_w // 4, 1)):
                score = (integral[y + size_h, x + size_w] - integral[y, x + size_w]
                         - integral[y + size_h, x] + integral[y, x])
                if score > best_score:
                    best, best_score = (y, x), score
    y, x = best
    window = (slice(y, y + size_h), slice(x, x + size_w))
    labels = None if sample.labels is None else sample.labels[window]
    return sample.with_(image=sample.image[window], labels=labels, name=f"{sample.name}/patch",
                        meta={"patch_yx": [y, x]})


def ladder_rows(sample: Sample, artefacts: Sequence[str] | None = None, *, seed: int = 0,
                levels: Sequence[int] = range(6)) -> list:
    """Gallery rows: each artefact at ladder ``levels`` on ``sample``, one random stream per
    row (``artefacts.stream(seed, sample, artefact, 0)``: every level draws the same centres,
    angles and particles, so a row shows one draw's progression); geometric artefacts carry
    their resampled labels for outlines."""
    chosen = list(artefacts) if artefacts else names()
    rows = []
    for name in chosen:
        art = get(name)
        items = []
        for level in levels:
            out, _ = apply_level(sample, name, level, rng=stream(seed, sample.name, name, 0))
            outline = out.labels if art.kind == "geometric" else None
            items.append((f"{art.ladder[level]:g}", out.image, outline))
        rows.append((f"{name}\n({art.parameter}, {art.unit})", items))
    return rows


def gray_range(image: np.ndarray) -> tuple[float, float]:
    """One gray scale for a gallery: the dtype's range for integer input, else the image's."""
    if np.issubdtype(image.dtype, np.integer):
        return 0.0, float(np.iinfo(image.dtype).max)
    return float(np.min(image)), float(np.max(image))


def render_gallery(sample: Sample, path: str | os.PathLike, *,
                   artefacts: Sequence[str] | None = None, seed: int = 0, dpi: int = 100,
                   overwrite: bool = False, inputs: Sequence = ()) -> Path:
    """``cellrobust artefacts gallery``: every artefact (rows) at levels 0..5 on ``sample``,
    written as one PNG (refused over an input, or over an existing file unless ``overwrite``)."""
    from cellrobust._guard import check_output
    from cellrobust.report.plots import figure_gallery
    from cellrobust.stages._record import save_figure

    check_output(path, inputs=inputs, overwrite=overwrite, owner="gallery", kind="file")
    fig = figure_gallery(ladder_rows(sample, artefacts, seed=seed),
                         vrange=gray_range(sample.image),
                         title=f"artefacts x severity level 0-5 on {sample.name}")
    return save_figure(fig, path, dpi=dpi)
