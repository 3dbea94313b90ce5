"""Kill a training process (SIGKILL) mid-run, resume it, and check it ends exactly where an
uninterrupted run ends: valid best checkpoint, continuous history, identical weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellrobust._guard import MARKER
from cellrobust._lock import LOCK_NAME
import torch

from cellrobust._io import TEMP_PREFIX
from cellrobust.data import open_dataset
from cellrobust.models.checkpoint import load_checkpoint, read_checkpoint
from cellrobust.training import recipe_config, train
from cellrobust.training.history import read_history

from _deepimagej import write_deepimagej

EPOCHS = 4


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "cellrobust", "train", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_deepimagej(tmp_path_factory.mktemp("dij"), train_frames=(150, 151, 152))


def _train_args(data: Path, out: Path) -> list[str]:
    return ["--data", str(data), "--recipe", "augmented", "--out", str(out), "--epochs",
            str(EPOCHS), "--patch-size", "32", "--patches-per-frame", "6", "--width", "4",
            "--workers", "1", "--threads", "1", "--monitor", "val_jaccard", "--quiet"]


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(dataset, tmp_path):
    run = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(*_train_args(dataset, run)), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    history = run / "history.csv"
    while time.monotonic() < deadline and proc.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) >= 3:  # 2 epochs done
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)  # at once: epochs of this micro run take well under 1 s
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = read_checkpoint(run / "last.pt")["train_state"]["epoch"]
    assert 2 <= done_before < EPOCHS
    # SIGKILL can leave a writer's temporary file, never a torn target; resume clears them
    # (and the run folder's ownership marker and lock, which the resume takes over)
    ours = {MARKER, LOCK_NAME}
    assert all(p.name.startswith(TEMP_PREFIX) or p.name in ours
               for p in run.iterdir() if p.name.startswith("."))

    resumed = subprocess.run(_cmd("--resume", str(run), "--quiet"),  # data from data.json
                             env=_env(), capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == [MARKER]
    rows = read_history(history)
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    model, config, meta = load_checkpoint(run / "best.pt")
    assert meta["best_epoch"] == meta["epoch"] and config.width == 4
    assert meta["metrics"]["val_jaccard"] == pytest.approx(max(r["val_jaccard"] for r in rows),
                                                           abs=1e-6)

    reference = tmp_path / "reference"  # uninterrupted, in this process, no data workers
    config = recipe_config("augmented", epochs=EPOCHS, patch_size=32, patches_per_frame=6,
                           model={"width": 4}, workers=0, threads=1, monitor="val_jaccard")
    train(config, list(open_dataset(dataset, split="train")),
          list(open_dataset(dataset, split="validation")), run_dir=reference, progress=False)
    ref_rows = read_history(reference / "history.csv")
    for a, b in zip(rows, ref_rows):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    last, ref = (read_checkpoint(p / "last.pt")["state_dict"] for p in (run, reference))
    assert all(torch.allclose(last[k], ref[k], atol=1e-6) for k in ref)


def test_resume_refuses_a_folder_without_a_run(tmp_path, dataset):
    from cellrobust.cli import main

    assert main(["train", "--resume", str(tmp_path), "--data", str(dataset)]) == 1
