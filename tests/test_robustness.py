"""Robustness scores: known answers on a constructed table, bootstrap and pairing properties."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellrobust import DataError, InputError
from cellrobust import robustness as rb

sys.path.insert(0, str(Path(__file__).parent))
from _synth_table import SEGMENTERS, synthetic_table


@pytest.fixture(scope="module")
def exact():
    return synthetic_table(noise=0.0, n_images=5)


def _counts(rows):
    return pd.DataFrame(rows, columns=["tp_px", "fp_px", "fn_px", "tn_px"])


def test_micro_and_macro_known_answer():
    counts = _counts([(10, 0, 0, 90), (0, 0, 10, 90)])
    assert rb.compute_metric(counts, "jaccard", average="micro") == pytest.approx(0.5)
    assert rb.compute_metric(counts, "jaccard", average="macro") == pytest.approx(0.5)
    counts = _counts([(90, 10, 0, 0), (1, 0, 1, 98)])  # jaccards 0.9 and 0.5
    assert rb.compute_metric(counts, "jaccard", average="micro") == pytest.approx(91 / 102)
    assert rb.compute_metric(counts, "jaccard", average="macro") == pytest.approx(0.7)
    assert rb.compute_metric(counts, "accuracy") == pytest.approx(189 / 200)
    assert rb.compute_metric(counts, "background_accuracy") == pytest.approx(108 / 200)


def test_zero_over_zero_rule():
    both_empty = _counts([(0, 0, 0, 100)])
    for metric in ("jaccard", "precision", "recall", "dice"):
        assert rb.compute_metric(both_empty, metric) == 1.0
    missed = _counts([(0, 0, 5, 95)])  # nothing predicted, cells present
    assert rb.compute_metric(missed, "precision") == 0.0
    assert rb.compute_metric(missed, "jaccard") == 0.0


def test_scores_known_answer(exact):
    sc = rb.scores(exact, "jaccard", reference="dog_otsu").set_index(["segmenter", "artefact"])
    ref_rate = SEGMENTERS["dog_otsu"]
    for seg, rate in SEGMENTERS.items():
        row = sc.loc[(seg, "gaussian")]
        assert row["clean"] == pytest.approx(1.0)
        assert row["mpc"] == pytest.approx(1 - rate * 3 / 5, abs=1e-3)  # mean of s/5, s=1..5
        assert row["rpc"] == pytest.approx(1 - rate * 3 / 5, abs=1e-3)
        assert row["auc"] == pytest.approx(1 - rate / 2, abs=1e-3)  # trapezoid of a line
        assert row["worst"] == pytest.approx(1 - rate, abs=1e-3)
        assert row["ce"] == pytest.approx(rate / ref_rate, rel=1e-3)
        assert row["rel_ce"] == pytest.approx(rate / ref_rate, rel=1e-3)
    mean = sc.loc[("artefact", "mean")]
    assert mean["ce"] == pytest.approx(SEGMENTERS["artefact"] / ref_rate, rel=1e-3)


def test_scores_without_reference_are_nan(exact):
    sc = rb.scores(exact, reference="no_such_model")
    assert sc["ce"].isna().all() and sc["rpc"].notna().all()


def test_curves_ci_brackets_estimate_and_narrows():
    small = rb.curves(synthetic_table(n_images=4, noise=0.05), n_boot=400)
    large = rb.curves(synthetic_table(n_images=40, noise=0.05), n_boot=400)
    for curve in (small, large):
        inside = (curve["lo"] <= curve["value"] + 1e-9) & (curve["value"] <= curve["hi"] + 1e-9)
        assert inside.all()
    width = lambda c: (c["hi"] - c["lo"])[c["severity_index"] > 0].mean()
    assert width(large) < width(small)
    again = rb.curves(synthetic_table(n_images=4, noise=0.05), n_boot=400)
    pd.testing.assert_frame_equal(small, again)  # seeded: reproducible
    assert rb.curves(synthetic_table(), n_boot=0)["lo"].isna().all()


def test_count_curve_is_cells_per_image(exact):
    counts = rb.curves(exact, "count_pred", n_boot=0)
    clean = counts[counts["severity_index"] == 0]
    assert np.allclose(clean["value"], 10)  # 10 cells per image, whatever the averaging


def test_paired_differences(exact):
    d = rb.paired_differences(exact, "artefact", "original", n_boot=500)
    clean = d[d["severity_index"] == 0]
    assert (clean["diff"].abs() < 1e-12).all() and not clean["significant"].any()
    strong = d[d["severity_index"] == 5]
    gap = SEGMENTERS["original"] - SEGMENTERS["artefact"]
    assert np.allclose(strong["diff"], gap, atol=1e-3) and strong["significant"].all()
    noisy = synthetic_table(noise=0.05, n_images=6)
    d2 = rb.paired_differences(noisy, "artefact", "original", n_boot=500)
    assert (d2["lo"] <= d2["diff"]).all() and (d2["diff"] <= d2["hi"]).all()


def test_ap_curve(exact):
    ap = rb.ap_curve(exact)
    clean = ap[(ap["severity_index"] == 0) & (ap["segmenter"] == "original")]
    # constructed: tp = round(10 * (1.5 - tau)) capped at 10 of 10 true, 10 predicted
    expected = {0.5: 1.0, 0.7: 8 / 12, 0.9: 6 / 14}
    for _, r in clean.iterrows():
        assert r["ap"] == pytest.approx(expected[round(r["threshold"], 2)])


def test_bad_input(exact):
    with pytest.raises(InputError, match="valid values are:.*jaccard.*ap@0.50"):
        rb.curves(exact, "jacard")
    with pytest.raises(InputError, match="average"):
        rb.curves(exact, average="median")
    with pytest.raises(DataError, match="missing columns"):
        rb.curves(exact.drop(columns=["sample"]))
    with pytest.raises(DataError, match="no rows"):
        rb.scores(exact.iloc[:0])
    with pytest.raises(InputError, match="valid values"):
        rb.paired_differences(exact, "artefact", "nope")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50), st.integers(0, 50)),
                min_size=1, max_size=6))
def test_micro_jaccard_between_per_image_extremes(rows):
    counts = _counts([(tp, fp, fn, 100) for tp, fp, fn in rows])
    per = [rb.compute_metric(counts.iloc[[i]], "jaccard") for i in range(len(rows))]
    micro = rb.compute_metric(counts, "jaccard")
    nonempty = [p for p, (tp, fp, fn) in zip(per, rows) if tp + fp + fn]
    if nonempty:
        assert min(nonempty) - 1e-12 <= micro <= max(nonempty) + 1e-12
    assert min(per) - 1e-12 <= rb.compute_metric(counts, "jaccard", average="macro") <= max(per) + 1e-12
