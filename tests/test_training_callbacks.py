"""The epoch callback (``on_epoch``, :class:`StopTraining`), resume that is exact or refused
(other data, unsafe config changes), and torch threads left as the caller set them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cellrobust import InputError
from cellrobust.data.sample import Sample
from cellrobust.training import StopTraining, recipe_config, train
from cellrobust.training.history import read_history


def samples(n: int, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        mask = np.zeros((48, 48), np.int32)
        y, x = rng.integers(0, 36, 2)
        mask[y:y + 10, x:x + 8] = 1
        image = (50 + 150 * mask + rng.normal(0, 5, mask.shape)).clip(0, 255).astype(np.uint8)
        out.append(Sample(image, mask, name=f"s{seed}/{i}"))
    return out


def config(**changes):
    values = {"patch_size": 32, "patches_per_epoch": 2, "epochs": 2, "workers": 0,
              "threads": 1, **changes}
    return recipe_config("original", model={"width": 2, "depth": 2}, **values)


def test_on_epoch_gets_every_epoch_and_can_stop_cleanly(tmp_path):
    records = []
    train(config(epochs=3), samples(2, 0), samples(1, 1), run_dir=tmp_path / "a",
          progress=False, on_epoch=records.append, curves=False)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert [r["step"] for r in records] == [1, 2, 3]  # 2 patches per epoch, batch 2
    assert {"train_loss", "val_loss", "val_jaccard", "best_epoch", "monitor"} <= set(records[0])

    def stop(record):
        if record["epoch"] == 2:
            raise StopTraining

    best = train(config(epochs=5), samples(2, 0), samples(1, 1), run_dir=tmp_path / "b",
                 progress=False, on_epoch=stop, curves=False)
    assert best.is_file() and len(read_history(tmp_path / "b" / "history.csv")) == 2

    def boom(record):
        raise RuntimeError("from the callback")

    with pytest.raises(RuntimeError, match="from the callback"):
        train(config(), samples(2, 0), samples(1, 1), run_dir=tmp_path / "c", progress=False,
              on_epoch=boom, curves=False)


def test_threads_are_restored_after_training(tmp_path):
    before = torch.get_num_threads()
    train(config(threads=1), samples(2, 0), samples(1, 1), run_dir=tmp_path, progress=False,
          curves=False)
    assert torch.get_num_threads() == before


def test_resume_refuses_other_data_with_one_line(tmp_path):
    run = tmp_path / "run"
    train(config(epochs=1), samples(2, 0), samples(1, 1), run_dir=run, progress=False,
          curves=False, data_source={"data": "/data/first"})
    record = json.loads((run / "data.json").read_text())
    assert record["data"] == "/data/first" and record["train"]["n_frames"] == 2
    with pytest.raises(InputError) as err:
        train(config(epochs=2), samples(3, 5), samples(1, 1), run_dir=run, progress=False,
              resume=True, curves=False, data_source={"data": "/data/other"})
    text = str(err.value)
    assert "\n" not in text
    for part in ("was trained with training data /data/first (2 frames, digest",
                 "this run asks for /data/other (3 frames", "start a new run folder"):
        assert part in text
    with pytest.raises(InputError, match="validation data"):
        train(config(epochs=2), samples(2, 0), samples(1, 9), run_dir=run, progress=False,
              resume=True, curves=False)


def test_resume_applies_safe_changes_and_refuses_the_rest(tmp_path):
    run = tmp_path / "run"
    args = (samples(2, 0), samples(1, 1))
    train(config(epochs=1), *args, run_dir=run, progress=False, curves=False)
    with pytest.raises(InputError, match=r"lr: 0.001 -> 0.01.*start a new run folder") as err:
        train(config(epochs=1, lr=1e-2), *args, run_dir=run, progress=False, resume=True)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="schedule depends on it"):
        train(config(epochs=3, schedule="cosine"), *args, run_dir=run, progress=False,
              resume=True)
    train(config(epochs=3), *args, run_dir=run, progress=False, resume=True, curves=False)
    assert [r["epoch"] for r in read_history(run / "history.csv")] == [1, 2, 3]
    log = json.loads((run / "resume.json").read_text())
    assert log == [{"after_epoch": 1, "changes": {"epochs": [1, 3]}}]
    from cellrobust.training import load_run_config

    assert load_run_config(run) == config(epochs=3)  # config.yaml says what was trained


def test_more_epochs_on_resume_equal_one_longer_run(tmp_path):
    args = (samples(2, 0), samples(1, 1))
    train(config(epochs=1), *args, run_dir=tmp_path / "r", progress=False, curves=False)
    train(config(epochs=2), *args, run_dir=tmp_path / "r", progress=False, resume=True,
          curves=False)
    train(config(epochs=2), *args, run_dir=tmp_path / "s", progress=False, curves=False)
    a, b = (read_history(tmp_path / k / "history.csv") for k in ("r", "s"))
    assert [r["val_loss"] for r in a] == [r["val_loss"] for r in b]


def test_load_train_config_reads_data_and_reports_bad_fields(tmp_path):
    import yaml

    from cellrobust.training import load_train_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config(optimizer="adamax").to_dict()))
    assert load_train_config(path) == config(optimizer="adamax")
    path.write_text(yaml.safe_dump({**config().to_dict(), "optimizer": "adamx", "bogus": 1}))
    with pytest.raises(InputError, match="c.yaml: invalid TrainConfig: unknown field"):
        load_train_config(path)
    path.write_text("optimizer: adamx\n")
    with pytest.raises(InputError, match="did you mean 'adamax'"):
        load_train_config(path)
