"""cellrobust.diagnose: estimators on corrupted real PSC crops (loose fixed bounds), the study
prediction on a synthetic table with a known answer, and the diagnose stage/CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from _synth_table import linear_noise_table  # noqa: E402
from cellrobust import artefacts
from cellrobust._validation import InputError
from cellrobust.diagnose import (diagnose_images, estimate_image, predict, recommend,
                                 reference_stats, trusted_ranges)

PSC = Path(__file__).resolve().parents[2] / "shared" / "data" / "psc" / "validation"
pytestmark = pytest.mark.skipif(not PSC.is_dir(), reason="shared PSC data not available")


@pytest.fixture(scope="module")
def frames():
    from cellrobust.data import open_dataset

    ds = open_dataset(PSC)
    return [ds[i].with_(image=ds[i].image[:288, :360], labels=ds[i].labels[:288, :360])
            for i in (0, 5, 10)]


@pytest.fixture(scope="module")
def reference(frames):
    return reference_stats([f.image for f in frames[:2]])


def _estimate(frame, name, value, reference):
    corrupted, _ = artefacts.apply(frame, name, value, rng=artefacts.stream(0, frame.name, name,
                                                                            value))
    return estimate_image(corrupted.image, reference=reference, artefacts=[name], n_boot=40)[0]


@pytest.mark.parametrize("name, value, rel", [
    ("gaussian_noise", 20.0, 0.15), ("gaussian_noise", 80.0, 0.2),
    ("illumination", 1000.0, 0.25), ("poisson", 100.0, 0.2), ("defocus", 2.0, 0.2),
    ("stripes", 20.0, 0.2), ("hot_pixels", 5.0, 0.2), ("jpeg", 30.0, 0.1)])
def test_estimators_recover_known_severities(frames, reference, name, value, rel):
    est = _estimate(frames[2], name, value, reference)
    assert est.unit == artefacts.get(name).unit
    assert abs(est.estimate - value) <= rel * value, (name, value, est)
    assert est.ci_low <= est.ci_high


def test_cell_size_factor_tracks_zoom(frames, reference):
    from cellrobust.artefacts.geometry import zoom_crops
    from cellrobust.data import open_dataset

    frame = open_dataset(PSC)[10]
    for zoom in (0.6, 1.6):
        crop = zoom_crops(frame, zoom, rng=1, n=1)[0]  # the study's 256 px windows
        est = estimate_image(crop.image, reference=reference, artefacts=["cell_size"],
                             n_boot=0)[0]
        assert abs(est.estimate - zoom) <= 0.25 * zoom, (zoom, est)


def test_clean_frame_is_not_flagged_and_noisy_is(frames, reference):
    noisy, _ = artefacts.apply(frames[2], "gaussian_noise", 40.0, rng=0)
    table = diagnose_images({"clean": frames[2].image, "noisy": noisy.image},
                            reference=reference, artefacts=["gaussian_noise", "illumination"],
                            n_boot=40)
    flagged = set(table.loc[table["detected"], "image"])
    assert flagged == {"noisy"}
    assert list(table.columns[:7]) == ["image", "artefact", "parameter", "estimate", "ci_low",
                                       "ci_high", "unit"]


def test_without_reference_noise_is_total_in_image_gray_levels(frames):
    x = frames[2].image.astype(np.float64)
    noisy = x + np.random.default_rng(3).normal(0, 10, x.shape)
    est = estimate_image(noisy, artefacts=["gaussian_noise"], n_boot=0)[0]
    assert 9.0 < est.estimate < 11.5 and "no reference" in est.method


def test_bad_input_is_one_clear_error():
    with pytest.raises(InputError, match="image: expected a 2-D"):
        diagnose_images([np.zeros((4, 64, 64))])
    with pytest.raises(InputError, match="did you mean 'gaussian_noise'"):
        diagnose_images([np.zeros((64, 64))], artefacts=["gaussian_nois"])


def test_prediction_interpolates_and_recommends():
    import pandas as pd

    diag = pd.DataFrame([{"image": "a", "artefact": "gaussian_noise", "estimate": 40.0,
                          "ci_low": 40.0, "ci_high": 40.0, "unit": "gray levels"}])
    preds = predict(diag, linear_noise_table(), n_boot=50).set_index("segmenter")
    assert preds.loc["fragile", "predicted"] == pytest.approx(1 - 0.8 * 0.4, abs=2e-3)
    assert preds.loc["robust", "predicted"] == pytest.approx(1 - 0.2 * 0.4, abs=2e-3)
    # trusted (90 % of clean): fragile to sigma 12.5, robust to 50
    assert bool(preds.loc["fragile", "outside_trusted"]) and not preds.loc[
        "robust", "outside_trusted"]
    per_image, per_set = recommend(preds.reset_index())
    assert per_image.loc[0, "segmenter"] == "robust"
    assert per_set.loc[per_set["recommended"], "segmenter"].tolist() == ["robust"]


def test_trusted_range_is_interpolated():
    tr = trusted_ranges(linear_noise_table(), n_boot=20).set_index("segmenter")
    assert tr.loc["fragile", "trusted"] == pytest.approx(12.5, abs=0.1)
    assert tr.loc["robust", "trusted"] == pytest.approx(50.0, abs=0.2)


def test_stage_and_cli_write_a_diagnosis(tmp_path, frames):
    from cellrobust._io import write_tiff
    from cellrobust.cli.diagnose import register

    imgs, ref, study = tmp_path / "imgs", tmp_path / "ref", tmp_path / "study"
    noisy, _ = artefacts.apply(frames[2], "gaussian_noise", 60.0, rng=0)
    write_tiff(imgs / "clean.tif", frames[2].image)
    write_tiff(imgs / "noisy.tif", noisy.image)
    for f in frames[:2]:
        write_tiff(ref / f"{f.name.split('/')[-1]}.tif", f.image)
    study.mkdir()
    linear_noise_table().to_csv(study / "results.csv", index=False)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["diagnose", str(imgs), "--reference", str(ref), "--study",
                              str(study), "--out", str(out), "--n-boot", "30",
                              "--artefacts", "gaussian_noise,illumination"])
    assert args.func(args) == 0
    for name in ("diagnosis.csv", "predictions.csv", "recommendation.csv", "diagnosis.md",
                 "diagnosis.json", "diagnosis_curves.png"):
        assert (out / name).is_file(), name
    record = json.loads((out / "diagnosis.json").read_text())
    assert len(record["inputs"]) == 2 and all(len(h) == 64 for h in record["inputs"].values())
    assert "Recommended for the set: robust" in (out / "diagnosis.md").read_text()
    assert args.func(args) == 0  # rerun into its own folder is fine
    (out / "mine.txt").write_text("x")
    with pytest.raises(InputError, match="did not write"):
        args.func(args)
    bad = parser.parse_args(["diagnose", str(imgs), "--out", str(imgs)])
    with pytest.raises(InputError, match="holds the input"):
        bad.func(bad)
