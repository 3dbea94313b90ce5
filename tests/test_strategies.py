"""Segmenter strategies (test-time fixes for every kind), the scale/robust recipes and the
report's "fix the data vs fix the model" section: known answers, provenance, bad options."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cellrobust._validation import InputError
from cellrobust.artefacts.illumination import gaussian_blobs
from cellrobust.segmenters import build_segmenter, estimate_noise_sigma
from cellrobust.segmenters import _strategy_ops as ops
from cellrobust.segmenters.strategies import StrategySegmenter

SIDE = 128


def _blob(amplitude: float, side: int = SIDE, centre=(50.0, 70.0)) -> np.ndarray:
    """The illumination artefact's blob (sigma = 0.2 * side) as a (side, side) array."""
    return gaussian_blobs((1, side, side), amplitude, np.array([[centre]]), 0.2 * side)[0]


def _cells(side: int = SIDE, *, n: int = 25, radius: float = 6.5, seed: int = 0):
    """Bright discs (contrast 60 on 40) and their mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    mask = np.zeros((side, side), bool)
    for cy, cx in rng.uniform(8, side - 8, (n, 2)):
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
    return (40.0 + 60.0 * mask).astype(np.float32), mask


def _jaccard(labels: np.ndarray, mask: np.ndarray) -> float:
    pred = labels > 0
    return float((pred & mask).sum() / max((pred | mask).sum(), 1))


# -- known answers of the operations -----------------------------------------------------------
def test_flatfield_removes_the_study_blob_from_a_flat_image():
    for centre in ((50.0, 70.0), (128.0, 128.0), (10.0, 240.0)):
        image = 100.0 + _blob(80.0, 256, centre)
        out = ops.flatfield(image, 10)
        # measured 1.7 gray levels (2.1 % of the amplitude) at the blob's peak; mean kept
        assert np.abs(out - out.mean()).max() < 2.4 < np.abs(image - image.mean()).max() / 10
        assert abs(float(out.mean()) - float(image.mean())) < 2.4


def test_flatfield_removes_a_linear_ramp_up_to_the_borders():
    ramp = 50.0 + np.tile(np.linspace(0.0, 60.0, SIDE, dtype=np.float32), (SIDE, 1))
    out = ops.flatfield(ramp, 8)  # the odd reflection keeps the edges sloped
    assert np.abs(out - out.mean()).max() < 0.05


def test_flatfield_keeps_cells_and_flattens_their_background():
    cells, mask = _cells()
    image = cells + _blob(300.0)
    out = ops.flatfield(image, 10)
    assert out[~mask].std() < image[~mask].std() / 10
    contrast = out[mask].mean() - out[~mask].mean()
    assert 54.0 < contrast < 66.0  # 60 +- 10 %


def test_flatfield_divide_corrects_multiplicative_shading():
    cells, mask = _cells()
    shading = 1.0 + _blob(1.0)  # up to twice as bright at the centre
    out = ops.flatfield(cells * shading, 10, mode="divide")
    cv = out[~mask].std() / out[~mask].mean()
    assert cv < 0.05 < (cells * shading)[~mask].std() / (cells * shading)[~mask].mean()


def test_denoise_lowers_the_immerkaer_sigma():
    cells, _ = _cells()
    noisy = cells + np.random.default_rng(1).normal(0, 20, cells.shape).astype(np.float32)
    assert estimate_noise_sigma(ops.denoise_nlm(noisy)) < 0.4 * estimate_noise_sigma(noisy)
    np.testing.assert_array_equal(ops.denoise_nlm(np.full((32, 32), 7.0)), 7.0)


def test_percentile_normalisation_maps_the_percentiles_to_0_and_255_unclipped():
    image = np.random.default_rng(2).gamma(2.0, 30.0, (64, 64))
    image[0, 0] = 5000.0  # an outlier keeps its distance: no clipping
    out = ops.percentile_normalise(image, 2.0, 98.0)
    lo, hi = np.percentile(out.astype(np.float64), [2.0, 98.0])
    assert abs(lo) < 1e-3 and abs(hi - 255.0) < 1e-3
    assert out.max() > 255.0 and out.min() < 0.0
    mm = ops.minmax_normalise(image)
    assert (mm.min(), mm.max()) == (0.0, 255.0)
    np.testing.assert_array_equal(ops.percentile_normalise(np.full((8, 8), 3.0)), 0.0)


def test_normalisation_maps_to_a_stated_gray_level_range():
    # to_low/to_high: a min-max-stretched image goes back to the training images' range
    rng = np.random.default_rng(4)
    raw = rng.uniform(85.0, 255.0, (64, 64))
    raw[0, :2] = 85.0, 255.0  # its extremes
    stretched = ops.minmax_normalise(raw)  # the studies' level 0: 85..255 -> 0..255
    back = ops.minmax_normalise(stretched, to=(85.0, 255.0))
    np.testing.assert_allclose(back, raw, atol=1e-3)
    out = ops.percentile_normalise(raw, 1.0, 99.8, to=(85.0, 255.0))
    lo, hi = np.percentile(out.astype(np.float64), [1.0, 99.8])
    assert abs(lo - 85.0) < 1e-3 and abs(hi - 255.0) < 1e-3
    seg = build_segmenter("otsu,normalise=minmax,to_low=85,to_high=255")
    np.testing.assert_allclose(seg.prepare(stretched[None])[0], raw, atol=1e-3)
    np.testing.assert_array_equal(ops.minmax_normalise(np.full((4, 4), 7.0), to=(85, 255)), 85)


def test_auto_rescale_measures_the_cell_diameter():
    cells, _ = _cells(256, n=60, radius=13.0, seed=3)  # 26 px cells
    seg = build_segmenter("otsu,rescale=auto,cell_diameter=13")
    assert 0.4 < seg.auto_factor(cells) < 0.65  # cells brought to 13 px: about 0.5
    assert 20.0 < ops.cell_diameter_px(cells) < 32.0


# -- the wrapper -------------------------------------------------------------------------------
def _stack():
    cells, mask = _cells()
    return np.stack([cells, cells[::-1] + 5.0]), np.stack([mask, mask[::-1]])


def test_flatfield_strategy_fixes_otsu_under_strong_illumination():
    cells, mask = _cells()
    image = (cells + _blob(400.0))[None]
    plain = build_segmenter("otsu").segment(image)[0]
    fixed = build_segmenter("otsu,preprocess=flatfield").segment(image)[0]
    assert _jaccard(plain, mask) < 0.5 < 0.9 < _jaccard(fixed, mask)


def test_single_view_and_identical_views_equal_the_plain_segmenter_exactly():
    images, _ = _stack()
    plain = build_segmenter("otsu").segment(images)
    for spec in ("otsu,scales=1", "otsu,scales=1+1", "otsu,tta=true", "otsu,merge=max,scales=1+1"):
        out = build_segmenter(spec).segment(images)
        assert out.dtype == np.int32
        np.testing.assert_array_equal(out, plain, err_msg=spec)


def test_rescale_and_multiscale_keep_the_input_shape():
    images, masks = _stack()
    images = images[:, :, :100]  # not square
    for spec in ("otsu,rescale=2", "otsu,rescale=0.5", "otsu,scales=0.5+1+2",
                 "otsu,rescale=2,scales=0.5+1,tta=true"):
        out = build_segmenter(spec).segment(images)
        assert out.shape == images.shape and out.dtype == np.int32, spec
        assert _jaccard(out[0], masks[0, :, :100]) > 0.85, spec


def _micro_checkpoint(path):
    import torch

    from cellrobust.models.checkpoint import save_checkpoint
    from cellrobust.models.unet import UNetConfig, build_unet

    torch.manual_seed(0)
    config = UNetConfig(width=4, depth=2)
    save_checkpoint(path, build_unet(config), config)
    return path


def test_strategies_on_a_micro_unet_checkpoint(tmp_path):
    ckpt = _micro_checkpoint(tmp_path / "micro" / "best.pt")
    images = _stack()[0][:, :60, :70]
    # the reference path on both: two runners may each probe their own (equally gated) path
    ref = "device=cpu,backend=eager,precision=fp32"
    plain = build_segmenter(f"u={ckpt},{ref}")
    twice = build_segmenter(f"u={ckpt},{ref},scales=1+1")
    assert isinstance(twice, StrategySegmenter) and twice.name == "u"
    np.testing.assert_array_equal(twice.segment(images), plain.segment(images))
    np.testing.assert_array_equal(twice.predict_proba(images), plain.predict_proba(images))
    seg = build_segmenter(f"u={ckpt},device=cpu,normalise=percentile,preprocess=flatfield,"
                          "scales=0.5+1")
    labels = seg.segment(images)
    assert labels.shape == images.shape and labels.dtype == np.int32
    prob = seg.predict_proba(images)
    assert prob.shape == images.shape and 0 <= prob.min() and prob.max() <= 1
    record = seg.provenance()
    assert record["kind"] == "unet" and len(record["sha256"]) == 64
    assert record["strategies"]["normalise"] == "percentile"
    assert record["strategies"]["scales"] == [0.5, 1.0]
    assert record["strategies"]["order"] == ["flatfield", "normalise", "multiscale"]
    own = build_segmenter(f"{ckpt},device=cpu,tta=true")  # the U-Net keeps its own TTA
    assert not isinstance(own, StrategySegmenter) and own.tta is True


def test_labels_only_models_get_no_probabilities():
    class LabelsOnly:
        name = "labels"

        def segment(self, images):
            return (np.asarray(images) > 70).astype(np.int32)

    from cellrobust.segmenters.strategies import StrategyConfig

    seg = StrategySegmenter(LabelsOnly(), StrategyConfig(scales=(0.5, 1.0)))
    images = _stack()[0]
    assert not hasattr(seg, "predict_proba")
    assert seg.segment(images).shape == images.shape
    assert seg.provenance()["kind"] == "object"


@pytest.mark.parametrize("spec, words", [
    ("otsu,preprocess=flatfield+blur", ("preprocess", "'blur'", "flatfield, denoise")),
    ("otsu,scales=0.5+0", ("scales", "positive", "0.5+0.0")),
    ("otsu,scales=-1", ("scales", "positive")),
    ("otsu,normalise=percentile,p_low=99.8,p_high=1", ("p_low", "p_high", "p_low < p_high")),
    ("otsu,normalise=percentil", ("normalise", "did you mean 'percentile'")),
    ("otsu,normalise=minmax,to_low=255,to_high=85", ("to_low", "to_high", "to_low < to_high")),
    ("otsu,rescale=big", ("rescale", "'auto'")),
    ("otsu,bg_mode=multiply", ("bg_mode", "subtract, divide")),
    ("otsu,normalize=minmax", ("unknown option", "did you mean 'normalise'")),
])
def test_bad_strategy_options_are_one_line_each(spec, words):
    with pytest.raises(InputError) as err:
        build_segmenter(spec)
    text = str(err.value)
    assert "\n" not in text and text.startswith("segmenter ")
    for word in words:
        assert word in text, (word, text)


def test_a_rescale_that_shrinks_below_four_pixels_is_refused():
    with pytest.raises(InputError, match="scales/rescale: factor 0.01"):
        build_segmenter("otsu,rescale=0.01").segment(np.zeros((1, 64, 64), np.float32))


# -- recipes -----------------------------------------------------------------------------------
def test_scale_and_robust_recipes():
    from cellrobust.training.augment import augmented_patch
    from cellrobust.training.config import recipe_config

    scale, robust, artefact = (recipe_config(n) for n in ("scale", "robust", "artefact"))
    assert scale.dihedral and scale.affine and scale.scale_range == (0.5, 2.0)
    assert scale.artefacts == ()
    assert robust.dihedral and robust.affine and robust.scale_range == (0.5, 2.0)
    assert [(a.name, a.low, a.high) for a in robust.artefacts] == [
        ("illumination", 0.0, 1500.0), ("gaussian_noise", 0.0, 150.0)]
    assert [a.name for a in robust.artefacts] == [a.name for a in artefact.artefacts]
    cells, mask = _cells(96)
    for i in range(4):  # same stream: robust = the scale geometry + artefacts on the image
        img_s, msk_s, par_s = augmented_patch(cells, mask.astype(np.int32),
                                              replace(scale, patch_size=48), name="p", rng=i)
        img_r, msk_r, par_r = augmented_patch(cells, mask.astype(np.int32),
                                              replace(robust, patch_size=48), name="p", rng=i)
        np.testing.assert_array_equal(msk_s, msk_r)
        assert {k: par_s[k] for k in ("angle", "scale", "k", "flip")} == \
            {k: par_r[k] for k in ("angle", "scale", "k", "flip")}
        assert 0.5 <= par_r["scale"] <= 2.0 and not np.array_equal(img_s, img_r)


# -- report section ----------------------------------------------------------------------------
SPECS = {"plain": "runs/a/best.pt", "pct": "runs/a/best.pt,normalise=percentile",
         "tta": "runs/a/best.pt,tta=true", "other": "runs/b/best.pt,normalise=percentile",
         "dog": "dog_otsu", "dogflat": "dog_otsu,preprocess=flatfield",
         "dog45": "dog_otsu,sigma_low=4.5,preprocess=flatfield"}


def test_strategy_pairs_come_from_the_recorded_specs():
    from cellrobust.report.strategies import strategy_pairs

    assert strategy_pairs(SPECS) == [("dogflat", "dog"), ("pct", "plain"), ("tta", "plain")]


def _table(n_frames=8, levels=4):
    """Jaccard falls by ``rate`` x level/levels: 'pct' holds under illumination only."""
    rates = {"plain": {"illumination": 0.8, "gaussian_noise": 0.5},
             "pct": {"illumination": 0.1, "gaussian_noise": 0.5},
             "dog": {"illumination": 0.6, "gaussian_noise": 0.2},
             "dogflat": {"illumination": 0.6, "gaussian_noise": 0.6}}
    rng = np.random.default_rng(0)
    rows = []
    for seg, per_art in rates.items():
        for art, rate in per_art.items():
            for s in range(levels + 1):
                for f in range(n_frames):
                    frac = float(np.clip(1 - rate * s / levels + rng.normal(0, 0.02), 0, 1))
                    tp = int(round(1000 * frac))
                    rows.append(dict(segmenter=seg, artefact=art, severity_index=s,
                                     severity=100.0 * s, unit="gray levels",
                                     sample=f"f{f}/p0", params="{}", tp_px=tp, fp_px=0,
                                     fn_px=1000 - tp, tn_px=9000, n_true=10, n_pred=10,
                                     count_true=10, count_pred=10, runtime_s=0.0))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("diff, lo, hi, frames, verdict", [
    (0.20, 0.15, 0.25, 8, "fixes"),
    (-0.05, -0.07, -0.03, 8, "hurts"),
    (-6e-5, -1e-4, -3e-5, 8, "negligible change (< 0.01)"),  # excludes 0, but immaterial
    (0.004, 0.001, 0.008, 8, "negligible change (< 0.01)"),
    (0.02, -0.01, 0.05, 8, "no significant change"),
    (0.20, 0.15, 0.25, 4, "not assessed (4 frames)"),
])
def test_strategy_verdict_needs_a_material_and_significant_difference(diff, lo, hi, frames,
                                                                     verdict):
    from cellrobust.report.strategies import _verdict

    assert _verdict(diff, lo, hi, frames, 200) == verdict


def test_compare_strategies_states_which_strategy_fixes_which_artefact():
    from cellrobust.report.strategies import (compare_strategies, figure_strategies,
                                              strategy_sentences)

    table = _table()
    comp = compare_strategies(table, [("pct", "plain"), ("dogflat", "dog"), ("x", "plain")],
                              n_boot=200)
    verdict = {(r.strategy, r.artefact): r.verdict for r in comp.itertuples()}
    assert verdict == {("pct", "illumination"): "fixes",
                       ("pct", "gaussian_noise"): "no significant change",
                       ("dogflat", "illumination"): "no significant change",
                       ("dogflat", "gaussian_noise"): "hurts"}
    row = comp[(comp["strategy"] == "pct") & (comp["artefact"] == "illumination")].iloc[0]
    assert row["mpc_lo"] > 0 and row["trusted_diff"] > 0 and row["trusted_lo"] > 0
    assert row["strategy_reached_end"] and not row["plain_reached_end"]
    from cellrobust.report.strategies import strategies_view

    assert "→ ≥ 400 gray levels" in strategies_view(comp).iloc[1]["trusted: plain → strategy"]
    # mPC = mean over levels 1..4 of 1 - rate * s / 4: plain 0.5, pct 0.9375
    assert abs(row["mpc_plain"] - 0.5) < 0.03 and abs(row["mpc_strategy"] - 0.9375) < 0.03
    text = strategy_sentences(comp)
    assert text[1].startswith("pct against plain: fixes illumination")
    assert "hurts gaussian_noise" in text[0]
    from matplotlib.figure import Figure

    assert isinstance(figure_strategies(comp), Figure)
    few = compare_strategies(table[table["sample"].isin(["f0/p0", "f1/p0"])],
                             [("pct", "plain")], n_boot=50)
    assert few["verdict"].str.startswith("not assessed").all()


def test_report_shows_the_section_when_strategies_are_present(tmp_path):
    from cellrobust.report.build import ReportOptions, build_report

    table = _table(n_frames=6, levels=2)
    table.to_csv(tmp_path / "results.csv", index=False)
    specs = [{"name": n, "spec": SPECS[n]} for n in ("plain", "pct", "dog", "dogflat")]
    (tmp_path / "sweep.json").write_text(json.dumps({"segmenters": specs}))
    page = build_report(tmp_path, ReportOptions(n_boot=50, formats=("png",))).read_text()
    assert "Fix the data vs fix the model" in page and "pct against plain" in page
    saved = pd.read_csv(tmp_path / "strategies.csv")
    assert set(saved["strategy"]) == {"pct", "dogflat"}
    assert (tmp_path / "figures" / "strategies.png").is_file()
    (tmp_path / "sweep.json").write_text(json.dumps({"segmenters": specs[:1] + specs[2:3]}))
    page = build_report(tmp_path, ReportOptions(n_boot=20, formats=("png",))).read_text()
    assert "Fix the data vs fix the model" not in page
