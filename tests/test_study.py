"""The study pipeline: presets, bad input before work, a micro end-to-end run, CLI stages."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cellrobust import InputError
from cellrobust.cli import main
from cellrobust.stages.study import PRESETS, resolve_study, run_study

MICRO = dict(recipes=("original", "artefact"), baselines=("dog_otsu",),
             artefacts=("gaussian_noise",), severities={"gaussian_noise": (0.0, 60.0)},
             n_train_frames=1, n_val_frames=1, n_eval_frames=1, patches_per_frame=2,
             patch_size=64, n_boot=20, figure_formats=("png",),
             train=dict(epochs=1, patches_per_epoch=4, batch_size=4, patch_size=64, workers=0),
             # one recipe loads its patches in a worker process, as the presets do: the study
             # has run OpenCV (baselines) before training, which deadlocked forked workers
             recipe_train={"artefact": dict(workers=1)})


def test_presets_resolve_and_override():
    assert set(PRESETS) == {"quick", "paper", "nma", "full"}
    quick = resolve_study("quick", seed=3, artefacts=("speckle",))
    assert quick.seed == 3 and quick.artefacts == ("speckle",)
    assert quick.train["epochs"] == PRESETS["quick"]["train"]["epochs"]
    assert resolve_study("quick", train={"epochs": 2}).train["batch_size"] == 8
    from cellrobust import artefacts

    assert resolve_study("full").artefacts == tuple(artefacts.names())
    paper = resolve_study("paper", data="/some/psc")
    assert paper.severities == "study" and paper.patch_size == 256
    assert "speckle" in resolve_study("nma").artefacts and "nma" in resolve_study("nma").recipes


def test_bad_input_lists_valid_names():
    with pytest.raises(InputError, match="did you mean 'quick'.*quick, paper, nma, full"):
        resolve_study("quik")
    with pytest.raises(InputError, match="artefacts: unknown.*gaussian_noise"):
        resolve_study("quick", artefacts=("noise",))
    with pytest.raises(InputError, match="baselines: unknown.*dog_otsu"):
        resolve_study("quick", baselines=("dog",))
    with pytest.raises(InputError, match="needs a data set path"):
        resolve_study("paper")
    with pytest.raises(InputError, match="no segmenter selected"):
        resolve_study("quick", recipes=(), baselines=())
    with pytest.raises(InputError, match="unknown.*'epoch'"):
        resolve_study("quick", epoch=3)


def test_cli_reports_bad_input_before_work(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["study", "--preset", "quik", "--out", str(out)]) == 2
    assert main(["study", "--artefacts", "nois", "--out", str(out)]) == 2
    assert main(["study", "--recipes", "none", "--baselines", "", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "valid values are" in err and "no segmenter selected" in err
    assert not out.exists()


def test_training_override_checked_before_training(tmp_path):
    config = resolve_study("quick", **{**MICRO, "train": dict(patch_size=60)})
    with pytest.raises(InputError, match="patch_size"):
        run_study(config, tmp_path)
    assert not (tmp_path / "models").exists()


def test_micro_study_end_to_end_and_resume(tmp_path):
    config = resolve_study("quick", **MICRO)
    calls = []
    report = run_study(config, tmp_path, progress=lambda u, w: calls.append((u, w)),
                       set_total=lambda t: calls.append(("total", t)))
    assert report.is_file() and (tmp_path / "summary.md").is_file()
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert set(table["segmenter"]) == {"original", "artefact", "dog_otsu"}
    assert len(table) == 3 * (2 + 1) * 2  # segmenters x (severities + raw clean) x patches
    info = json.loads((tmp_path / "study.json").read_text())
    assert info["preset"] == "quick" and info["config"]["seed"] == 0
    assert info["data_used"]["evaluation"]["patches"] == 2
    assert set(info["models"]) == {"original", "artefact", "dog_otsu"}
    assert info["models"]["original"]["kind"] == "unet"
    assert len(info["models"]["original"]["sha256"]) == 64
    assert info["baselines"]["polarity"] == "bright"
    assert "training masks" in info["baselines"]["sigma_from"]
    for name in ("gallery", "examples", "curves_gaussian_noise", "training_curves"):
        assert (tmp_path / "figures" / f"{name}.png").is_file(), name
    total = calls[0][1]
    done = sum(u for u, _ in calls[1:])
    assert calls[0][0] == "total" and done == pytest.approx(total, rel=0.02)
    best = tmp_path / "models" / "original" / "best.pt"
    mtime = best.stat().st_mtime_ns
    run_study(config, tmp_path)  # resumes: models and cells are reused
    assert best.stat().st_mtime_ns == mtime
    again = pd.read_parquet(tmp_path / "results.parquet")
    pd.testing.assert_frame_equal(again, table)


def test_sweep_cli_on_simulated_data(tmp_path, capsys):
    args = ["sweep", "--segmenter", "dog_otsu", "--segmenter", "plain=otsu", "--artefacts",
            "illumination", "--frames", "1", "--patches", "2", "--patch-size", "64",
            "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    assert "results: 28 rows" in capsys.readouterr().out  # 2 segmenters x (6 levels + clean) x 2
    table = pd.read_csv(tmp_path / "results.csv")
    assert set(table["segmenter"]) == {"dog_otsu", "plain"}
    record = json.loads((tmp_path / "config.json").read_text())
    assert record["config"]["execution"]["workers"] == "auto"
    assert record["worker_processes"] == 1  # a sweep of seconds starts no worker process
    assert main([*args[:-3], "--segmenter", "dog_otsx", "--out", str(tmp_path / "b")]) == 2
    assert "dog_otsu" in capsys.readouterr().err


def test_sweep_cli_cuts_cell_size_windows_from_the_frames(tmp_path, capsys):
    args = ["sweep", "--segmenter", "otsu", "--artefacts", "cell_size", "--frames", "1",
            "--patches", "2", "--patch-size", "128", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    capsys.readouterr()
    table = pd.read_parquet(tmp_path / "results.parquet")
    from cellrobust.artefacts.geometry import patches_per_frame

    windows = table[table["artefact"] == "cell_size"]
    per_level = windows.groupby("severity")["sample"].nunique()
    expected = {z: patches_per_frame((576, 720), z, size=128) for z in per_level.index}
    assert per_level.to_dict() == expected  # 25 windows at zoom 1 ... 80 at zoom 2


@pytest.mark.slow
def test_quick_preset_shows_main_effect(tmp_path):
    """The full quick preset (minutes): artefact-trained U-Net beats the original."""
    report = run_study(resolve_study("quick"), tmp_path)
    from cellrobust import robustness as rb

    table = pd.read_parquet(tmp_path / "results.parquet")
    d = rb.paired_differences(table, "artefact", "original", n_boot=500)
    for art in ("illumination", "gaussian_noise"):
        strong = d[(d["artefact"] == art) & (d["severity_index"] >= 4)]
        assert (strong["diff"] > 0).all(), strong
    assert report.is_file()


def _parsed(*argv):
    from cellrobust.cli import build_parser
    from cellrobust.cli.study import study_config

    return study_config(build_parser().parse_args(["study", *argv]))


def test_study_json_reproduces_the_resolved_config(tmp_path):
    from cellrobust._io import write_json
    from cellrobust.stages.study import describe

    config = resolve_study("nma", seed=5, n_eval_frames=2, train={"lr": 3e-4},
                           severities={"speckle": (0.0, 0.05)})
    write_json(tmp_path / "study.json", describe(config))
    assert _parsed("--config", str(tmp_path / "study.json")) == config
    again = _parsed("--config", str(tmp_path / "study.json"), "--seed", "0", "--patches", "2")
    assert again.seed == 0 and again.patches_per_frame == 2 and again.train == config.train
    from cellrobust.stages.study_steps import _train_config

    quick = resolve_study("quick")  # nested tuples come back as lists: same training configs
    write_json(tmp_path / "quick.json", describe(quick))
    back = _parsed("--config", str(tmp_path / "quick.json"))
    assert all(_train_config(back, r) == _train_config(quick, r) for r in quick.recipes)


def test_set_overrides_any_field_including_nested_ones():
    config = _parsed("--set", "train.model.width=16", "--set", "train.lr=5e-4",
                     "--set", "n_val_frames=2", "--set", "figure_formats=[png]",
                     "--set", "recipe_train.artefact.epochs=3", "--epochs", "4")
    assert config.train["model"] == {"width": 16, "batchnorm": True}  # merged, not replaced
    assert config.train["lr"] == 5e-4 and config.train["epochs"] == 4
    assert config.n_val_frames == 2 and config.figure_formats == ("png",)
    assert config.recipe_train["artefact"]["epochs"] == 3
    preset_ranges = PRESETS["quick"]["recipe_train"]["artefact"]["artefacts"]
    assert config.recipe_train["artefact"]["artefacts"] == preset_ranges  # kept beside epochs


def test_bad_config_file_and_assignments_are_one_line_usage_errors(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("n_eval_frame: 2\n")
    for argv in (["--config", str(tmp_path / "missing.json")],
                 ["--config", str(tmp_path / "bad.yaml")],
                 ["--set", "train.lr"], ["--set", "bogus=1"]):
        assert main(["study", *argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("cellrobust: error:") for line in err)
    assert "not found" in err[0] and "n_eval_frame" in err[1] and "n_eval_frames" in err[1]
    assert "KEY=VALUE" in err[2] and "bogus" in err[3]
    assert not (tmp_path / "r").exists()


def test_paired_differences_compare_the_study_robust_model():
    from cellrobust.stages.study_steps import robust_pair

    assert robust_pair(resolve_study("nma")) == ("nma", "original")
    assert robust_pair(resolve_study("quick")) == ("artefact", "original")
    given = resolve_study("quick", recipes=(), models=("original=a.pt", "augmented=b.pt"))
    assert robust_pair(given) == ("augmented", "original")


def test_progress_bar_never_drifts_past_its_total():
    # hundreds of small updates used to be rounded one by one and overshot the total
    from cellrobust.cli._progress import Progress as _Progress

    with _Progress(False, "t") as bar:
        bar.set_total(50.0)
        for _ in range(200):
            bar.update(0.26, "sweep")
            assert bar.bar.n <= bar.bar.total
        assert bar.bar.n == pytest.approx(50.0)
    with _Progress(False, "t") as bar:
        bar.set_total(10.0)
        for _ in range(100):
            bar.update(0.049)
        assert bar.bar.n == pytest.approx(4.9)
