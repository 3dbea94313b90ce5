"""Frame-level artefacts in the sweep: ``cell_size`` cuts its own windows from whole frames."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellrobust import InputError, robustness
from cellrobust.artefacts.geometry import patches_per_frame
from cellrobust.data import random_patches
from cellrobust.sweep import Execution, SweepConfig, frame_level, run_cell, run_sweep

sys.path.insert(0, str(Path(__file__).parent))
from _sweep_fakes import discs

SEGS = ("py:_sweep_fakes:thresh", "py:_sweep_fakes:strict")
SIZE = 32
ZOOMS = (1.0, 0.5, 2.0)

CODE = Execution(allow_code=True)  # the fakes are py: segmenters


def _config(**kw):
    return SweepConfig(segmenters=SEGS, artefacts=("gaussian_noise", "cell_size"),
                       severities={"gaussian_noise": (0.0, 30.0), "cell_size": ZOOMS},
                       patch_size=SIZE, **kw)


def _frames():
    return discs(n=2, size=96, seed=3)


def _patches(frames):
    return [p for i, f in enumerate(frames) for p in random_patches(f, 2, SIZE, rng=i)]


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    frames = _frames()
    return run_sweep(_config(), _patches(frames), folder, frames=frames, execution=CODE), folder


def test_patches_per_severity_follow_the_area_ratio(serial):
    table, folder = serial
    cs = table[table["artefact"] == "cell_size"]
    for idx, zoom in enumerate(ZOOMS):
        rows = cs[cs["severity_index"] == idx]
        expected = 2 * patches_per_frame((96, 96), zoom, size=SIZE)  # frames x area ratio
        assert rows["sample"].nunique() == expected, zoom
        assert len(rows) == len(SEGS) * expected
        assert rows["sample"].str.contains(f"/zoom{zoom:g}/").all()
    assert ((cs[["tp_px", "fp_px", "fn_px", "tn_px"]].sum(axis=1)) == SIZE * SIZE).all()
    noise = table[table["artefact"] == "gaussian_noise"]
    assert set(noise["sample"]) == {p.name for p in _patches(_frames())}  # fixed patches
    assert "frames" in json.loads((folder / "sweep.json").read_text())


def test_windows_are_where_params_say_known_answer(serial):
    """At zoom 1 a window is a plain crop: its true instance count is the frame's there."""
    table, _ = serial
    frames = {f.name: f for f in _frames()}
    clean = table[(table["artefact"] == "cell_size") & (table["severity_index"] == 0)
                  & (table["segmenter"] == "_sweep_fakes.thresh")]
    for _, row in clean.iterrows():
        params = json.loads(row["params"])
        y, x = params["crop_yx"]
        assert params["window_px"] == SIZE and params["zoom"] == 1.0
        window = frames[row["sample"].split("/")[0]].labels[y:y + SIZE, x:x + SIZE]
        assert row["n_true"] == len(np.setdiff1d(np.unique(window), [0]))


def test_every_segmenter_sees_the_same_windows(serial):
    table, _ = serial
    per = table.groupby(["artefact", "severity_index", "sample"])["params"].nunique()
    assert (per == 1).all()
    segs = table.groupby(["artefact", "severity_index", "sample"])["segmenter"].nunique()
    assert (segs == len(SEGS)).all()


def test_process_pool_and_dask_give_the_same_table(serial, tmp_path):
    table, _ = serial
    frames = _frames()
    strip = lambda t: t.drop(columns=["runtime_s"])  # noqa: E731
    pooled = run_sweep(_config(), _patches(frames), tmp_path / "pool", frames=frames,
                       execution=Execution(workers=2, allow_code=True))
    pd.testing.assert_frame_equal(strip(pooled), strip(table))
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                                  dashboard_address=None) as cluster:
        out = run_sweep(_config(), _patches(frames), tmp_path / "dask", frames=frames,
                        execution=Execution(scheduler=cluster.scheduler_address, allow_code=True))
    pd.testing.assert_frame_equal(strip(out), strip(table))


def test_curves_score_severities_with_different_image_counts(serial):
    table, _ = serial
    curve = robustness.curves(table, "jaccard", n_boot=50)
    cs = curve[(curve["artefact"] == "cell_size") & (curve["segmenter"] == "_sweep_fakes.thresh")]
    assert list(cs["n_images"]) == [2 * patches_per_frame((96, 96), z, size=SIZE)
                                    for z in ZOOMS]
    assert np.isfinite(cs[["value", "lo", "hi"]].to_numpy()).all()
    assert (cs["lo"] <= cs["value"]).all() and (cs["value"] <= cs["hi"]).all()


def test_frames_missing_is_reported_before_work(tmp_path):
    assert frame_level(_config()) == ["cell_size"]
    with pytest.raises(InputError, match="cell_size.*whole frames.*'zoom'"):
        run_sweep(_config(), _patches(_frames()), tmp_path / "r", execution=CODE)
    assert not (tmp_path / "r" / "cells").exists()
    with pytest.raises(InputError, match="whole frames"):
        run_cell(_config(), _patches(_frames()), "cell_size", 1, allow_code=True)
    unlabelled = [f.with_(labels=None) for f in _frames()]
    with pytest.raises(InputError, match="frames: 2 images have no labels"):
        run_sweep(_config(), _patches(_frames()), tmp_path / "u", frames=unlabelled, execution=CODE)


def test_patch_level_sweeps_ignore_frames(tmp_path):
    config = SweepConfig(segmenters=SEGS, artefacts=("gaussian_noise",),
                         severities={"gaussian_noise": (0.0, 30.0)})
    frames = _frames()
    with_frames = run_sweep(config, _patches(frames), tmp_path / "a", frames=frames, execution=CODE)
    without = run_sweep(config, _patches(frames), tmp_path / "b", execution=CODE)
    pd.testing.assert_frame_equal(with_frames.drop(columns=["runtime_s"]),
                                  without.drop(columns=["runtime_s"]))
