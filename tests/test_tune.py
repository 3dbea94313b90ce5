"""``cellrobust tune``: search space as data, the robustness objective, a micro study of 20
trials, reproducing the best trial, two workers on one SQLite storage, resume after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cellrobust import InputError
from cellrobust.training.config import load_train_config, recipe_config
from cellrobust.training.tune import ObjectiveConfig, SearchConfig, SearchSpace
from cellrobust.training.tune.space import DEFAULT_SPACE

from _deepimagej import write_deepimagej

optuna = pytest.importorskip("optuna")

SPACE = {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
         "optimizer": {"type": "categorical", "choices": ["adam", "adamax"]},
         "width": {"type": "int", "low": 2, "high": 6, "step": 2},
         "dropout": {"type": "float", "low": 0.0, "high": 0.3},
         "artefact:gaussian_noise": {"type": "float", "low": 0.0, "high": 60.0}}


def micro_base():
    return recipe_config("artefact", monitor="val_jaccard", patch_size=32, patches_per_epoch=4,
                         epochs=2, workers=0, threads=1, model={"width": 4, "depth": 2})


def tune_config(out: Path, data: Path, **search):
    from cellrobust.stages.tune import TuneConfig, default_storage

    options = {"storage": default_storage(out), "n_trials": 20, "startup_trials": 5,
               "pruner_startup": 3, **search}
    return TuneConfig(out=out, search=SearchConfig(**options), base=micro_base(),
                      space=SearchSpace.from_mapping(SPACE),
                      objective=ObjectiveConfig(levels=(1, 3)), data=data, val_patches=2,
                      val_patch_size=32, progress=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_deepimagej(tmp_path_factory.mktemp("dij"))


@pytest.fixture(scope="module")
def study_dir(data, tmp_path_factory) -> Path:
    from cellrobust.stages.tune import run

    out = tmp_path_factory.mktemp("tune") / "out"
    with _one_thread():
        run(tune_config(out, data))
    return out


class _one_thread:
    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


def _study(out: Path, name: str = "cellrobust-tune"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


# -- search space: data, validated ------------------------------------------------------------
@pytest.mark.parametrize("space, expected", [
    ({"lrr": {"type": "float", "low": 1e-4, "high": 1e-2}}, "unknown parameter (did you mean 'lr'?)"),
    ({"lr": {"type": "float", "low": 1e-2, "high": 1e-4}}, "low <= high"),
    ({"optimizer": {"type": "categorical", "choices": ["adam", "adamx"]}}, "did you mean 'adamax'"),
    ({"width": {"type": "int", "low": 2.5, "high": 8}}, "low: expected a finite int"),
    ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "log: needs low > 0"),
    ({"artefact:zoom": {"type": "float", "low": 1, "high": 2}}, "cannot be a training range"),
    ({"lr": {"type": "uniform", "low": 0, "high": 1}}, "type: expected one of"),
    ({"lr": {"type": "float", "low": 0, "hi": 1}}, "unknown key(s) ['hi']"),
])
def test_bad_search_space_is_one_line(space, expected):
    with pytest.raises(InputError) as err:
        SearchSpace.from_mapping(space).check_against(micro_base())
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_space_file_is_data_and_round_trips(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("lr: {type: float, low: 1e-4, high: 1e-2, log: true}\n"
                    "optimizer: {type: categorical, choices: [adam, adamax]}\n")
    space = SearchSpace.from_file(path)
    assert space.to_dict()["lr"] == {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
    assert SearchSpace.from_mapping(space.to_dict()) == space
    path.write_text("!!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(Exception, match="not a readable search space"):
        SearchSpace.from_file(path)


def test_apply_maps_values_onto_the_training_config():
    space = SearchSpace.from_mapping({**DEFAULT_SPACE, "depth": {"type": "int", "low": 1,
                                                                 "high": 2},
                                      "scale_spread": {"type": "float", "low": 0, "high": 1}})
    space.check_against(micro_base())
    config = space.apply(micro_base(), {"lr": 3e-4, "optimizer": "adamax", "depth": 1,
                                        "dropout": 0.25, "scale_spread": 1.0,
                                        "artefact:illumination": 0.0,
                                        "artefact:speckle": 0.05})
    assert (config.lr, config.optimizer, config.model.depth) == (3e-4, "adamax", 1)
    assert config.model.dropout == (0.25, 0.25, 0.25) and config.scale_range == (0.5, 2.0)
    ranges = {a.name: (a.low, a.high) for a in config.artefacts}
    assert ranges == {"gaussian_noise": (0.0, 30.0), "speckle": (0.0, 0.05)}  # 0 = no illum.


def test_objective_config_validates():
    with pytest.raises(InputError, match="did you mean 'gaussian_noise'.*levels.*score") as err:
        ObjectiveConfig(artefacts=("gausian_noise",), levels=(0, 6), score="mean")
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="frame-level"):
        ObjectiveConfig(artefacts=("cell_size",))
    with pytest.raises(InputError, match="grace_s"):
        SearchConfig(storage="sqlite:///x.db", heartbeat_s=10, grace_s=5)


# -- a study of 20 micro trials ----------------------------------------------------------------
def test_twenty_trials_write_table_best_config_figure_and_record(study_dir):
    import csv
    import json

    rows = list(csv.DictReader((study_dir / "trials.csv").open()))
    assert len(rows) == 20 and [int(r["number"]) for r in rows] == list(range(20))
    states = {r["state"] for r in rows}
    assert states <= {"COMPLETE", "PRUNED"} and "COMPLETE" in states
    done = [r for r in rows if r["state"] == "COMPLETE"]
    for r in done:  # mPC is the mean of the corrupted conditions, clean excluded
        conds = [float(r[f"score_{a}@{lv}"]) for a in ("illumination", "gaussian_noise")
                 for lv in (1, 3)]
        assert float(r["value"]) == pytest.approx(np.mean(conds))
        assert float(r["score_worst"]) == pytest.approx(min(conds))
    best = max(done, key=lambda r: float(r["value"]))
    assert f"Best trial: **{best['number']}**" in (study_dir / "tune.md").read_text()
    record = json.loads((study_dir / "tune.json").read_text())
    assert record["stage"] == "tune" and record["versions"]["optuna"] == optuna.__version__
    assert record["digests"]["train_data"]["n_frames"] == 2
    assert (study_dir / "tune.png").read_bytes()[:4] == b"\x89PNG"


def test_best_config_reproduces_the_best_trial(study_dir, data):
    from cellrobust.models.checkpoint import read_checkpoint
    from cellrobust.stages.tune import _frames
    from cellrobust.training import train
    from cellrobust.training.tune.objective import build_conditions, validation_samples

    study = _study(study_dir)
    best = study.best_trial
    config = load_train_config(study_dir / "best_config.yaml")
    assert config.to_dict() == best.user_attrs["config"]
    tc = tune_config(study_dir, data)
    train_frames, val, _ = _frames(tc)
    val_samples = validation_samples(build_conditions(val, tc.objective))
    with _one_thread():
        path = train(config, train_frames, val_samples, run_dir=study_dir.parent / "again",
                     progress=False, curves=False)
    ours = read_checkpoint(path)["state_dict"]
    theirs = read_checkpoint(Path(best.user_attrs["run_dir"]) / "best.pt")["state_dict"]
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-6) for k in theirs)


def test_resuming_with_another_objective_is_refused(study_dir, data):
    import dataclasses

    from cellrobust.stages.tune import run

    other = dataclasses.replace(tune_config(study_dir, data, n_trials=1),
                                objective=ObjectiveConfig(levels=(1, 2)))
    with pytest.raises(InputError, match="was started with a different objective") as err:
        run(other)
    assert "\n" not in str(err.value)
    assert len(_study(study_dir).trials) == 20  # nothing ran


# -- workers and kills (subprocesses) ---------------------------------------------------------
_WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import torch
    torch.set_num_threads(1)
    from test_tune import tune_config
    from cellrobust.stages.tune import run
    out, data, worker, n, total = sys.argv[1:6]
    run(tune_config(Path(out), Path(data), worker=int(worker), n_trials=int(n) or None,
                    total_trials=int(total) or None, heartbeat_s=1, grace_s=3))
""").format(tests=str(Path(__file__).parent))


def _worker(out: Path, data: Path, worker: int, n: int, total: int = 0) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", _WORKER, str(out), str(data), str(worker),
                             str(n), str(total)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_workers_share_one_sqlite_storage(data, tmp_path):
    out = tmp_path / "shared"
    procs = [_worker(out, data, k, 4) for k in (0, 1)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    trials = _study(out).trials
    assert len(trials) == 8 and sorted(t.number for t in trials) == list(range(8))
    drawn = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(drawn)) == 8  # the workers' samplers never replay each other's draws
    assert len({t.user_attrs["run_dir"] for t in trials}) == 8


@pytest.mark.slow
def test_sigkill_mid_study_then_resume_keeps_finished_trials(data, tmp_path):
    out, total = tmp_path / "killed", 8
    proc = _worker(out, data, 0, 0, total)
    deadline = time.monotonic() + 300
    finished = []
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "study.db").is_file():
            try:
                finished = [t for t in _study(out).trials if t.state.is_finished()]
            except (KeyError, Exception):  # the study is being created
                finished = []
            if len(finished) >= 3:
                break
        time.sleep(0.2)
    assert proc.poll() is None, f"the study ended before it could be killed: {proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = {t.number: (t.state, t.value) for t in _study(out).trials if t.state.is_finished()}
    time.sleep(3.5)  # past the grace period: the killed worker's trial is stale
    proc = _worker(out, data, 0, 0, total)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    trials = _study(out).trials
    after = {t.number: (t.state, t.value) for t in trials if t.state.is_finished()}
    assert all(after[n] == before[n] for n in before)  # finished trials kept as they were
    done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == total and max(t.number for t in trials) >= total - 1
    assert not [t for t in trials if t.state.name == "RUNNING"]
