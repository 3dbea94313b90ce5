"""Known-answer tests: the studies' formulas and the physical meaning of every parameter."""

from __future__ import annotations

import numpy as np
import pytest

from cellrobust import artefacts
from cellrobust.artefacts import geometry
from cellrobust.artefacts.normalise import minmax
from cellrobust.data import Sample


def flat(value: float, shape=(256, 256), dtype=np.float32) -> Sample:
    return Sample(np.full(shape, value, dtype=dtype), None, "flat", {})


def test_illumination_blob_peak_position_height_and_formula():
    sample = flat(0.0, shape=(64, 80))  # non-square
    out, params = artefacts.apply(sample, "illumination", 1000.0, rng=3, normalise="none")
    sigma = 0.2 * np.sqrt(64 * 80)
    assert params["sigma_px"] == pytest.approx(sigma, abs=1e-3)
    cy, cx = params["centres_yx"][0]
    assert 0 <= cy <= 63 and 0 <= cx <= 79
    py, px = np.unravel_index(np.argmax(out.image), out.image.shape)
    assert abs(py - cy) <= 0.5 + 1e-6 and abs(px - cx) <= 0.5 + 1e-6
    assert 1000 * np.exp(-0.25 / sigma**2) <= out.image.max() <= 1000.0
    yy, xx = np.mgrid[0:64, 0:80]
    expected = 1000 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(out.image, expected, atol=0.05)  # centre rounded to 1e-3 px


def test_illumination_study_default_is_minmax_to_0_255_and_centres_are_uniform():
    sample = Sample(np.arange(64 * 64, dtype=np.float32).reshape(64, 64) % 200, None, "r")
    out, params = artefacts.apply(sample, "illumination", 300.0, rng=0)
    assert params["normalise"] == "minmax"
    assert out.image.min() == 0 and out.image.max() == pytest.approx(255)
    stack = np.zeros((400, 16, 16), np.float32)
    _, _, drawn = artefacts.apply_batch(stack, "illumination", 1.0, rng=1, n_blobs=2)
    centres = np.array([p["centres_yx"] for p in drawn]).reshape(-1, 2)
    assert centres.shape == (800, 2) and centres.min() >= 0 and centres.max() <= 15
    assert abs(centres.mean() - 7.5) < 0.4


def test_minmax_known_values():
    x = np.array([[[10.0, 20.0], [30.0, 60.0]], [[5.0, 5.0], [5.0, 5.0]]], np.float32)
    out = minmax(x)
    np.testing.assert_allclose(out[0], [[0, 51], [102, 255]])
    np.testing.assert_array_equal(out[1], 0)


def test_gaussian_noise_sigma_measured_on_flat_image():
    out, _ = artefacts.apply(flat(100.0), "gaussian_noise", 20.0, rng=4, normalise="none")
    assert out.image.std() == pytest.approx(20.0, rel=0.02)
    assert out.image.mean() == pytest.approx(100.0, abs=0.2)


def test_speckle_is_multiplicative_with_given_variance():
    out, _ = artefacts.apply(flat(100.0), "speckle", 0.04, rng=5, normalise="none")
    assert out.image.std() == pytest.approx(100 * 0.2, rel=0.02)
    zero, _ = artefacts.apply(flat(0.0), "speckle", 0.04, rng=5, normalise="none")
    np.testing.assert_array_equal(zero.image, 0)


def test_poisson_photon_statistics():
    out, params = artefacts.apply(flat(200.0), "poisson", 100.0, rng=6, normalise="none")
    assert params["p99_gray"] == pytest.approx(200.0)
    assert params["gray_per_photon"] == pytest.approx(2.0)
    photons = out.image / 2.0
    np.testing.assert_allclose(photons, np.round(photons), atol=1e-4)  # whole photons
    assert photons.mean() == pytest.approx(100, rel=0.01)
    assert photons.var() == pytest.approx(100, rel=0.05)  # Poisson: variance = mean
    read, _ = artefacts.apply(flat(200.0), "poisson", 100.0, rng=6, normalise="none",
                              read_noise=10.0)
    assert (read.image / 2.0).var() == pytest.approx(100 + 100, rel=0.05)


def test_hot_pixels_fraction():
    sample = Sample(np.full((200, 200), 100, np.uint8), None, "f")
    sample.image[0, 0], sample.image[0, 1] = 0, 255
    out, params = artefacts.apply(sample, "hot_pixels", 10.0, rng=7)
    changed = out.image != sample.image
    assert changed.mean() == pytest.approx(0.10, abs=0.01)
    assert set(np.unique(out.image[changed])) <= {0.0, 255.0}
    assert params["n_hot"] == pytest.approx(params["n_dead"], rel=0.1)


@pytest.mark.parametrize("psf", ["gaussian", "disk"])
def test_defocus_psf_has_unit_mass_and_sigma_squared_second_moment(psf):
    delta = np.zeros((65, 65), np.float32)
    delta[32, 32] = 1000.0
    out, params = artefacts.apply(Sample(delta, None, "d"), "defocus", 3.0, rng=0, psf=psf,
                                  normalise="none")
    kern = out.image / 1000.0
    assert kern.sum() == pytest.approx(1.0, abs=1e-4)
    yy, _ = np.mgrid[0:65, 0:65] - 32
    assert (kern * yy**2).sum() == pytest.approx(9.0, rel=0.06)
    assert params["sigma_px"] == 3.0 and params["psf"] == psf


def test_defocus_relative_to_measured_cell_diameter():
    labels = np.zeros((64, 64), np.int32)
    yy, xx = np.mgrid[0:64, 0:64]
    for i, (cy, cx) in enumerate([(16, 16), (16, 48), (48, 32)]):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 25] = i + 1  # diameter ~10 px
    sample = Sample(np.zeros((64, 64), np.uint8), labels, "c")
    _, params = artefacts.apply(sample, "defocus", 0.2, rng=0, relative_to="diameter")
    area = (labels == 1).sum()
    assert params["cell_diameter_px"] == pytest.approx(2 * np.sqrt(area / np.pi), abs=1e-3)
    assert params["sigma_px"] == pytest.approx(0.2 * params["cell_diameter_px"], abs=1e-3)
    _, given = artefacts.apply(sample, "defocus", 0.5, rng=0, relative_to="diameter",
                               cell_diameter=8.0)
    assert given["sigma_px"] == 4.0


def test_motion_blur_horizontal_line():
    delta = np.zeros((33, 33), np.float32)
    delta[16, 16] = 1.0
    out, params = artefacts.apply(Sample(delta, None, "d"), "motion_blur", 9.0, rng=0,
                                  angle=0.0, normalise="none")
    assert params["angle_deg"] == 0.0
    assert out.image.sum() == pytest.approx(1.0, abs=1e-5)
    assert out.image[16].sum() == pytest.approx(1.0, abs=1e-3)  # all mass on the row
    cols = np.nonzero(out.image[16] > 1e-4)[0]
    assert 9 <= cols.max() - cols.min() + 1 <= 11
    _, drawn = artefacts.apply(Sample(delta, None, "d"), "motion_blur", 5.0, rng=1)
    assert 0 <= drawn["angle_deg"] < 180


def test_vignetting_far_corner_loses_gain():
    out, params = artefacts.apply(flat(200.0, shape=(101, 121)), "vignetting", 50.0, rng=2)
    cy, cx = params["centre_yx"]
    assert 25 <= cy <= 75 and 30 <= cx <= 90
    assert out.image.min() == pytest.approx(100.0, rel=1e-4)
    assert out.image.max() <= 200.0 + 1e-3


def test_bias_field_peak_deviation_equals_gain():
    out, _ = artefacts.apply(flat(100.0), "bias_field", 30.0, rng=3, normalise="none")
    deviation = np.abs(out.image / 100.0 - 1)
    assert deviation.max() == pytest.approx(0.30, abs=1e-4)
    assert np.abs(np.diff(out.image, axis=1)).max() < 1.0  # smooth


def test_contrast_scales_about_the_mean_and_requantises_integers():
    rng = np.random.default_rng(0)
    image = rng.integers(50, 200, (64, 64)).astype(np.uint8)
    out, params = artefacts.apply(Sample(image, None, "c"), "contrast", 0.5, rng=0)
    assert params["mean_gray"] == pytest.approx(image.mean(), abs=1e-3)
    np.testing.assert_array_equal(out.image, np.round(out.image))
    assert out.image.std() == pytest.approx(0.5 * image.std(), rel=0.01)


def test_gamma_known_value():
    image = np.full((8, 8), 51, np.uint8)  # 51 / 255 = 0.2
    out, _ = artefacts.apply(Sample(image, None, "g"), "gamma", 2.0, rng=0)
    np.testing.assert_allclose(out.image, 255 * 0.04, rtol=1e-5)


def test_jpeg_dct_model_matches_libjpeg_and_compresses_more_at_lower_quality():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:61, 0:70]  # not a multiple of 8: edge blocks padded like libjpeg
    image = np.clip(120 + 60 * np.sin(xx / 5) * np.cos(yy / 7) + rng.normal(0, 8, xx.shape),
                    0, 255).astype(np.uint8)
    sample = Sample(image, None, "j")
    kept = []
    for q in (90, 50, 10):
        ours, params = artefacts.apply(sample, "jpeg", q, rng=0, codec="dct")
        ref, ref_params = artefacts.apply(sample, "jpeg", q, rng=0, codec="opencv")
        loss = np.abs(ref.image - image).mean()
        assert np.abs(ours.image - ref.image).mean() < 0.25 * loss
        assert ref_params["bytes"] > 0
        kept.append(params["nonzero_coefficients"])
    assert kept[0] > kept[1] > kept[2]
    wide = Sample(image.astype(np.uint16) * 100, None, "w")
    out, _ = artefacts.apply(wide, "jpeg", 90, rng=0)
    assert abs(out.image.mean() - wide.image.mean()) < 0.02 * wide.image.mean()


def test_stripes_are_constant_along_rows_or_columns():
    out, _ = artefacts.apply(flat(100.0), "stripes", 10.0, rng=4, normalise="none")
    assert np.ptp(out.image, axis=1).max() == 0
    assert out.image[:, 0].std() == pytest.approx(10.0, rel=0.15)
    cols, _ = artefacts.apply(flat(100.0), "stripes", 10.0, rng=4, orientation="columns")
    assert np.ptp(cols.image, axis=0).max() == 0


def test_debris_particles_on_background_labels_untouched_and_prefix_monotone():
    labels = np.zeros((256, 256), np.int32)
    labels[:, :128] = 1  # left half is one big "cell"
    sample = Sample(np.full((256, 256), 100, np.uint8), labels, "d")
    out, params = artefacts.apply(sample, "debris", 12.0, rng=5, cell_diameter=10.0)
    particles = params["particles_yx_d_sign"]
    assert 11 <= len(particles) <= 13
    assert all(x >= 127.5 for _, x, _, _ in particles)
    assert out.labels is labels
    assert np.abs(out.image[:, :110] - 100).max() < 1  # nothing rendered deep inside the cell
    fewer, few = artefacts.apply(sample, "debris", 4.0, rng=5, cell_diameter=10.0)
    assert few["particles_yx_d_sign"] == particles[:len(few["particles_yx_d_sign"])]


def test_zoom_crops_count_scales_with_area_ratio():
    assert geometry.patches_per_frame((576, 720), 1.0) == 6
    assert geometry.patches_per_frame((576, 720), 2.0) == 25  # 414720 / 128^2 = 25.3
    assert geometry.patches_per_frame((576, 720), 5.0) == 80  # clipped
    assert geometry.patches_per_frame((576, 720), 0.5) == 6  # clipped
    assert len(geometry.STUDY_GRID) == 22


def test_zoom_crops_are_exact_crops_at_zoom_one_and_keep_ids():
    yy, xx = np.mgrid[0:300, 0:400]
    image = (xx + 1000 * yy).astype(np.float32)
    labels = ((yy // 30) * 20 + xx // 30 + 1).astype(np.int32)
    frame = Sample(image, labels, "frame", {"pixel_size_um": 1.6})
    crops = geometry.zoom_crops(frame, 1.0, rng=0, size=64, normalise="none")
    assert len(crops) == geometry.patches_per_frame((300, 400), 1.0, size=64)
    for crop in crops:
        y0, x0 = crop.meta["crop_yx"]
        np.testing.assert_array_equal(crop.image, image[y0:y0 + 64, x0:x0 + 64])
        np.testing.assert_array_equal(crop.labels, labels[y0:y0 + 64, x0:x0 + 64])
    zoomed = geometry.zoom_crops(frame, 2.0, rng=0, size=64, n=3, normalise="none")
    assert len(zoomed) == 3 and zoomed[0].meta["window_px"] == 32
    assert zoomed[0].meta["pixel_size_um"] == pytest.approx(0.8)
    y0, x0 = zoomed[0].meta["crop_yx"]
    window = labels[y0:y0 + 32, x0:x0 + 32]
    np.testing.assert_array_equal(zoomed[0].labels[::2, ::2], window)  # nearest, ids kept
    assert zoomed[0].name == "frame/zoom2/p0"
    again = geometry.zoom_crops(frame, 2.0, rng=0, size=64, n=3, normalise="none")
    np.testing.assert_array_equal(again[2].image, zoomed[2].image)


def test_zoom_out_pads_with_image_minimum():
    image = np.full((64, 64), 150, np.uint8)
    image[0, 0] = 20
    out, _ = artefacts.apply(Sample(image, None, "z"), "zoom", 0.5, rng=0)
    assert out.image[0, 0] == 20 and out.image[32, 32] == 150


@pytest.mark.parametrize("zoom, n, rows", [
    # source row = round-half-up((y - c) / zoom + c), c = (n - 1) / 2; -1 = outside (0)
    (1.5, 16, [3, 3, 4, 5, 5, 6, 7, 7, 8, 9, 9, 10, 11, 11, 12, 13]),
    (0.5, 8, [-1, -1, 1, 3, 5, 7, -1, -1]),
    (1.0, 5, [0, 1, 2, 3, 4]),
])
def test_zoom_labels_follow_the_nearest_source_pixel(zoom, n, rows):
    yy, xx = np.mgrid[0:n, 0:n]
    labels = (yy * n + xx + 1).astype(np.int32)
    out, _ = artefacts.apply(Sample(np.zeros((n, n), np.float32), labels, "z"), "zoom", zoom,
                             rng=0, normalise="none")
    src = np.asarray(rows)
    expected = np.where((src[:, None] >= 0) & (src[None, :] >= 0),
                        (src[:, None] * n + src[None, :] + 1), 0)
    np.testing.assert_array_equal(out.labels, expected)
    assert out.labels.dtype == np.int32
