"""The tune stage queues the base config itself as trial 0 (the score the search must beat),
when the search space can express it; ``--config`` gives the base from a training config file."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from cellrobust.training.config import ArtefactRange
from cellrobust.training.tune import SearchSpace
from cellrobust.training.tune.space import DEFAULT_SPACE

from test_tune import SPACE, micro_base, tune_config

optuna = pytest.importorskip("optuna")

EXPRESSIBLE = {k: v for k, v in SPACE.items() if k != "dropout"}


def test_point_of_reproduces_the_base_config():
    base = micro_base()
    space = SearchSpace.from_mapping({**EXPRESSIBLE, "dihedral": {"type": "categorical",
                                                                  "choices": [True, False]}})
    values, reasons = space.point_of(base)
    assert reasons == [] and space.apply(base, values) == base
    assert values["lr"] == base.lr and values["width"] == base.model.width
    assert values["artefact:gaussian_noise"] == 30.0 and values["dihedral"] is True


@pytest.mark.parametrize("space, expected", [
    (DEFAULT_SPACE, "dropout: the base config uses per-level rates (the model default)"),
    ({"lr": {"type": "float", "low": 1e-2, "high": 1e-1}},
     "lr: the base value 0.001 lies outside"),
    ({"width": {"type": "int", "low": 2, "high": 8, "step": 3}}, "width: the base value 4"),
    ({"optimizer": {"type": "categorical", "choices": ["sgd"]}},
     "optimizer: the base value 'adam'"),
    ({"scale_spread": {"type": "float", "low": 0, "high": 1}}, "would change scale_range"),
])
def test_point_of_says_why_the_space_cannot_express_the_base(space, expected):
    values, reasons = SearchSpace.from_mapping(space).point_of(micro_base())
    assert values is None and any(expected in r for r in reasons), reasons


def test_tuned_artefact_ranges_keep_their_place_and_share():
    base = dataclasses.replace(micro_base(), artefacts=(
        ArtefactRange("illumination", 0.0, 300.0, p=0.5),
        ArtefactRange("gaussian_noise", 0.0, 30.0)))
    space = SearchSpace.from_mapping({"artefact:illumination": {"type": "float", "low": 0,
                                                                "high": 900}})
    tuned = space.apply(base, {"artefact:illumination": 600.0})
    assert tuned.artefacts == (ArtefactRange("illumination", 0.0, 600.0, p=0.5),
                               ArtefactRange("gaussian_noise", 0.0, 30.0))
    assert space.point_of(base) == ({"artefact:illumination": 300.0}, [])
    off = space.apply(base, {"artefact:illumination": 0.0})
    assert [a.name for a in off.artefacts] == ["gaussian_noise"]


@pytest.fixture(scope="module")
def baseline_study(tmp_path_factory):
    from test_tune import _one_thread, write_deepimagej

    from cellrobust.stages.tune import run

    data = write_deepimagej(tmp_path_factory.mktemp("dij-baseline"))
    out = tmp_path_factory.mktemp("tune-baseline") / "out"
    config = dataclasses.replace(tune_config(out, data, n_trials=3, pruner="none"),
                                 space=SearchSpace.from_mapping(EXPRESSIBLE))
    with _one_thread():
        run(config)
    return out, config


def test_trial_zero_is_the_base_config_and_is_reported(baseline_study):
    from cellrobust.training.tune.summary import baseline_trial

    out, config = baseline_study
    study = optuna.load_study(study_name="cellrobust-tune", storage=f"sqlite:///{out / 'study.db'}")
    trial = baseline_trial(study)
    assert trial.number == 0 and trial.state.name == "COMPLETE"
    assert trial.user_attrs["config"] == config.base.to_dict()
    assert trial.params == config.space.point_of(config.base)[0]
    assert [t.user_attrs.get("baseline", False) for t in study.trials] == [True, False, False]
    best = max((t for t in study.trials if t.value is not None), key=lambda t: t.value)
    text = (out / "tune.md").read_text()
    assert f"Baseline (the base config unchanged): trial 0, mpc = {trial.value:.4f}" in text
    assert f"differs by {best.value - trial.value:+.4f}" in text
    record = json.loads((out / "tune.json").read_text())
    assert record["config"]["baseline"]["queued"] is True
    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0].split(",").count("baseline") == 1 and ",True," in rows[1]


def test_resuming_does_not_queue_the_baseline_again(baseline_study):
    from test_tune import _one_thread

    from cellrobust.stages.tune import run

    out, config = baseline_study
    more = dataclasses.replace(config, search=dataclasses.replace(config.search, n_trials=1))
    with _one_thread():
        run(more)
    study = optuna.load_study(study_name="cellrobust-tune", storage=f"sqlite:///{out / 'study.db'}")
    assert [t.user_attrs.get("baseline", False) for t in study.trials] == [True] + [False] * 3


def test_a_space_that_cannot_express_the_base_says_so(tmp_path):
    from test_tune import _one_thread, write_deepimagej

    from cellrobust.stages.tune import run

    data = write_deepimagej(tmp_path / "dij")
    out = tmp_path / "out"
    with _one_thread():
        run(tune_config(out, data, n_trials=1))  # SPACE tunes one dropout rate
    text = (out / "tune.md").read_text()
    assert "No baseline trial: dropout: the base config uses per-level rates" in text


def test_cli_tune_takes_its_base_from_a_config_file(tmp_path):
    import yaml

    from test_tune import write_deepimagej

    from cellrobust.cli import main

    data = write_deepimagej(tmp_path / "dij")
    base = micro_base().to_dict() | {"lr": 0.002, "seed": 5}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "space.yaml").write_text(
        "optimizer: {type: categorical, choices: [adam, adamax]}\n")
    out = tmp_path / "out"
    before = torch.get_num_threads()
    try:
        code = main(["tune", "--data", str(data), "--out", str(out), "--config",
                     str(tmp_path / "base.yaml"), "--set", "epochs=1", "--space",
                     str(tmp_path / "space.yaml"), "--trials", "1", "--val-patches", "1",
                     "--val-patch-size", "32", "--levels", "1", "--threads", "1", "--quiet"])
    finally:
        torch.set_num_threads(before)
    assert code == 0
    study = optuna.load_study(study_name="cellrobust-tune", storage=f"sqlite:///{out / 'study.db'}")
    (trial,) = study.trials
    assert trial.user_attrs["baseline"] and trial.params == {"optimizer": "adam"}
    config = trial.user_attrs["config"]
    assert (config["lr"], config["seed"], config["epochs"]) == (0.002, 5, 1)


@pytest.mark.parametrize("args, expected", [
    (["--set", "epochz=1"], "unknown field(s) ['epochz']"),
    (["--set", "widht=4"], "unknown field(s) ['widht']"),
])
def test_cli_tune_config_file_with_a_bad_override_is_one_line(tmp_path, capsys, args, expected):
    import yaml

    from cellrobust.cli import main

    (tmp_path / "base.yaml").write_text(yaml.safe_dump(micro_base().to_dict()))
    code = main(["tune", "--out", str(tmp_path / "out"), "--config",
                 str(tmp_path / "base.yaml"), *args, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and expected in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_baseline_nobody_beats_is_reported_as_such():
    from cellrobust.training.tune.summary import markdown

    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"x": 0.0}, user_attrs={"baseline": True})
    values = iter([0.7, 0.6, 0.65])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), next(values))[1], n_trials=3)
    objective = {"score": "mpc", "metric": "jaccard", "artefacts": ["noise"], "levels": [3]}
    text = markdown(study, objective=objective, command="cellrobust train ...")
    assert ("No trial beat the baseline (the base config unchanged): trial 0, mpc = 0.7000; "
            "the best other trial, 2, scored 0.6500 (-0.0500).") in text
