"""`describe` and `cellrobust data info` / `formats`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cellrobust.cli import main
from cellrobust.data import Sample, describe


def test_describe_known_answer(ctc_dir: Path):
    info = describe(ctc_dir, sequences="02")
    # two frames, each with two cells of 20 px and 30 px on 32 x 40 = 1280 px
    assert (info.format, info.n_frames, info.n_annotated) == ("ctc", 2, 2)
    assert info.shapes == [(32, 40)] and info.dtypes == ["uint16"]
    assert info.objects_per_frame == {"min": 2, "median": 2, "mean": 2, "max": 2}
    assert info.foreground_fraction["mean"] == pytest.approx(50 / 1280)
    assert info.object_area_px["p5"] == 20 and info.object_area_px["p50"] == 25
    assert info.object_area_px["p95"] == 30
    assert info.approximate_instances is False
    assert json.loads(json.dumps(info.to_dict()))["n_frames"] == 2


def test_describe_counts_unannotated_frames():
    samples = [Sample(np.zeros((4, 4), np.uint8), None, "a"),
               Sample(np.ones((4, 4), np.uint8), np.eye(4, dtype=np.int32), "b")]
    info = describe(samples)
    assert info.n_frames == 2 and info.n_annotated == 1
    assert info.objects_per_frame["max"] == 1 and info.object_area_px["p50"] == 4
    assert info.intensity == {"min": 0.0, "mean": 0.5, "max": 1.0}


def test_describe_max_frames(psc_dir: Path):
    info = describe(psc_dir / "train", max_frames=3)
    assert info.n_frames == 101 and info.n_described == 3
    assert 0.04 < info.foreground_fraction["mean"] < 0.13
    assert 80 < info.object_area_px["p50"] < 200 and info.approximate_instances


def test_cli_info_real_psc_validation(psc_dir: Path, capsys):
    assert main(["data", "info", str(psc_dir / "validation")]) == 0
    out = capsys.readouterr().out
    for text in ("format:              deepimagej", "frames:              16 (16 annotated)",
                 "576x720", "uint8", "objects per frame", "foreground fraction",
                 "object area (px):    p5", "approximate"):
        assert text in out


def test_cli_info_simulated_default_json(capsys):
    pytest.importorskip("cellrobust.data.synthetic")
    assert main(["data", "info", "--frames", "1", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "synthetic" and info["n_frames"] == 1
    assert info["shapes"] == [[576, 720]] and info["objects_per_frame"]["max"] > 50


def test_cli_errors_are_one_line(tmp_path: Path, ctc_dir: Path, capsys):
    assert main(["data", "info", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cellrobust: error: ") and "path does not exist" in err
    assert main(["data", "info", str(ctc_dir), "--masks", "golden"]) == 2
    assert "masks: unknown value 'golden'" in capsys.readouterr().err


def test_cli_formats_lists_every_reader(capsys):
    assert main(["data", "formats"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["ctc", "deepimagej", "cellpose-npz", "cellpose-folder", "folders"]
