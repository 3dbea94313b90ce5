"""The embedded phase-contrast simulator: exact labels, determinism, validation, realism vs PSC.

The realism tolerances below are stated against the real PhC-C2DL-PSC training frames (measured
values in docs/simulator.md); they are a few times wider than the sim-vs-real gaps measured when
the simulator was tuned, and narrower than the differences a broken simulator produces.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi
from skimage.measure import label as label_regions

from cellrobust._rng import derive_rng
from cellrobust._validation import InputError
from cellrobust.data.dataset import Dataset
from cellrobust.data.synthetic import (
    DEFAULT_FRAMES,
    SimConfig,
    SyntheticDataset,
    load_default_dataset,
    simulate_frame,
)

SMALL = SimConfig(shape=(96, 128), n_cells=(8, 14))
N_SIM = 6  # simulated frames for the realism test
REAL_STEP = 10  # every 10th real training frame (11 frames)


def assert_exact_labels(labels: np.ndarray) -> int:
    """int32, sequential 1..n, each label exactly one 8-connected object; returns n."""
    assert labels.dtype == np.int32
    present = np.unique(labels)
    n = int(labels.max())
    np.testing.assert_array_equal(present, np.arange(n + 1))
    pieces = label_regions(labels, background=0, connectivity=2)
    assert pieces.max() == n, "some label is split into several pieces"
    return n


# ---------------------------------------------------------------- frames and labels


@pytest.fixture(scope="module")
def sim_frames():
    return [simulate_frame(rng=derive_rng(7, "test", i), name=f"sim/t{i:03d}")
            for i in range(N_SIM)]


def test_frame_format_and_exact_labels(sim_frames):
    for sample in sim_frames:
        assert sample.image.shape == (576, 720) and sample.image.dtype == np.uint8
        n = assert_exact_labels(sample.labels)
        assert 120 <= n <= 350
        assert sample.meta["pixel_size_um"] == 1.6
        assert sample.meta["approximate_instances"] is False
        assert sample.meta["n_cells"] == n


def test_some_cells_touch_and_doublets_exist(sim_frames):
    touching = 0
    for sample in sim_frames:
        lab = sample.labels
        right = (lab[:, 1:] > 0) & (lab[:, :-1] > 0) & (lab[:, 1:] != lab[:, :-1])
        down = (lab[1:] > 0) & (lab[:-1] > 0) & (lab[1:] != lab[:-1])
        touching += int(right.sum() + down.sum())
        # touching cells merge in a binary mask: fewer components than labels
        assert ndi.label(lab > 0, structure=np.ones((3, 3)))[1] < lab.max()
    assert touching > 0
    assert sum(s.meta["n_doublet_cells"] for s in sim_frames) > 0


def test_debris_is_not_labelled():
    config = SimConfig(n_cells=(0, 0), bright_specks=60.0, dark_specks=0.0, rings=0.0)
    sample = simulate_frame(rng=3, config=config)
    assert sample.labels.max() == 0
    background = np.median(sample.image)
    assert sample.image.max() >= background + 40  # bright specks are there, unlabelled


def test_unlabelled_fraction_hides_cells_from_labels_only():
    exact = simulate_frame(rng=21, config=SMALL)
    gappy = simulate_frame(rng=21, config=SimConfig(shape=(96, 128), n_cells=(8, 14),
                                                     unlabelled_fraction=0.5))
    assert gappy.meta["n_unlabelled"] > 0
    assert assert_exact_labels(gappy.labels) == exact.labels.max() - gappy.meta["n_unlabelled"]
    assert exact.meta["n_unlabelled"] == 0


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_labels_exact_for_any_seed(seed):
    sample = simulate_frame(rng=seed, config=SMALL)
    assert sample.image.shape == (96, 128)
    n = assert_exact_labels(sample.labels)
    assert n >= 1
    # every labelled cell is brighter on average than the frame (bright cells)
    means = ndi.mean(sample.image.astype(float), sample.labels, index=np.arange(1, n + 1))
    assert np.median(means) > np.median(sample.image)


@pytest.mark.parametrize("p", [0.5, 1.0, 2.0])
def test_rasterised_cell_area_matches_the_shape_formula(p):
    from cellrobust.data import _cells

    a, b = _cells.shape_from_area(np.array([400.0]), np.array([2.5]), np.array([p]))
    if p == 0.5:  # an ellipse: area = pi a b
        assert np.isclose(np.pi * a[0] * b[0], 400.0)
    cells = {"y": np.array([50.3]), "x": np.array([40.6]), "angle": np.array([0.7]), "a": a,
             "b": b, "p": np.array([p]), "s": np.array([0.0]), "contrast": np.array([1.0])}
    (oy, ox, mask, body, area), = _cells.rasterise(cells)
    assert area == mask.sum() and abs(area - 400) <= 0.06 * 400
    assert body.max() <= 1.2 and np.all(body[~mask] == 0)
    # the patch holds the whole cell: nothing touches its border
    assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


@settings(max_examples=12, deadline=None)
@given(area=st.floats(20, 2000), elongation=st.floats(1.0, 8.0), taper=st.floats(0.5, 2.0),
       asymmetry=st.floats(0, 0.9), touching=st.floats(0, 1), doublets=st.floats(0, 1),
       n=st.integers(0, 40), seed=st.integers(0, 1000))
def test_any_valid_config_gives_exact_labels(area, elongation, taper, asymmetry, touching,
                                             doublets, n, seed):
    config = SimConfig(shape=(64, 80), n_cells=(n, n), cell_area_px=area,
                       cell_area_limits_px=(8.0, 5000.0), elongation=elongation,
                       taper_range=(0.5, taper), asymmetry=asymmetry, touching_fraction=touching,
                       doublet_fraction=doublets)
    sample = simulate_frame(rng=seed, config=config)
    assert sample.image.shape == (64, 80) and sample.image.dtype == np.uint8
    assert assert_exact_labels(sample.labels) <= n


# ---------------------------------------------------------------- determinism and data set


def test_same_seed_identical_different_seeds_differ():
    a, b = simulate_frame(rng=11, config=SMALL), simulate_frame(rng=11, config=SMALL)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    c = simulate_frame(rng=12, config=SMALL)
    assert not np.array_equal(a.image, c.image)


def test_dataset_is_lazy_deterministic_and_split_aware():
    ds = SyntheticDataset(3, seed=5, split="validation", config=SMALL)
    assert isinstance(ds, Dataset) and ds.format == "synthetic" and len(ds) == 3
    assert ds.names == ["sim/validation/t000", "sim/validation/t001", "sim/validation/t002"]
    first, again = ds[1], ds[1]
    np.testing.assert_array_equal(first.image, again.image)
    expected = simulate_frame(rng=derive_rng(5, "sim", "validation", 1), config=SMALL)
    np.testing.assert_array_equal(first.image, expected.image)
    np.testing.assert_array_equal(first.labels, expected.labels)
    assert first.meta["split"] == "validation" and first.meta["index"] == 1
    assert not np.array_equal(ds[0].image, ds[1].image)
    other_split = SyntheticDataset(3, seed=5, split="test", config=SMALL)
    assert not np.array_equal(other_split[1].image, first.image)
    other_seed = SyntheticDataset(3, seed=6, split="validation", config=SMALL)
    assert not np.array_equal(other_seed[1].image, first.image)
    sliced = ds[1:]
    assert len(sliced) == 2
    np.testing.assert_array_equal(sliced[0].image, first.image)
    assert [s.name for s in ds] == ds.names


def test_load_default_dataset_sizes_and_splits():
    for split, n in DEFAULT_FRAMES.items():
        ds = load_default_dataset(split)
        assert len(ds) == n and ds.split == split and ds.n_annotated == n
    assert len(load_default_dataset("test", n_frames=2, seed=3)) == 2
    from cellrobust.data import load_default_dataset as lazily_exposed

    assert lazily_exposed is load_default_dataset


# ---------------------------------------------------------------- validation


def test_config_reports_every_invalid_field_at_once():
    with pytest.raises(InputError) as err:
        SimConfig(n_cells=(10, 5), cell_area_px=-1.0, jpeg_quality=0, shape=(576,),
                  touching_fraction=1.5)
    message = str(err.value)
    for field in ("n_cells", "cell_area_px", "jpeg_quality", "shape", "touching_fraction"):
        assert field in message
    with pytest.raises(InputError, match="taper_range"):
        SimConfig(taper_range=(0.3, 2.5))
    with pytest.raises(InputError, match="halo_strength"):
        SimConfig(halo_strength=float("nan"))
    assert SimConfig(jpeg_quality=None, halo_strength=0.0).jpeg_quality is None


def test_bad_arguments_are_named():
    with pytest.raises(InputError, match="did you mean 'train'"):
        load_default_dataset("tain")
    with pytest.raises(InputError) as err:
        SyntheticDataset(0, seed=-1)
    assert "n_frames" in str(err.value) and "seed" in str(err.value)
    with pytest.raises(TypeError, match="config"):
        simulate_frame(rng=0, config={"n_cells": (1, 2)})


def test_simulator_is_fast():
    """Loose guard (the machine is shared): >= 3 frames/s of CPU time; ~10-20 measured."""
    simulate_frame(rng=0)
    start = time.process_time()
    for i in range(3):
        simulate_frame(rng=i)
    assert 3 / (time.process_time() - start) >= 3.0


# ---------------------------------------------------------------- realism vs real PSC frames


def shape_stats(lab: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Areas and major/minor axis ratios of labels 1..n from second moments, vectorised (the
    same definitions as ``skimage.measure.regionprops`` axis lengths)."""
    yy, xx = np.nonzero(lab)
    idx = lab[yy, xx]
    area = np.bincount(idx, minlength=n + 1)[1:].astype(float)
    mean = lambda v: np.bincount(idx, weights=v, minlength=n + 1)[1:] / area  # noqa: E731
    my, mx = mean(yy.astype(float)), mean(xx.astype(float))
    cyy, cxx = mean(yy.astype(float) ** 2) - my**2, mean(xx.astype(float) ** 2) - mx**2
    cxy = mean(yy.astype(float) * xx) - my * mx
    half_trace, root = (cyy + cxx) / 2, np.sqrt(((cyy - cxx) / 2) ** 2 + cxy**2)
    major, minor = half_trace + root, np.maximum(half_trace - root, 0.0)
    ok = minor > 1e-9
    return area, np.sqrt(major[ok] / minor[ok])


def _stats(images, masks) -> dict:
    hist = np.zeros(256)
    fg, counts, areas, elong, above, below = [], [], [], [], [], []
    for image, mask in zip(images, masks):
        hist += np.bincount(image.ravel(), minlength=256)
        fg.append(mask.mean())
        lab, n = ndi.label(mask, structure=np.ones((3, 3)))
        counts.append(n)
        area, ratio = shape_stats(lab, n)
        areas.append(area)
        elong.append(ratio)
        dist = ndi.distance_transform_edt(~mask)
        gy = np.gradient(ndi.gaussian_filter(dist, 1.0))[0]
        coarse = ndi.median_filter(image[::4, ::4].astype(np.float32), 9)
        local = np.repeat(np.repeat(coarse, 4, 0), 4, 1)[: image.shape[0], : image.shape[1]]
        relative = image / local
        ring = (dist > 1) & (dist <= 4)
        above.append(relative[ring & (gy < -0.3)].mean())
        below.append(relative[ring & (gy > 0.3)].mean())
    return {"hist": hist / hist.sum(), "fg": np.array(fg), "n": np.array(counts),
            "areas": np.concatenate(areas), "elong": np.concatenate(elong),
            "above": float(np.mean(above)), "below": float(np.mean(below))}


@pytest.fixture(scope="module")
def real_stats(psc_dir: Path) -> dict:
    import tifffile

    root = psc_dir / "train"
    paths = sorted((root / "input").glob("t*.tif"))[::REAL_STEP]
    if not paths:
        pytest.skip(f"no PSC training frames under {root}")
    images, masks = [], []
    for path in paths:
        images.append(tifffile.imread(path))
        mask = tifffile.imread(root / "output" / f"man_seg{path.stem[1:]}.tif") > 0
        mask[0, 0] = mask[0, 1]  # the preparation's one-pixel marker
        masks.append(mask)
    return _stats(images, masks)


@pytest.fixture(scope="module")
def sim_stats(sim_frames) -> dict:
    return _stats([s.image for s in sim_frames], [s.labels > 0 for s in sim_frames])


def histogram_distances(real: dict, sim: dict) -> tuple[float, float, float]:
    """Wasserstein-1 (gray levels), L1 of the normalised histograms, L1 of 8-level bins."""
    r, s = real["hist"], sim["hist"]
    wasserstein = float(np.abs(np.cumsum(r) - np.cumsum(s)).sum())
    coarse = float(np.abs(r.reshape(32, 8).sum(1) - s.reshape(32, 8).sum(1)).sum())
    return wasserstein, float(np.abs(r - s).sum()), coarse


def code_mismatches(real: dict, sim: dict) -> int:
    """Gray levels 80-250 used in one data set but not the other. The real frames' storage gamma
    leaves every 3rd-7th level empty; the simulator reproduces that curve."""
    return int(((real["hist"][80:251] > 0) != (sim["hist"][80:251] > 0)).sum())


def shape_failures(real: dict, sim: dict) -> list[str]:
    """Area and elongation percentiles outside their tolerances (empty: all fine)."""
    failures = []
    for key, rel_median, rel_tails in (("areas", 0.12, 0.25), ("elong", 0.12, 0.2)):
        r = np.percentile(real[key], [5, 50, 95])
        s = np.percentile(sim[key], [5, 50, 95])
        if abs(s[1] - r[1]) > rel_median * r[1]:
            failures.append(f"{key} median {s[1]:.2f} vs real {r[1]:.2f}")
        if np.any(np.abs(s[[0, 2]] - r[[0, 2]]) > rel_tails * r[[0, 2]]):
            failures.append(f"{key} p5/p95 {s[[0, 2]]} vs real {r[[0, 2]]}")
    return failures


def halo_ok(real: dict, sim: dict) -> bool:
    """Same polarity as the real frames (dark above, bright below) and within 0.015."""
    polarity = sim["above"] < 0.99 and sim["below"] > 1.01
    return polarity and abs(sim["above"] - real["above"]) <= 0.015 and abs(
        sim["below"] - real["below"]) <= 0.015


def test_intensity_histogram_close_to_real(real_stats, sim_stats):
    wasserstein, fine_l1, coarse_l1 = histogram_distances(real_stats, sim_stats)
    assert wasserstein <= 5.0  # measured ~2.4; real train vs validation: 4.5
    assert fine_l1 <= 0.45  # measured ~0.32 here (0.22 on 24 frames); real train vs val 0.29
    assert coarse_l1 <= 0.30  # measured ~0.20; real train vs validation: 0.27
    assert code_mismatches(real_stats, sim_stats) <= 10  # measured 4; without the gamma ~40
    level = np.arange(256)
    assert abs((real_stats["hist"] * level).sum() - (sim_stats["hist"] * level).sum()) <= 5.0


def test_foreground_fraction_and_objects_per_frame_close_to_real(real_stats, sim_stats):
    assert abs(sim_stats["fg"].mean() - real_stats["fg"].mean()) <= 0.015
    real_n, sim_n = real_stats["n"].mean(), sim_stats["n"].mean()
    assert abs(sim_n - real_n) <= 0.2 * real_n
    assert sim_stats["n"].min() >= 120 and sim_stats["n"].max() <= 350


def test_object_areas_and_elongation_close_to_real(real_stats, sim_stats):
    assert shape_failures(real_stats, sim_stats) == []


def test_phase_halo_polarity_matches_real(real_stats, sim_stats):
    # real frames: darker fringe above each cell, brighter below (relief-like shading)
    assert real_stats["above"] < 0.99 and real_stats["below"] > 1.01
    assert halo_ok(real_stats, sim_stats)  # measured gap ~0.003


def test_realism_checks_reject_a_wrong_simulator(real_stats):
    """Negative control: larger, rounder cells with the halo upside down fail the checks."""
    wrong = SimConfig(cell_area_px=250.0, elongation=1.6, halo_angle_deg=-90.0, n_cells=(150, 200),
                      jpeg_quality=None, display_gamma=1.0, display_white_level=255.0)
    frames = [simulate_frame(rng=i, config=wrong) for i in range(2)]
    stats = _stats([f.image for f in frames], [f.labels > 0 for f in frames])
    assert len(shape_failures(real_stats, stats)) >= 2
    assert not halo_ok(real_stats, stats)
    assert code_mismatches(real_stats, stats) > 20  # no storage gamma curve
