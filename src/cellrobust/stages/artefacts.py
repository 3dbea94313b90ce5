"""Artefact x severity gallery: the studies' Figure 2, extended to every registered artefact."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellrobust._io import atomic_path
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


def render_gallery(
    sample: Sample,
    path: str | os.PathLike,
    *,
    artefacts: Sequence[str] | None = None,
    seed: int = 0,
    dpi: int = 100,
) -> Path:
    """Draw every artefact (rows) at severity levels 0..5 (columns) on ``sample``; write a PNG.

    Panels share one gray scale (the input dtype's range for integer input, else the clean
    image's range) so brightness changes stay visible; geometric artefacts show the label
    outlines in red to make the image/label alignment checkable by eye. Each row uses one
    random stream for all levels (same blob centre, angle, particles), so a row shows the
    progression of one draw.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    chosen = list(artefacts) if artefacts else names()
    for name in chosen:
        get(name)
    img = sample.image
    vmin, vmax = ((0.0, float(np.iinfo(img.dtype).max)) if np.issubdtype(img.dtype, np.integer)
                  else (float(img.min()), float(img.max())))
    fig, axes = plt.subplots(len(chosen), 6, figsize=(6 * 1.7, len(chosen) * 1.8),
                             squeeze=False, constrained_layout=True)
    for row, name in enumerate(chosen):
        art = get(name)
        for level in range(6):
            ax = axes[row, level]
            # one stream per row: every level draws the same centres/angles/particles
            out, _ = apply_level(sample, name, level, rng=stream(seed, sample.name, name, 0))
            ax.imshow(out.image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
            if art.kind == "geometric" and out.labels is not None:
                edges = find_boundaries(out.labels, mode="inner")
                overlay = np.zeros((*edges.shape, 4), dtype=np.float32)
                overlay[edges] = (1.0, 0.2, 0.1, 0.8)
                ax.imshow(overlay, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{art.ladder[level]:g}", fontsize=8, pad=2)
            if level == 0:
                ax.set_ylabel(f"{name}\n({art.parameter}, {art.unit})", fontsize=7)
    fig.suptitle(f"artefacts x severity level 0-5 on {sample.name}", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return Path(path)
