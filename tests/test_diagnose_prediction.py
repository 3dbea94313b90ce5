"""The predicted-vs-measured benchmark (benchmarks/diagnose_prediction.py): its pieces on
known-answer inputs, fast (no model, no real data)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `benchmarks` lives outside the package, at the repo root

from benchmarks import diagnose_prediction as dp  # noqa: E402

from _synth_table import linear_noise_table  # noqa: E402
from cellrobust import artefacts  # noqa: E402
from cellrobust.data.sample import Sample  # noqa: E402
from cellrobust.diagnose import predict, study_curves  # noqa: E402


def test_score_and_summary_known_answer():
    rows = pd.DataFrame({
        "segmenter": ["m"] * 4, "artefact": ["gaussian_noise"] * 2 + ["illumination"] * 2,
        "predicted": [0.5, 0.6, 0.7, 0.2], "ci_low": [0.4, 0.55, 0.6, 0.1],
        "ci_high": [0.6, 0.65, 0.8, 0.3], "measured": [0.55, 0.7, 0.72, 0.5]})
    scored = dp.score(rows)
    assert scored["abs_error"].tolist() == pytest.approx([0.05, 0.1, 0.02, 0.3])
    assert scored["covered"].tolist() == [True, False, True, False]
    s = dp.summary(scored).set_index("artefact")
    assert s.loc["gaussian_noise", "mae"] == pytest.approx(0.075)
    assert s.loc["illumination", "mae"] == pytest.approx(0.16)
    assert s.loc["all", "mae"] == pytest.approx(0.1175)
    assert s.loc["all", "n"] == 4 and s.loc["gaussian_noise", "n"] == 2
    assert s.loc["gaussian_noise", "coverage"] == pytest.approx(0.5)
    assert s.loc["all", "coverage"] == pytest.approx(0.5)
    assert s.loc["illumination", "bias"] == pytest.approx(((0.7 - 0.72) + (0.2 - 0.5)) / 2)
    assert not s["mae_met"].any() and not s["coverage_met"].any()
    perfect = dp.summary(dp.score(rows.assign(measured=rows["predicted"])))
    assert perfect["mae_met"].all() and perfect["coverage_met"].all()


def test_grid_and_draws_stay_on_the_study_range():
    for name in dp.ARTEFACTS:
        g = dp.grid(name)
        assert set(g) <= {float(v) for v in artefacts.get(name).grid}
        assert g[0] == artefacts.get(name).identity
    assert dp.grid("gaussian_noise", 10) == (0.0, 50.0, 100.0, 150.0, 200.0)
    ranges = {"gaussian_noise": (0.0, 200.0), "illumination": (0.0, 4000.0)}
    a = dp.draw_severities(50, ranges, seed=3)
    assert all(np.array_equal(a[k], v) for k, v in dp.draw_severities(50, ranges, seed=3).items())
    assert not np.array_equal(a["gaussian_noise"], dp.draw_severities(50, ranges, seed=4)[
        "gaussian_noise"])
    for k, (lo, hi) in ranges.items():
        assert a[k].min() >= lo and a[k].max() <= hi and a[k].std() > 0.2 * (hi - lo)


def test_held_out_images_are_the_sweeps_images():
    from cellrobust.sweep import SweepConfig
    from cellrobust.sweep.engine import _corrupt

    rng = np.random.default_rng(0)
    labels = np.zeros((64, 64), np.int32)
    labels[10:20, 10:20] = 1
    patch = Sample(image=rng.integers(0, 255, (64, 64)).astype(np.uint8), labels=labels,
                   name="f9/p0")
    imgs = dp.held_out_images([patch], {"gaussian_noise": np.array([37.5])}, seed=5)
    assert imgs[0]["image"] == "f9/p0/gaussian_noise" and imgs[0]["frame"] == "f9"
    config = SweepConfig(segmenters=("dog_otsu",), artefacts=("gaussian_noise",), seed=5)
    (swept, _), = _corrupt([patch], "gaussian_noise", 37.5, config)
    np.testing.assert_allclose(imgs[0]["pixels"], swept.image, atol=1e-5)


class _Fake:
    def __init__(self, fn):
        self.fn = fn

    def segment(self, stack):
        return np.stack([self.fn(im) for im in stack])


def test_compare_end_to_end_known_answer():
    labels = np.zeros((32, 32), np.int32)
    labels[:, :16] = 1  # 512 foreground px
    images = [{"image": "x", "frame": "f", "patch": "f/p0", "artefact": "gaussian_noise",
               "true_severity": 40.0, "pixels": np.zeros((32, 32), np.float32),
               "labels": labels}]
    half = np.zeros((32, 32), np.int32)
    half[:, :8] = 1  # Jaccard 0.5 against labels
    measured = dp.measure(images, {"fragile": _Fake(lambda im: half),
                                   "robust": _Fake(lambda im: labels)})
    assert measured.set_index("segmenter")["measured"].to_dict() == {"fragile": 0.5,
                                                                     "robust": 1.0}
    table = linear_noise_table()
    diag = pd.DataFrame([{"image": "x", "artefact": "gaussian_noise", "estimate": 50.0,
                          "ci_low": 50.0, "ci_high": 50.0, "unit": "gray levels",
                          "detected": True}])
    preds = predict(diag, table, n_boot=50)
    rows = dp.compare(images, diag, preds, measured,
                      study_curves(table, n_boot=50)).set_index("segmenter")
    # fragile: predicted 1 - 0.8 * 0.5 = 0.6 at the estimate, 0.68 at the true sigma 40
    assert rows.loc["fragile", "predicted"] == pytest.approx(0.6, abs=2e-3)
    assert rows.loc["fragile", "predicted_at_true"] == pytest.approx(0.68, abs=2e-3)
    assert rows.loc["fragile", "abs_error"] == pytest.approx(0.1, abs=2e-3)
    assert rows.loc["robust", "abs_error"] == pytest.approx(0.1, abs=2e-3)  # 0.9 vs 1.0
    assert not rows["covered"].any()  # identical crops: a zero-width interval
    assert rows.loc["fragile", "pi_low"] == pytest.approx(0.6, abs=2e-3)
    assert rows["estimated_severity"].tolist() == [50.0, 50.0]
    assert rows["binding_artefact"].tolist() == ["gaussian_noise"] * 2


def test_image_interval_spans_the_estimates_interval():
    diag = pd.DataFrame([{"image": "x", "artefact": "gaussian_noise", "estimate": 50.0,
                          "ci_low": 25.0, "ci_high": 75.0, "unit": "gray levels",
                          "detected": True}])
    row = predict(diag, linear_noise_table(), n_boot=50).set_index("segmenter").loc["fragile"]
    assert row["pi_low"] == pytest.approx(1 - 0.8 * 0.75, abs=2e-3)
    assert row["pi_high"] == pytest.approx(1 - 0.8 * 0.25, abs=2e-3)


def test_undefined_predictions_are_counted_not_averaged():
    rows = pd.DataFrame({"segmenter": ["m"] * 3, "artefact": ["gaussian_noise"] * 3,
                         "predicted": [0.5, np.nan, 0.7], "ci_low": [0.4, np.nan, 0.75],
                         "ci_high": [0.6, np.nan, 0.8], "measured": [0.55, 0.2, 0.72]})
    s = dp.summary(dp.score(rows)).set_index("artefact").loc["gaussian_noise"]
    assert s["n"] == 3 and s["n_undefined"] == 1
    assert s["mae"] == pytest.approx(0.035) and s["coverage"] == pytest.approx(0.5)


def _swamped():
    """References with cell contrast, and an image of pure white noise (no contrast: gain 0)."""
    from scipy import ndimage as ndi

    from cellrobust.diagnose import reference_stats

    rng = np.random.default_rng(0)
    ref = reference_stats([ndi.gaussian_filter(rng.normal(0, 1, (256, 256)), 3) * 400 + 128
                           for _ in range(2)])
    return ref, rng.normal(128, 30, (256, 256))


def test_illumination_with_zero_gain_is_undefined_not_a_crash():
    # regression: gain 0 (noise swamps the cell contrast) raised ZeroDivisionError
    from cellrobust.diagnose import estimate_image

    ref, image = _swamped()
    est = {e.artefact: e for e in estimate_image(image, reference=ref, n_boot=50,
                                                 artefacts=["illumination", "gaussian_noise"])}
    assert est["illumination"].detail["gain"] == 0.0
    assert np.isnan(est["illumination"].estimate) and np.isnan(est["gaussian_noise"].estimate)


def test_recommend_skips_images_without_a_defined_prediction():
    # regression: recommend raised "idxmin ... all NA values in a group"
    from cellrobust._validation import DataError
    from cellrobust.diagnose import recommend

    diag = pd.DataFrame([
        {"image": "a", "artefact": "gaussian_noise", "estimate": np.nan, "ci_low": np.nan,
         "ci_high": np.nan, "unit": "gray levels"},
        {"image": "b", "artefact": "gaussian_noise", "estimate": 40.0, "ci_low": 40.0,
         "ci_high": 40.0, "unit": "gray levels"}])
    preds = predict(diag, linear_noise_table(), n_boot=20)
    per_image, per_set = recommend(preds)
    assert per_image["image"].tolist() == ["b"] and per_image.loc[0, "segmenter"] == "robust"
    assert per_set.loc[per_set["recommended"], "segmenter"].tolist() == ["robust"]
    with pytest.raises(DataError, match="no finite prediction"):
        recommend(preds[preds["image"] == "a"])


def test_curves_start_from_the_raw_clean_reference_not_the_rescaled_level_0():
    """The study's level 0 of noise is min-max rescaled (here it costs 0.3); an unmodified
    image is predicted from the raw clean rows ("none") instead."""
    table = linear_noise_table()
    raw = table[table["severity"] == 0].assign(artefact="none", unit="none")
    level0 = table["severity"] == 0
    table.loc[level0, "tp_px"], table.loc[level0, "fn_px"] = 700, 300
    with_raw = pd.concat([raw, table], ignore_index=True)
    diag = pd.DataFrame([{"image": "x", "artefact": "gaussian_noise", "estimate": 0.0,
                          "ci_low": 0.0, "ci_high": 0.0, "unit": "gray levels",
                          "detected": False}])
    assert predict(diag, with_raw, n_boot=20)["predicted"].tolist() == pytest.approx([1, 1])
    assert predict(diag, table, n_boot=20)["predicted"].tolist() == pytest.approx([0.7, 0.7])
    curve = study_curves(with_raw, n_boot=20)[("fragile", "gaussian_noise")]
    assert curve["clean_source"] == "none" and curve["clean"] == pytest.approx(1.0)


def test_an_undetected_artefact_is_predicted_at_the_clean_point():
    """Clean frames read the references' own floor (e.g. illumination A ~ 41 on PSC);
    interpolating at it would predict a min-max-sensitive model a cost it does not pay."""
    diag = pd.DataFrame([{"image": "x", "artefact": "gaussian_noise", "estimate": 25.0,
                          "ci_low": 20.0, "ci_high": 30.0, "unit": "gray levels",
                          "detected": flag} for flag in (True, False)])
    diag["image"] = ["seen", "unseen"]
    out = predict(diag, linear_noise_table(), n_boot=20).set_index(["image", "segmenter"])
    assert out.loc[("seen", "fragile"), "predicted"] == pytest.approx(0.8, abs=2e-3)
    assert out.loc[("unseen", "fragile"), "predicted"] == pytest.approx(1.0)
