"""Pixel scores, cell counts, aggregation rules and the precision-recall curve."""

from __future__ import annotations

import numpy as np
import pytest

from cellrobust._validation import InputError
from cellrobust.metrics import (
    count_cells,
    count_error,
    count_objects,
    pixel_counts,
    pixel_scores,
    pr_curve,
    ratio,
)


def test_pixel_counts_and_scores_known_answer():
    true = np.zeros((10, 10), np.int32)
    true[:5, :4] = 3  # 20 px
    pred = np.zeros((10, 10), bool)
    pred[:5, 2:6] = True  # 20 px, 10 shared
    c = pixel_counts(true, pred)
    assert c == {"tp": 10, "fp": 10, "fn": 10, "tn": 70}
    s = pixel_scores(c)
    assert s["jaccard"] == pytest.approx(10 / 30)
    assert s["dice"] == pytest.approx(20 / 40)
    assert s["accuracy"] == pytest.approx(80 / 100)
    assert s["precision"] == s["recall"] == pytest.approx(0.5)
    assert s["background_accuracy"] == pytest.approx(0.8)


def test_micro_pools_and_macro_averages():
    a = {"tp": 10, "fp": 0, "fn": 0, "tn": 90}  # jaccard 1
    b = {"tp": 1, "fp": 1, "fn": 8, "tn": 0}  # jaccard 0.1
    assert pixel_scores([a, b])["jaccard"] == pytest.approx(11 / 20)
    assert pixel_scores([a, b], average="macro")["jaccard"] == pytest.approx(0.55)
    with pytest.raises(InputError, match="average"):
        pixel_scores([a], average="weighted")


def test_empty_image_rule_is_explicit():
    empty = pixel_counts(np.zeros((4, 4)), np.zeros((4, 4)))
    assert empty == {"tp": 0, "fp": 0, "fn": 0, "tn": 16}
    assert pixel_scores(empty)["jaccard"] == 1.0
    assert pixel_scores(empty, empty=0.0)["jaccard"] == 0.0
    assert np.isnan(pixel_scores(empty, empty=np.nan)["dice"])
    missed = {"tp": 0, "fp": 0, "fn": 5, "tn": 11}  # nothing predicted, cells missed
    assert pixel_scores(missed)["precision"] == 0.0 and pixel_scores(missed)["jaccard"] == 0.0
    # macro with NaN for empty images: they drop out of the mean
    full = {"tp": 4, "fp": 0, "fn": 4, "tn": 8}
    assert pixel_scores([empty, full], average="macro", empty=np.nan)["jaccard"] == 0.5


def test_pixel_scores_accepts_results_table_columns():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"tp_px": [1, 3], "fp_px": [1, 0], "fn_px": [0, 1], "tn_px": [2, 0]})
    assert pixel_scores(frame)["jaccard"] == pytest.approx(4 / 6)
    with pytest.raises(InputError, match="tp, fp, fn, tn"):
        pixel_scores([{"tp": 1}])


def test_ratio_rule():
    out = ratio([1, 0, 0], [2, 0, 0], perfect=[False, True, False], empty=7.0)
    np.testing.assert_array_equal(out, [0.5, 7.0, 0.0])


def test_count_cells_never_counts_background_and_connectivity():
    mask = np.zeros((6, 6), np.uint8)
    assert count_cells(mask) == 0
    mask[1, 1] = mask[2, 2] = 1  # diagonal neighbours
    mask[4, 4] = 1
    assert count_cells(mask) == 2
    assert count_cells(mask, connectivity=4) == 3
    labels = mask.astype(np.int32) * np.array([[5]])
    assert count_objects(labels) == 1
    with pytest.raises(InputError, match="connectivity"):
        count_cells(mask, connectivity=6)


def test_count_error():
    e = count_error(10, 7)
    assert e["error"] == -3 and e["abs_error"] == 3 and e["rel_error"] == pytest.approx(-0.3)
    assert np.isnan(count_error(0, 2)["rel_error"])


def test_pr_curve_equals_thresholding_each_level():
    rng = np.random.default_rng(0)
    prob = rng.random((2, 20, 20))
    true = rng.random((2, 20, 20)) < prob  # informative probabilities
    curve = pr_curve(prob, true, thresholds=(0.0, 0.25, 0.5, 0.9, 1.0))
    for i, t in enumerate(curve.thresholds):
        c = pixel_counts(true, prob > t)
        assert (curve.tp[i], curve.fp[i], curve.fn[i]) == (c["tp"], c["fp"], c["fn"])
    assert curve.recall[0] == 1.0 and curve.tp[-1] == 0 and curve.precision[-1] == 1.0
    assert 0.5 < curve.area() <= 1.0
    assert curve.best_threshold() in curve.thresholds
    with pytest.raises(InputError, match="labels_true"):
        pr_curve([prob[0]], [true[0], true[1]])
