"""`cellrobust train --data` on the held-out layouts, with no extra flags (issue #15).

Before the default split, `train --data` on a CTC sequence folder or a single image/mask pair
failed with "option(s) split do not apply to the ctc layout" and worked only with
`--val-data`. Micro budget: one epoch of two 64 px crops, width 4, depth 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

MICRO = ("--epochs", "1", "--patch-size", "64", "--patches-per-epoch", "2", "--batch-size", "2",
         "--width", "4", "--depth", "2", "--workers", "0", "--threads", "1", "--quiet",
         "--seed", "0")


@pytest.mark.parametrize("folder, expect_method", [
    ("ctc-u373/PhC-C2DH-U373", "contiguous"),   # CTC: one sequence -> a run of frames held out
    ("stardist-nuclei", "spatial"),             # one image/mask pair -> cut in two
])
def test_train_on_any_layout_without_flags(shared_data: Path, tmp_path: Path, folder,
                                          expect_method):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "cellrobust", "train", "--data",
                           str(shared_data / folder), "--out", str(out), *MICRO],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (out / "best.pt").is_file() and (out / "history.csv").is_file()
    record = json.loads((out / "data.json").read_text())
    assert record["method"] == expect_method and record["val_data"] is None
    assert record["train"]["n_frames"] >= 1 and record["validation"]["n_frames"] >= 1
    assert record["train"]["digest"] != record["validation"]["digest"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["epochs"] == 1 and config["model"]["width"] == 4
