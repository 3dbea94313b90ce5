"""Issue #15 defects in `evaluate`: cells counted as annotated, and both averages shown.

Before #15, true cell counts came from 8-connected components of the binary mask even when the
data set has instance labels (stardist-nuclei: 102 components for 125 labelled nuclei), and
the headline Jaccard was pooled while the studies report per-image means (only in
metrics.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from cellrobust.metrics.evaluate import EvaluateConfig, evaluate_pairs
from cellrobust.stages.evaluate import EvaluateStageConfig, format_summary, run


def test_true_count_is_the_annotated_instances(shared_data: Path, tmp_path: Path):
    import tifffile

    mask = tifffile.imread(next((shared_data / "stardist-nuclei").rglob("mask*.tif")))
    labelled = np.count_nonzero(np.unique(mask))
    components = ndi.label(mask > 0, structure=np.ones((3, 3)))[1]
    assert (labelled, components) == (125, 102)  # touching nuclei merge as components
    run(EvaluateStageConfig(tmp_path / "ev", model="otsu", data=shared_data / "stardist-nuclei"))
    summary = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert summary["counts"]["count_true"] == 125


def _disc_pair(size: int, radius: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    true = ((yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= radius ** 2).astype(np.int32)
    return true, np.roll(true, shift, axis=1)


def test_summary_shows_pooled_and_per_image_jaccard():
    # a big well-segmented image and a small badly segmented one: pooled and mean differ
    big, small = _disc_pair(64, 20, 2), _disc_pair(32, 4, 4)
    rows, summary = evaluate_pairs([("big", *big), ("small", *small)], EvaluateConfig())
    per_image = [r["tp_px"] / (r["tp_px"] + r["fp_px"] + r["fn_px"]) for r in rows]
    pooled = sum(r["tp_px"] for r in rows) / sum(r["tp_px"] + r["fp_px"] + r["fn_px"]
                                                  for r in rows)
    assert abs(np.mean(per_image) - pooled) > 0.1
    text = format_summary(summary, label="demo")
    assert f"jaccard {pooled:.3f}" in text and "pooled over images" in text
    assert f"jaccard {np.mean(per_image):.3f} macro (mean of per-image scores" in text
