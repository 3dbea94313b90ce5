"""Trusted range, the frame bootstrap, score guards, and robustness == metrics agreement."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellrobust import InputError
from cellrobust import robustness as rb
from cellrobust.metrics import MatchResult, match_dataset, pixel_scores

sys.path.insert(0, str(Path(__file__).parent))
from _synth_table import SEGMENTERS, synthetic_table


@pytest.fixture(scope="module")
def exact():
    return synthetic_table(noise=0.0, n_images=5)


def _as_patches(table, n_frames):
    """Rename img<i> to frame patches '<frame>/p<k>' (n_frames frames)."""
    idx = table["sample"].str[3:].astype(int)
    return table.assign(sample=[f"f{i % n_frames}/p{i // n_frames}" for i in idx])


def test_robustness_and_metrics_give_identical_numbers():
    rows = [(10, 2, 3, 85), (0, 0, 0, 100), (0, 0, 0, 0), (0, 4, 6, 90), (7, 0, 0, 93)]
    counts = pd.DataFrame(rows, columns=["tp_px", "fp_px", "fn_px", "tn_px"])
    for average in ("micro", "macro"):
        ref = pixel_scores(counts, average=average)
        for name, value in ref.items():
            assert rb.compute_metric(counts, name, average=average) == value, (name, average)
    inst = [(3, 1, 2), (0, 0, 0), (0, 2, 0), (5, 0, 5)]
    table = pd.DataFrame([{"tp@0.50": tp, "fp@0.50": fp, "fn@0.50": fn} for tp, fp, fn in inst])
    results = [MatchResult(np.array([0.5]), np.array([tp]), np.array([fp]), np.array([fn]),
                           tp + fn, tp + fp, np.array([0.7 * tp])) for tp, fp, fn in inst]
    for average in ("micro", "macro"):
        ds = match_dataset(results, average=average)
        assert rb.compute_metric(table, "ap@0.50", average=average) == float(ds.ap[0])
        assert rb.compute_metric(table, "f1@0.50", average=average) == float(ds.f1[0])


def test_trusted_range_known_answer(exact):
    tr = rb.trusted_range_table(exact, tolerance=0.9, n_boot=0).set_index(
        ["segmenter", "artefact"])
    for seg, rate in SEGMENTERS.items():
        row = tr.loc[(seg, "gaussian")]
        # jaccard = 1 - rate * s / 5 at severity 10 s: 0.9 is crossed at s = 0.5 / rate
        assert row["trusted"] == pytest.approx(10 * 0.5 / rate)
        assert row["status"] == "crossed" and not row["reached_end"]
        assert row["unit"] == "gray levels" and row["clean"] == pytest.approx(1.0)
    loose = rb.trusted_range_table(exact, tolerance=0.5, n_boot=0).set_index(
        ["segmenter", "artefact"])
    assert loose.loc[("artefact", "gaussian"), "reached_end"]
    assert loose.loc[("artefact", "gaussian"), "trusted"] == 50.0
    floor = rb.trusted_range_table(exact, tolerance=None, floor=0.95, n_boot=0)
    got = floor.set_index(["segmenter", "artefact"]).loc[("original", "illumination"), "trusted"]
    assert got == pytest.approx(10 * 0.25 / 0.9)


def test_crossing_takes_the_first_downward_crossing():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    curves = np.array([[1.0, 0.5, 1.0], [0.8, 0.5, 1.0], [0.95, 0.5, 1.0], [0.5, 0.5, 1.0]])
    trusted, status = rb.crossing(x, curves, np.array([0.9, 0.9, 0.9]))
    np.testing.assert_allclose(trusted, [0.5, 0.0, 3.0])  # recovery at x=2 ignored
    assert list(status) == [0, 2, 1]
    inf_first, _ = rb.crossing(np.array([np.inf, 66.0, 43.0]),
                               np.array([[1.0], [0.5], [0.4]]), np.array([0.9]))
    assert inf_first[0] == np.inf  # no interpolation from an infinite identity value


def test_raw_clean_rows_are_the_clean_of_every_artefact(exact):
    none = exact[(exact["artefact"] == "gaussian") & (exact["severity_index"] == 0)].copy()
    none = none.assign(artefact=rb.CLEAN, severity=0.0, unit="", tp_px=800, fn_px=200)
    table = pd.concat([exact, none], ignore_index=True)
    tr = rb.trusted_range_table(table, n_boot=0).set_index(["segmenter", "artefact"])
    assert rb.CLEAN not in set(tr.index.get_level_values("artefact"))
    row = tr.loc[("original", "illumination")]
    assert row["clean"] == pytest.approx(0.8) and row["clean_source"] == rb.CLEAN
    assert row["trusted"] == pytest.approx(10 * (1 - 0.72) * 5 / 0.9)  # level 0.9 * 0.8
    sc = rb.scores(table, n_boot=0).set_index(["segmenter", "artefact"])
    assert sc.loc[("original", "gaussian"), "clean"] == pytest.approx(0.8)
    assert rb.CLEAN not in set(rb.curves(table, n_boot=0)["artefact"])


def test_frame_bootstrap_resamples_frames_and_flags_thin_evidence():
    table = _as_patches(synthetic_table(n_images=12, noise=0.05), n_frames=2)
    boot = rb.frame_bootstrap(table["sample"], n_boot=50, seed=3)
    assert boot.frames == ("f0", "f1") and (boot.weights.sum(axis=1) == 2).all()
    again = rb.frame_bootstrap(table["sample"], n_boot=50, seed=3)
    np.testing.assert_array_equal(boot.weights, again.weights)
    curve = rb.curves(table, n_boot=200)
    assert (curve["n_frames"] == 2).all() and (curve["n_images"] == 12).all()
    d = rb.paired_differences(table, "artefact", "original", n_boot=200)
    assert not d["significant"].any() and not d["assessed"].any()
    assert d["note"].str.contains("not assessed: 2 frames").all()
    many = rb.paired_differences(synthetic_table(n_images=6), "artefact", "original", n_boot=200)
    assert many[many["severity_index"] == 5]["significant"].all()


def test_every_score_has_an_interval_around_it():
    table = _as_patches(synthetic_table(n_images=12, noise=0.05), n_frames=6)
    sc = rb.scores(table, n_boot=200)
    for name in ("clean", "mpc", "rpc", "auc", "ce"):
        ok = sc[name].notna()
        assert ok.any()
        assert (sc.loc[ok, f"{name}_lo"] <= sc.loc[ok, name] + 1e-9).all(), name
        assert (sc.loc[ok, name] <= sc.loc[ok, f"{name}_hi"] + 1e-9).all(), name
    tr = rb.trusted_range_table(table, n_boot=200)
    crossed = tr[tr["status"] == "crossed"]
    assert ((crossed["ci_low"] <= crossed["trusted"]) & (crossed["trusted"] <= crossed["ci_high"])).all()
    assert (crossed["ci_high"] > crossed["ci_low"]).any()


def test_guards_never_show_a_ratio_of_a_vanishing_denominator(exact):
    table = exact.copy()
    steady = table["segmenter"] == "dog_otsu"
    table.loc[steady, ["tp_px", "fn_px"]] = [800, 200]  # the reference never degrades
    dead = table[table["segmenter"] == "original"].assign(segmenter="background", tp_px=0,
                                                          fn_px=1000)
    table = pd.concat([table, dead], ignore_index=True)
    sc = rb.scores(table, n_boot=0).set_index(["segmenter", "artefact"])
    orig = sc.loc[("original", "gaussian")]
    assert np.isnan(orig["rel_ce"]) and "rel. CE undefined: dog_otsu loses 0.000" in orig["note"]
    assert np.isfinite(orig["ce"])
    bg = sc.loc[("background", "gaussian")]
    assert bg["clean"] == 0.0 and np.isnan(bg["rpc"]) and np.isnan(bg["rel_ce"])
    assert "clean 0.00 < 0.1" in bg["note"]


def test_trusted_range_bad_input(exact):
    with pytest.raises(InputError, match="tolerance"):
        rb.trusted_range_table(exact, tolerance=None, floor=None)
    with pytest.raises(InputError, match="tolerance"):
        rb.trusted_range_table(exact, tolerance=1.5)
    with pytest.raises(InputError, match="n_boot"):
        rb.trusted_range_table(exact, n_boot=-1)
