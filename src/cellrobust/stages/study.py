"""The robustness study: data -> train recipes (or given models) -> sweep -> scores -> report.

Presets are data (:data:`PRESETS`); every value can be overridden, and the resolved
configuration is written next to the results (``study.json``). Re-running the same study into
the same folder reuses trained models and finished sweep cells.

>>> from cellrobust.stages.study import resolve_study, run_study
>>> config = resolve_study("quick", seed=1)                  # doctest: +SKIP
>>> report = run_study(config, "results/quick")              # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cellrobust import __version__
from cellrobust._io import write_json
from cellrobust._validation import InputError, check_choice, collect_errors
from cellrobust.table import DEFAULT_THRESHOLDS
from cellrobust.training.config import RECIPES

__all__ = ["PRESETS", "StudyConfig", "deep_merge", "load_study_file", "preset_names",
           "resolve_study", "run_study"]

#: What a study folder holds (recorded as cellrobust's before the study starts).
STUDY_FILES = ("study.json", "models", "sweep.json", "cells", "results.parquet", "results.csv",
               "figures", "report.html", "summary.md", "scores.csv", "curves.csv", "paired.csv",
               "trusted.csv", "strategies.csv")

#: How the classical baselines learn which side of the intensity range cells are on:
#: ``auto`` decides from the training masks (else the judged images' statistics).
POLARITIES = ("auto", "bright", "dark")

#: Study presets. ``train`` holds overrides for ``cellrobust.training.recipe_config``.
PRESETS: dict[str, dict] = {
    "quick": dict(
        description="embedded simulated data, reduced budgets (<= 10 min on 2 CPU cores)",
        data=None, n_train_frames=8, n_val_frames=1, n_eval_frames=2, patches_per_frame=6,
        patch_size=128, recipes=("original", "augmented", "artefact"),
        train=dict(epochs=16, patches_per_epoch=128, batch_size=8, patch_size=64, workers=0,
                   patience=16, loss="dice_bce", lr=2e-3, model=dict(width=8, batchnorm=True)),
        # robust training covers the evaluated ladders (illumination to 390 gray levels,
        # noise sigma to 95), as the studies' robust model covered their test ranges
        recipe_train={"artefact": dict(artefacts=(("illumination", 0.0, 400.0),
                                                  ("gaussian_noise", 0.0, 100.0)))},
        baselines=("dog_otsu", "nlm_otsu"),
        artefacts=("illumination", "gaussian_noise", "zoom"), severities="ladder",
        thresholds=DEFAULT_THRESHOLDS, n_boot=300,
    ),
    "paper": dict(
        description="EPFL protocol on PhC-C2DL-PSC: 6 patches/frame, study grids (41 steps; "
                    "cell size and patch zoom 22 values)",
        data="required", n_train_frames=None, n_val_frames=None, n_eval_frames=None,
        patches_per_frame=6, patch_size=256, recipes=("original", "augmented", "artefact"),
        train=dict(), baselines=("dog_otsu", "nlm_otsu"),
        artefacts=("illumination", "gaussian_noise", "cell_size", "zoom"), severities="study",
        thresholds=DEFAULT_THRESHOLDS, n_boot=1000,
    ),
    "nma": dict(
        description="Neuromatch protocol: speckle noise, the nma recipe, AP vs IoU 0.5:0.1:0.9",
        data=None, n_train_frames=None, n_val_frames=None, n_eval_frames=None,
        patches_per_frame=6, patch_size=256, recipes=("original", "nma"), train=dict(),
        baselines=("dog_otsu",), artefacts=("speckle",), severities="ladder",
        thresholds=DEFAULT_THRESHOLDS, n_boot=1000,
    ),
    "full": dict(
        description="every registered artefact on its five-level ladder",
        data=None, n_train_frames=None, n_val_frames=None, n_eval_frames=None,
        patches_per_frame=6, patch_size=256, recipes=("original", "augmented", "artefact"),
        train=dict(), baselines=("dog_otsu", "nlm_otsu"), artefacts="all",
        severities="ladder", thresholds=(0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95),
        n_boot=1000,
    ),
}


def preset_names() -> list[str]:
    return list(PRESETS)


@dataclass(frozen=True)
class StudyConfig:
    """A resolved study (see :data:`PRESETS`; fields are validated together).

    ``train`` overrides every recipe's ``TrainConfig``; ``recipe_train`` maps a recipe to
    overrides for it alone (applied last). ``data`` None = the embedded simulator; it trains
    and validates the recipes, and is judged too unless ``eval_data`` names the data set to
    judge on (all its annotated frames unless ``n_eval_frames``). ``*_frames`` None = all
    frames (simulator: its default split sizes). ``models`` are extra segmenters (any spec of
    :mod:`cellrobust.segmenters.spec`) judged beside the trained ``recipes``; ``recipes=()``
    skips training. :func:`load_study_file` reads one back from a run's ``study.json``.
    """

    preset: str = "quick"
    description: str = ""
    data: str | None = None
    eval_data: str | None = None
    n_train_frames: int | None = None
    n_val_frames: int | None = None
    n_eval_frames: int | None = None
    patches_per_frame: int = 6
    patch_size: int = 256
    recipes: tuple[str, ...] = ()
    train: Mapping[str, object] = field(default_factory=dict)
    recipe_train: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    baselines: tuple[str, ...] = ("dog_otsu",)
    artefacts: tuple[str, ...] | str = ()
    severities: object = "ladder"
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    n_boot: int = 1000
    metric: str = "jaccard"
    reference: str = "dog_otsu"
    polarity: str = "auto"
    dog_sigma: float | str = "auto"
    seed: int = 0
    workers: int | str = 1
    scheduler: str | None = None
    batch_size: int = 4
    figure_formats: tuple[str, ...] = ("png", "svg")

    def __post_init__(self) -> None:
        from cellrobust import artefacts
        from cellrobust.segmenters import BASELINES

        arts = tuple(artefacts.names()) if self.artefacts == "all" else tuple(self.artefacts)
        object.__setattr__(self, "artefacts", arts)
        for name in ("recipes", "models", "baselines", "thresholds", "figure_formats"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.severities, Mapping):  # e.g. read back from study.json (lists)
            object.__setattr__(self, "severities",
                               {k: tuple(v) for k, v in self.severities.items()})
        errors = []
        errors += _unknown("artefacts", arts, artefacts.names())
        errors += _unknown("recipes", self.recipes, RECIPES)
        errors += _unknown("baselines", self.baselines, BASELINES)
        if not arts:
            errors.append("artefacts: empty selection")
        if not (self.recipes or self.models or self.baselines):
            errors.append("no segmenter selected: give recipes, models or baselines")
        if self.polarity not in POLARITIES:
            errors.append(f"polarity: expected one of {', '.join(POLARITIES)}, "
                          f"got {self.polarity!r}")
        if self.dog_sigma != "auto" and not (isinstance(self.dog_sigma, (int, float))
                                             and not isinstance(self.dog_sigma, bool)
                                             and 0 < self.dog_sigma < 1e3):
            errors.append(f"dog_sigma: expected 'auto' or a positive number of pixels, "
                          f"got {self.dog_sigma!r}")
        if self.data == "required" and not (self.eval_data and not self.recipes):
            errors.append(f"data: the {self.preset!r} preset needs a data set path")
        from cellrobust.sweep.runner import workers_problem

        if workers_problem(self.workers):
            errors.append(workers_problem(self.workers))
        for name in ("patches_per_frame", "patch_size", "n_boot", "batch_size"):
            if int(getattr(self, name)) < (0 if name == "n_boot" else 1):
                errors.append(f"{name}: expected a positive integer, got {getattr(self, name)}")
        collect_errors(errors, "study configuration")


def _unknown(name: str, values, valid) -> list[str]:
    valid = list(valid)
    bad = [v for v in values if v not in valid]
    return [f"{name}: unknown {bad}; valid values are: {', '.join(valid)}"] if bad else []


def resolve_study(preset: str = "quick", **overrides) -> StudyConfig:
    """A preset with ``overrides`` applied (``None`` values are ignored).

    Raises
    ------
    InputError
        Unknown preset or override names (listing the valid ones), or invalid values.
    """
    check_choice("preset", preset, PRESETS)
    fields_ = {f.name for f in dataclasses.fields(StudyConfig)}
    unknown = sorted(set(overrides) - fields_)
    if unknown:
        raise InputError(f"overrides: unknown {unknown}; valid names are: {sorted(fields_)}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    for key in ("train", "recipe_train"):  # merged into the preset's, not replacing it
        if overrides.get(key):
            values[key] = deep_merge(PRESETS[preset].get(key, {}), overrides[key])
    if values.get("data") == "required" and overrides.get("data"):
        values["data"] = overrides["data"]
    judges_data = not values["recipes"] and values.get("data") not in (None, "required")
    if (values.get("eval_data") or judges_data) and overrides.get("n_eval_frames") is None:
        values["n_eval_frames"] = None  # an evaluation set is judged whole unless asked
    if values.get("data") == "required" and values.get("eval_data") and not values["recipes"]:
        values["data"] = None  # nothing to train: the evaluation set is all the study needs
    return StudyConfig(preset=preset, **values)


def deep_merge(base: Mapping, update: Mapping) -> dict:
    """``base`` with ``update`` applied; nested mappings are merged key by key."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_study_file(path: str | Path) -> tuple[str | None, dict]:
    """(preset, overrides) from a study file: the ``study.json`` a run wrote next to its results
    (re-running it reproduces that run) or a YAML/JSON mapping of :class:`StudyConfig` fields.

    Raises
    ------
    InputError
        Missing or unparsable file, not a mapping, or unknown field names (valid ones listed).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"study file {path} not found; give a study.json written by a run or "
                         "a YAML/JSON file of study fields")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0]
        raise InputError(f"study file {path} is not valid UTF-8 YAML/JSON ({reason})") from None
    if isinstance(data, Mapping) and isinstance(data.get("config"), Mapping):
        data = data["config"]  # a study.json: the resolved configuration of a run
    if not isinstance(data, Mapping):
        raise InputError(f"study file {path} must hold a mapping of study fields, "
                         f"found {type(data).__name__}")
    fields_ = {f.name for f in dataclasses.fields(StudyConfig)}
    unknown = sorted(set(data) - fields_)
    if unknown:
        raise InputError(f"study file {path}: unknown fields {unknown}; valid names are: "
                         f"{sorted(fields_)}")
    data = dict(data)
    data.pop("description", None)
    return data.pop("preset", None), data


def describe(config: StudyConfig) -> dict:
    """What was run: configuration, versions, machine."""
    import numpy
    import torch

    return {"preset": config.preset, "description": config.description,
            "data": config.data or "embedded simulator (cellrobust.data.synthetic)",
            "eval_data": config.eval_data, "seed": config.seed, "cellrobust": __version__,
            "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version(), "machine": platform.platform(),
            "config": dataclasses.asdict(config)}


def run_study(
    config: StudyConfig,
    out_dir: str | Path,
    *,
    progress: Callable[[float, str], None] | None = None,
    set_total: Callable[[float], None] | None = None,
    overwrite: bool = False,
    allow_code: bool = False,
) -> Path:
    """Run the whole study into ``out_dir``; return the HTML report path.

    Everything is validated (data, patches, every given model and baseline on the evaluation
    images) before anything is written; ``study.json`` is written atomically once validation
    passed and again, complete, before the report. ``set_total(units)`` is called once with
    the amount of work and ``progress(units, what)`` as it is done (one unit per sweep cell,
    training weighted by its steps). ``overwrite`` replaces a different study's results in
    ``out_dir``; ``allow_code`` permits ``py:`` segmenters (never implied by a study file).
    """
    from cellrobust._guard import check_output
    from cellrobust.stages import study_steps as steps
    from cellrobust.stages._outputs import guarded_output
    from cellrobust.stages._record import model_records

    out = Path(out_dir)
    inputs = (config.data, config.eval_data)
    check_output(out, inputs=[p for p in inputs if p], overwrite=overwrite, owner="study",
                 reuse=True)  # before any work; written into only once everything validated
    started = time.time()
    data = steps.load_data(config)
    baselines = steps.baseline_settings(config, data)
    sweep_config = steps.sweep_config(config, models={r: "(to train)" for r in config.recipes},
                                      baselines=baselines)
    plan = steps.plan(config, sweep_config, data)
    steps.preflight_eval(config, data["eval"], data["eval_frames"], allow_code=allow_code,
                         baselines=baselines)
    info = {**describe(config), "data_used": steps.data_record(config, data),
            "baselines": baselines}
    info["description"] = _description(config, info["data_used"])
    with guarded_output(out, owner="study", inputs=inputs, overwrite=overwrite,
                        expected=STUDY_FILES):
        write_json(out / "study.json", info)
        if set_total:
            set_total(plan["total"])
        tick = progress or (lambda units, what: None)
        models = steps.train_recipes(config, data, out / "models", tick=tick,
                                     unit=plan["train_unit"])
        sweep_config = steps.sweep_config(config, models=models, baselines=baselines)
        steps.run_sweep(config, sweep_config, data["eval"], out, tick=tick,
                        frames=data["eval_frames"], weights=plan["cell_weights"],
                        overwrite=overwrite, allow_code=allow_code)
        segmenters = steps.image_figures(config, sweep_config, data["eval"], out,
                                         allow_code=allow_code)
        info["seconds_before_report"] = round(time.time() - started, 1)
        info["models"] = model_records(segmenters,
                                       {s.name: s.spec for s in sweep_config.segmenters})
        info["images"] = {"train frames": len(data["train"]),
                          "validation frames": len(data["val"]),
                          "evaluation patches": len(data["eval"])}
        write_json(out / "study.json", info)
        report = steps.report(config, out)
        tick(1, "report")
    return report


def _description(config: StudyConfig, used: dict) -> str:
    """The preset's description, with the data actually used (never 'simulated' for real data)."""
    def frames(n: int) -> str:
        return f"{n} frame" if n == 1 else f"{n} frames"

    judged = used["evaluation"]
    text = f"judged on {judged['path']} ({judged['format']}, {frames(judged['frames'])})"
    for key, verb in (("training", "trained on"), ("calibration", "baselines calibrated on")):
        if key in used:
            text = f"{verb} {used[key]['path']} ({frames(used[key]['frames'])}); " + text
    return f"{config.preset} preset: {text}"
