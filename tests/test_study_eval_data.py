"""`study --eval-data`: judge on another data set, honour the evaluation sizes, name the data.

Before issue #15, `StudyConfig` had no evaluation data set: `study --data ctc --model ...` with
nothing to train still split the 5 frames into 3/1/1, ignored `--eval-frames`/`--patch-size`,
and `study.json` said "embedded simulated data" with an empty "models".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CTC = "ctc-u373/PhC-C2DH-U373"
NUCLEI = "stardist-nuclei"
SMALL = ("--artefacts", "gaussian_noise", "--set", "severities=ladder", "--patches", "2",
         "--patch-size", "96", "--n-boot", "20", "--quiet")


def _study(out: Path, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "cellrobust", "study", "--recipes", "none",
                           "--out", str(out), *args, *SMALL],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "study.json").read_text())


def test_judged_on_eval_data_baselines_calibrated_on_data(shared_data: Path, tmp_path: Path):
    info = _study(tmp_path / "s", "--baselines", "dog_otsu", "--data", str(shared_data / CTC),
                  "--eval-data", str(shared_data / NUCLEI))
    judged = info["data_used"]["evaluation"]
    assert judged["path"] == str(shared_data / NUCLEI) and judged["format"] == "folders"
    assert (judged["frames"], judged["patches"], judged["patch_size"]) == (1, 2, 96)
    calibrated = info["data_used"]["calibration"]
    assert calibrated["path"] == str(shared_data / CTC) and calibrated["frames"] >= 1
    assert "training" not in info["data_used"]  # nothing was trained
    assert "simulated" not in info["description"]
    assert NUCLEI in info["description"] and "baselines calibrated on" in info["description"]
    assert set(info["models"]) == {"dog_otsu"}
    assert "training masks" in info["baselines"]["sigma_from"]
    report = (tmp_path / "s" / "report.html").read_text()
    assert str(shared_data / NUCLEI) in report


def test_models_only_study_judges_every_frame_and_honours_eval_frames(shared_data: Path,
                                                                     tmp_path: Path):
    whole = _study(tmp_path / "a", "--baselines", "otsu", "--data", str(shared_data / CTC))
    assert whole["data_used"]["evaluation"]["frames"] == 5  # no 3/1/1 split: nothing trains
    part = _study(tmp_path / "b", "--baselines", "otsu", "--eval-data", str(shared_data / CTC),
                  "--eval-frames", "2")
    assert part["data_used"]["evaluation"]["frames"] == 2
    assert part["data_used"]["evaluation"]["patches"] == 4  # 2 frames x 2 patches
    assert part["description"].endswith("(ctc, 2 frames)")


@pytest.mark.parametrize("n, text", [(1, "1 frame)"), (2, "2 frames)")])
def test_description_counts_frames_in_words(n, text):
    from cellrobust.stages.study import _description, resolve_study

    used = {"evaluation": {"path": "x", "format": "ctc", "frames": n}}
    assert _description(resolve_study("quick"), used).endswith(text)
