"""One home for each rule: the same crops and metrics in evaluate and sweep, no hidden segmenter
cache, the CLI's presets and recipes are the library's, and the layering of the imports."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellrobust.metrics.evaluate import EvaluateConfig
from cellrobust.stages.evaluate import EvaluateStageConfig
from cellrobust.stages.evaluate import run as run_evaluate
from cellrobust.stages.sweep import SweepStageConfig
from cellrobust.stages.sweep import run as run_sweep_stage
from cellrobust.sweep import SweepConfig, run_cell
from cellrobust.table import COUNT_COLUMNS, threshold_columns

PSC = Path(__file__).resolve().parents[2] / "shared" / "data" / "psc"
SRC = Path(__file__).resolve().parents[1] / "src" / "cellrobust"
THRESHOLDS = (0.5, 0.7, 0.9)
needs_psc = pytest.mark.skipif(not PSC.is_dir(), reason="shared PSC data not present")


@needs_psc
@pytest.mark.parametrize("seed", [0, 7])
def test_evaluate_and_sweep_score_identical_crops_and_counts(tmp_path, seed):
    common = dict(data=PSC, split="validation", frames=2, patches=3, patch_size=96)
    run_evaluate(EvaluateStageConfig(out=tmp_path / "ev", model="dog_otsu", seed=seed,
                                     metrics=EvaluateConfig(thresholds=THRESHOLDS), **common))
    per_image = pd.read_csv(tmp_path / "ev" / "metrics_per_image.csv")
    sweep = SweepConfig(segmenters=("dog_otsu",), artefacts=("gaussian_noise",),
                        severities={"gaussian_noise": (0.0,)}, thresholds=THRESHOLDS,
                        seed=seed, patch_size=96)
    table = run_sweep_stage(SweepStageConfig(out=tmp_path / "sw", sweep=sweep, **common))
    clean = table[table["artefact"] == "none"].sort_values("sample").reset_index(drop=True)
    per_image = per_image.sort_values("sample").reset_index(drop=True)
    assert list(clean["sample"]) == list(per_image["sample"])
    assert len(clean) == 6 and clean["sample"].str.contains("/p").all()
    cols = [*COUNT_COLUMNS, *threshold_columns(THRESHOLDS)]
    pd.testing.assert_frame_equal(clean[cols].astype(float), per_image[cols].astype(float))


@needs_psc
def test_another_seed_cuts_other_crops(tmp_path):
    from cellrobust.stages._data import eval_patches, open_frames

    frames = open_frames(PSC, split="validation", n_frames=1)
    a = eval_patches(frames, n=3, size=96, seed=0)
    b = eval_patches(frames, n=3, size=96, seed=1)
    assert [p.meta["origin"] for p in a] != [p.meta["origin"] for p in b]
    again = eval_patches(frames, n=3, size=96, seed=0)
    assert [p.meta["origin"] for p in a] == [p.meta["origin"] for p in again]


def _checkpoint(path: Path, *, bias: float) -> None:
    import torch

    from cellrobust.models.checkpoint import save_checkpoint
    from cellrobust.models.unet import UNetConfig, build_unet

    config = UNetConfig(width=4, depth=2)
    model = build_unet(config)
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(bias)
    save_checkpoint(path, model, config)


def test_retrained_checkpoint_at_the_same_path_is_read_afresh(tmp_path):
    from cellrobust.data import Sample

    image = np.random.default_rng(0).integers(0, 255, (64, 64)).astype(np.uint8)
    labels = np.zeros((64, 64), np.int32)
    labels[20:40, 20:40] = 1
    samples = [Sample(image, labels, "s0")]
    ckpt = tmp_path / "run" / "best.pt"
    config = SweepConfig(segmenters=(f"unet={ckpt}",), artefacts=("gaussian_noise",),
                         severities={"gaussian_noise": (0.0,)}, thresholds=(0.5,))
    _checkpoint(ckpt, bias=-20.0)  # predicts background everywhere
    first = run_cell(config, samples, "none", 0)
    _checkpoint(ckpt, bias=20.0)  # retrained into the same file: foreground everywhere
    second = run_cell(config, samples, "none", 0)
    assert int(first["tp_px"].iloc[0]) == 0 and int(first["fp_px"].iloc[0]) == 0
    assert int(second["tp_px"].iloc[0]) == 400 and int(second["fp_px"].iloc[0]) == 64 * 64 - 400


def test_cli_presets_and_recipes_are_the_library_s():
    from cellrobust.cli import build_parser
    from cellrobust.stages import study
    from cellrobust.training.config import RECIPES

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "stage").choices
    train_recipe = next(a for a in sub["train"]._actions if a.dest == "recipe")
    assert set(train_recipe.choices) == set(RECIPES)
    assert study.RECIPES is RECIPES
    preset_help = next(a for a in sub["study"]._actions if a.dest == "preset").help
    assert all(name in preset_help for name in study.PRESETS)
    for name in study.PRESETS:
        args = parser.parse_args(["study", "--preset", name, "--data", str(SRC)])
        from cellrobust.cli.study import study_config

        assert study_config(args).preset == name


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("cellrobust")}


#: package -> the cellrobust packages it must never import (lower floors stay pure).
FORBIDDEN = {
    "metrics": ("data", "models", "segmenters", "training", "sweep", "report", "stages", "cli"),
    "models": ("data", "segmenters", "sweep", "report", "stages", "cli", "training"),
    "artefacts": ("segmenters", "sweep", "report", "stages", "cli", "training", "models"),
    "segmenters": ("sweep", "report", "stages", "cli", "training"),
    "sweep": ("report", "stages", "cli"),
    "report": ("stages", "cli"),
    "diagnose": ("data", "models", "segmenters", "training", "sweep", "report", "stages", "cli",
                 "metrics"),
    "data": ("artefacts", "models", "segmenters", "sweep", "report", "stages", "cli",
             "metrics", "training"),
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_import(package):
    bad = []
    for file in sorted((SRC / package).rglob("*.py")):
        for name in _imports(file):
            top = name.split(".")[1] if "." in name else ""
            if top in FORBIDDEN[package]:
                bad.append(f"{file.relative_to(SRC)} imports {name}")
    assert not bad, "\n".join(bad)


def test_no_global_backend_switch_thread_or_malloc_setting_in_the_library():
    offenders = []
    for file in sorted(SRC.rglob("*.py")):
        rel = file.relative_to(SRC).as_posix()
        text = file.read_text()
        if "matplotlib.use(" in text:
            offenders.append(f"{rel}: matplotlib.use")
        application = rel.startswith(("stages/", "cli/", "training/", "sweep/runner"))
        for call, home in (("set_num_threads(", "_threads.py"), ("setNumThreads(", "_threads.py"),
                           ("set_compute_threads(", "_threads.py"),
                           ("mallopt", "_allocator.py"),
                           ("retain_freed_memory(", "_allocator.py")):
            if call in text and not application and rel != home:  # the one home
                offenders.append(f"{rel}: {call}")
    assert not offenders, offenders


def test_study_json_records_the_data_actually_used(tmp_path):
    from cellrobust.stages.study import StudyConfig
    from cellrobust.stages.study_steps import data_record, load_data

    config = StudyConfig(preset="quick", n_train_frames=2, n_val_frames=1, n_eval_frames=1,
                         patches_per_frame=2, patch_size=64, recipes=("original",),
                         baselines=("otsu",), artefacts=("gaussian_noise",))
    record = data_record(config, load_data(config))
    assert record["evaluation"]["frames"] == 1 and record["evaluation"]["patches"] == 2
    assert record["training"]["frames"] == 2 and record["validation"]["frames"] == 1
    assert "simulator" in record["training"]["path"]
    json.dumps(record)
