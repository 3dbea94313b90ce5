"""Sweep engine: schema, paired corruption, resume after kill -9, processes and Dask agree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellrobust import InputError
from cellrobust.sweep import (
    BASE_COLUMNS,
    Execution,
    SweepConfig,
    parse_segmenter,
    run_cell,
    run_sweep,
)

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from _sweep_fakes import discs

SEGS = ("py:_sweep_fakes:thresh", "py:_sweep_fakes:strict")
ARTS = ("gaussian_noise", "illumination")

CODE = Execution(allow_code=True)  # the fakes are py: segmenters


def _config(**kw):
    return SweepConfig(segmenters=kw.pop("segmenters", SEGS), artefacts=kw.pop("artefacts", ARTS),
                       **kw)


def _strip(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=["runtime_s"])


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serial")
    return run_sweep(_config(), discs(), folder, execution=CODE), folder


def test_schema_and_shape(serial):
    table, folder = serial
    assert list(table.columns[: len(BASE_COLUMNS)]) == list(BASE_COLUMNS)
    assert {"tp@0.50", "fp@0.90", "fn@0.70", "sum_iou@0.60"} <= set(table.columns)
    # segmenters x (artefacts x ladder levels + the raw clean reference) x images
    assert len(table) == 2 * (2 * 6 + 1) * 4
    clean = table[table["artefact"] == "none"]
    assert set(clean["severity_index"]) == {0} and set(clean["unit"]) == {"none"}
    assert (folder / "results.parquet").is_file() and (folder / "results.csv").is_file()
    csv = pd.read_csv(folder / "results.csv")
    pd.testing.assert_frame_equal(_strip(csv), _strip(table), check_dtype=False)
    clean = table[table["severity_index"] == 0]
    assert (clean["severity"] == 0).all()
    # pixel counts partition the image
    assert ((table[["tp_px", "fp_px", "fn_px", "tn_px"]].sum(axis=1)) == 48 * 48).all()
    assert (table["tp@0.50"] + table["fn@0.50"] == table["n_true"]).all()
    meta = json.loads((folder / "sweep.json").read_text())
    assert meta["severities"]["illumination"][0] == 0


def test_same_corruption_for_every_segmenter(serial):
    table, _ = serial
    keys = ["artefact", "severity_index", "sample"]
    per = table.groupby(keys)["params"].nunique()
    assert (per == 1).all()
    noisy = table[(table["artefact"] == "gaussian_noise") & (table["severity_index"] == 5)]
    assert noisy["fp_px"].sum() > table[table["severity_index"] == 0]["fp_px"].sum() / 2


def test_any_row_regenerates_alone(serial):
    table, _ = serial
    samples = discs()
    alone = run_cell(_config(), [samples[2]], "illumination", 4, allow_code=True)
    full = table[(table["artefact"] == "illumination") & (table["severity_index"] == 4)
                 & (table["sample"] == "disc2")]
    pd.testing.assert_frame_equal(
        _strip(alone).sort_values("segmenter", ignore_index=True),
        _strip(full).sort_values("segmenter", ignore_index=True), check_dtype=False)


def test_dask_local_cluster_gives_identical_table(serial, tmp_path):
    distributed = pytest.importorskip("distributed")
    table, _ = serial
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                                  dashboard_address=None) as cluster:
        out = run_sweep(_config(), discs(), tmp_path,
                        execution=Execution(scheduler=cluster.scheduler_address, allow_code=True))
    pd.testing.assert_frame_equal(_strip(out), _strip(table))


def test_process_pool_gives_identical_table(serial, tmp_path):
    table, _ = serial
    out = run_sweep(_config(), discs(), tmp_path, execution=Execution(workers=2, allow_code=True))
    pd.testing.assert_frame_equal(_strip(out), _strip(table))


def test_auto_workers_start_a_pool_only_for_long_sweeps(serial, tmp_path, monkeypatch):
    from cellrobust.sweep import runner

    table, _ = serial
    monkeypatch.setattr(runner, "default_workers", lambda cells: 2)
    auto = Execution(workers="auto", allow_code=True)
    short = run_sweep(_config(), discs(), tmp_path / "short", execution=auto)
    assert short.attrs["workers"] == 1  # milliseconds of work: no process started
    monkeypatch.setattr(runner, "POOL_AFTER_S", 0.0)
    pooled = run_sweep(_config(), discs(), tmp_path / "pooled", execution=auto)
    assert pooled.attrs["workers"] == 2
    pd.testing.assert_frame_equal(_strip(pooled), _strip(table))
    pd.testing.assert_frame_equal(_strip(short), _strip(table))


def test_pool_workers_build_their_segmenters_once_not_per_cell(tmp_path, monkeypatch):
    log = tmp_path / "builds.txt"
    monkeypatch.setenv("SWEEP_FAKE_BUILD_LOG", str(log))
    config = _config(segmenters=("py:_sweep_fakes:logged",))
    out = run_sweep(config, discs(), tmp_path / "run", execution=Execution(workers=2, allow_code=True))
    cells = out[["artefact", "severity_index"]].drop_duplicates()
    pids = log.read_text().split()
    parent = str(os.getpid())
    workers = [p for p in pids if p != parent]
    assert len(cells) > 4 and pids.count(parent) == 1  # the preflight build
    assert 1 <= len(workers) <= 2 and len(set(workers)) == len(workers), pids


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from _sweep_fakes import discs
from cellrobust.sweep import Execution, SweepConfig, run_sweep
config = SweepConfig(segmenters={segs!r}, artefacts={arts!r})
run_sweep(config, discs(), {folder!r}, execution=Execution(allow_code=True))
print("finished")
"""


def _launch(folder: Path, sleep: float) -> subprocess.Popen:
    code = SCRIPT.format(tests=str(HERE), segs=SEGS, arts=ARTS, folder=str(folder))
    env = {**os.environ, "SWEEP_FAKE_SLEEP": str(sleep)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _shards(cells: Path) -> list[Path]:
    return [p for p in cells.glob("*.parquet") if not p.name.startswith(".")]


def test_resume_after_sigkill(serial, tmp_path):
    table, _ = serial
    proc = _launch(tmp_path, sleep=0.25)
    cells = tmp_path / "cells"
    deadline = time.time() + 60
    while time.time() < deadline and len(_shards(cells)) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: p.stat().st_mtime_ns for p in _shards(cells)}
    assert 3 <= len(before) < 12, "the kill should land mid-sweep"
    assert not (tmp_path / "results.parquet").exists()
    rerun = _launch(tmp_path, sleep=0)
    _out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    after = {p.name: p.stat().st_mtime_ns for p in _shards(cells)}
    assert not list(cells.glob(".*")), "temporary files of the killed run remain"
    assert len(after) == 13  # 12 artefact cells + the raw clean reference
    assert all(after[name] == mtime for name, mtime in before.items()), "recomputed a cell"
    resumed = pd.read_parquet(tmp_path / "results.parquet")
    pd.testing.assert_frame_equal(_strip(resumed), _strip(table))


def test_folder_of_other_sweep_is_refused(serial, tmp_path):
    run_sweep(_config(artefacts=("illumination",)), discs(n=2), tmp_path, execution=CODE)
    with pytest.raises(InputError, match="different sweep"):
        run_sweep(_config(artefacts=("gaussian_noise",)), discs(n=2), tmp_path, execution=CODE)
    out = run_sweep(_config(artefacts=("gaussian_noise",)), discs(n=2), tmp_path,
                    execution=Execution(overwrite=True, allow_code=True))
    assert set(out["artefact"]) == {"gaussian_noise", "none"}


def test_bad_input_reported_before_work(tmp_path):
    with pytest.raises(InputError, match="valid values are:.*gaussian_noise"):
        run_sweep(_config(artefacts=("gausian_noise",)), discs(n=1), tmp_path, execution=CODE)
    with pytest.raises(InputError, match="segmenters: empty selection"):
        _config(segmenters=())
    with pytest.raises(InputError, match="artefacts: empty selection"):
        _config(artefacts=())
    with pytest.raises(InputError, match="empty selection, no images"):
        run_sweep(_config(), [], tmp_path, execution=CODE)
    with pytest.raises(InputError, match="has no 'nothing'"):
        run_sweep(_config(segmenters=("py:_sweep_fakes:nothing",)), discs(n=1), tmp_path, execution=CODE)
    with pytest.raises(InputError, match="severities"):
        run_sweep(_config(severities="nonsense"), discs(n=1), tmp_path, execution=CODE)
    assert not (tmp_path / "cells").exists()


class _SizeLimited:
    name = "limited"

    def segment(self, images):
        if images.shape[-1] % 16:
            raise InputError("image width must be a multiple of 16")
        return np.zeros(images.shape, np.int32)


def sized():
    return _SizeLimited()


def test_incompatible_input_size_reported_first(tmp_path):
    spec = "py:test_sweep:sized"
    samples = [s.with_(image=s.image[:, :40], labels=s.labels[:, :40]) for s in discs(n=2)]
    with pytest.raises(InputError, match="sized.*cannot process images of shape"):
        run_sweep(_config(segmenters=(spec,)), samples, tmp_path, execution=CODE)
    assert not (tmp_path / "cells").exists()


def test_parse_segmenter_names():
    assert parse_segmenter("dog_otsu").name == "dog_otsu"
    assert parse_segmenter("runs/original/best.pt").name == "original"
    assert parse_segmenter("robust=x/y.pt").spec == "x/y.pt"
    with pytest.raises(InputError, match="duplicate"):
        _config(segmenters=("dog_otsu", "dog_otsu"))


def test_rows_are_drawn_from_the_documented_stream(serial):
    """A row's corruption is ``apply(sample, artefact, value, rng=stream(seed, sample, artefact,
    value))`` - what ``cellrobust corrupt`` and the docs promise."""
    from cellrobust import artefacts

    table, _ = serial
    row = table[(table["artefact"] == "illumination") & (table["severity_index"] == 3)
                & (table["sample"] == "disc1")].iloc[0]
    _, params = artefacts.apply(discs()[1], "illumination", row["severity"],
                                rng=artefacts.stream(0, "disc1", "illumination", row["severity"]))
    assert json.loads(row["params"])["centres_yx"] == np.asarray(params["centres_yx"]).tolist()
