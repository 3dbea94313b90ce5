"""The steps of :func:`cellrobust.stages.study.run_study`, one short function each."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cellrobust._io import write_json
from cellrobust._validation import DataError, InputError

__all__ = [
    "data_record",
    "image_figures",
    "load_data",
    "plan",
    "preflight_eval",
    "report",
    "robust_pair",
    "run_sweep",
    "sweep_config",
    "train_recipes",
]


def _open(path, split):
    from cellrobust.stages._data import open_frames

    try:
        return open_frames(path, split=split)
    except (DataError, InputError):
        return []


def _simulated(config) -> dict[str, list]:
    from cellrobust.stages._data import open_frames

    def sim(split, n):
        return open_frames(None, split=split, n_frames=n, seed=config.seed)

    return {"train": sim("train", config.n_train_frames),
            "val": sim("validation", config.n_val_frames),
            "eval": sim("test", config.n_eval_frames)}


def _train_val(path, *, trains: bool = True) -> tuple[list, list, list]:
    """(train, validation, held-out) frames of a data set: its own splits when it has them
    (held-out = ``test``, else ``validation``), else a seeded split of all its frames, or,
    when nothing ``trains``, all of its frames held out (none kept back for training)."""
    train, val, test = (_open(path, s) for s in ("train", "validation", "test"))
    if not train and not (val or test):
        from cellrobust.data import open_dataset

        train = list(open_dataset(path))  # a single unsplit data set
        if not trains:
            return [], [], train
    held_out = test or val
    if held_out is val:
        val = []
    if not held_out:
        k = max(1, len(train) // 5)
        train, held_out = train[:-k], train[-k:]
    if not val:
        k = max(1, len(train) // 10)
        train, val = train[:-k], train[-k:]
    return train, val, held_out


def _frames(config) -> dict[str, list]:
    """Training, validation and evaluation frames. With ``eval_data`` the models are judged on
    all annotated frames of that data set and ``data`` (or the simulator) only trains."""
    from cellrobust.stages._data import open_frames, subset, warn_small

    if config.data is None:
        frames = _simulated(config)
    else:
        trains = bool(config.recipes) or config.eval_data is not None  # masks train or calibrate
        train, val, held_out = _train_val(config.data, trains=trains)
        frames = {"train": subset(train, config.n_train_frames),
                  "val": subset(val, config.n_val_frames),
                  "eval": subset(held_out, config.n_eval_frames)}
    if config.eval_data is not None:
        frames["eval"] = open_frames(config.eval_data, n_frames=config.n_eval_frames)
        warn_small(frames["eval"], wanted=config.n_eval_frames, role="eval_data")
    empty = [k for k, v in frames.items() if not v and (k == "eval" or config.recipes)]
    if empty:
        raise DataError(f"{config.data}: no frames for {empty}; the data set is too small")
    return frames


def load_data(config) -> dict[str, list]:
    """Frames for training/validation, the evaluation patches (the one seeded crop stream of
    :func:`cellrobust.stages._data.eval_patches`) and the evaluation frames they came from
    (``eval_frames``, for frame-level artefacts)."""
    from cellrobust.stages._data import eval_patches

    frames = _frames(config)
    patches = eval_patches(frames["eval"], n=config.patches_per_frame, size=config.patch_size,
                           seed=config.seed)
    return {"train": frames["train"], "val": frames["val"], "eval": patches,
            "eval_frames": frames["eval"]}


def data_record(config, data) -> dict:
    """Which data trained, validated and was judged: paths, formats, frame counts, names."""
    from cellrobust.stages._data import describe_frames

    judged = config.eval_data if config.eval_data is not None else config.data
    out = {"evaluation": {**describe_frames(data["eval_frames"], source=judged, role="judged"),
                          "patches": len(data["eval"]), "patch_size": config.patch_size}}
    if config.recipes:
        out["training"] = describe_frames(data["train"], source=config.data, role="trained")
        out["validation"] = describe_frames(data["val"], source=config.data, role="validated")
    elif config.data is not None and config.eval_data is not None and data["train"]:
        # nothing trains, but the baselines' polarity and DoG sigma come from these masks
        out["calibration"] = describe_frames(data["train"], source=config.data,
                                             role="calibrated the baselines")
    return out


def _train_config(config, recipe: str):
    from cellrobust.training import recipe_config

    overrides = {"seed": config.seed, "patch_size": config.patch_size, **dict(config.train),
                 **dict(config.recipe_train.get(recipe, {}))}
    return recipe_config(recipe, **overrides)


def baseline_settings(config, data) -> dict:
    """Polarity and DoG σ of the classical baselines, decided from data unless given, with the
    evidence: from the training frames' masks when the study has them, else the judged frames
    (their images' statistics for polarity; σ stays the study's 3.5 px without training masks,
    so nothing is tuned on the images being judged)."""
    from cellrobust.data import detect_polarity
    from cellrobust.segmenters import ClassicalConfig, calibrate_dog_sigma

    source = data["train"] or []
    out = {}
    if config.polarity == "auto":
        frames = source or [f.with_(labels=None) for f in data["eval_frames"]]
        out["polarity"], out["polarity_evidence"] = detect_polarity(frames)
    else:
        out["polarity"] = config.polarity
    if config.dog_sigma != "auto":
        out["sigma_low"], out["sigma_from"] = float(config.dog_sigma), "given"
    elif source:
        out["sigma_low"] = calibrate_dog_sigma(f.labels for f in source)
        out["sigma_from"] = f"median cell diameter of {len(source)} training masks"
    else:
        out["sigma_low"], out["sigma_from"] = ClassicalConfig().sigma_low, "default (PSC)"
    return out


def _baseline_spec(name: str, settings: dict | None) -> str:
    if not settings:
        return name
    options = [f"polarity={settings['polarity']}"]
    if name == "dog_otsu":
        options.append(f"sigma_low={settings['sigma_low']:.4g}")
    return f"{name}={','.join([name, *options])}"


def sweep_config(config, *, models: dict, baselines: dict | None = None):
    """The :class:`~cellrobust.sweep.SweepConfig` of the study (trained + given + baselines,
    the baselines with the polarity and σ of :func:`baseline_settings`)."""
    from cellrobust.sweep import SweepConfig

    segs = [f"{name}={path}" for name, path in models.items()]
    segs += list(config.models) + [_baseline_spec(b, baselines) for b in config.baselines]
    return SweepConfig(segmenters=tuple(segs), artefacts=config.artefacts,
                       severities=config.severities, thresholds=config.thresholds,
                       seed=config.seed, batch_size=config.batch_size,
                       patch_size=config.patch_size)


def _train_steps(tc, n_frames: int) -> float:
    """Optimiser steps of one recipe's run (no early stop) on ``n_frames`` training frames."""
    return tc.epochs * (tc.patches_per_epoch or tc.patches_per_frame * n_frames) / tc.batch_size


def _cell_images(sweep, data) -> dict:
    """Images per sweep cell: the patches, or the windows a frame-level artefact cuts."""
    from cellrobust import artefacts
    from cellrobust.artefacts.geometry import patches_per_frame
    from cellrobust.sweep import cell_list, resolve_severities
    from cellrobust.table import CLEAN

    values = resolve_severities(sweep)
    out = {}
    for art, idx in cell_list(sweep):
        if art == CLEAN or artefacts.get(art).frame_kernel is None:
            out[(art, idx)] = len(data["eval"])
        else:
            out[(art, idx)] = sum(patches_per_frame(f.shape, values[art][idx],
                                                    size=sweep.patch_size)
                                  for f in data["eval_frames"])
    return out


def plan(config, sweep, data) -> dict:
    """Work units for the progress bar, 1 unit = segmenting the evaluation patches once by
    every segmenter (a patch-level sweep cell). A frame-level cell weighs its windows / the
    patches; a training step its pixels x passes relative to one U-Net inference of the
    evaluation patches (forward + backward ~ 3 forwards), shared among the segmenters."""
    n_eval = max(1, len(data["eval"]))
    weights = {c: n / n_eval for c, n in _cell_images(sweep, data).items()}
    unit, steps = 0.0, 0.0
    if config.recipes:
        tc = _train_config(config, config.recipes[0])
        n_segs = max(1, len(sweep.segmenters))
        unit = 3 * tc.batch_size * tc.patch_size ** 2 / (n_segs * n_eval * config.patch_size ** 2)
        steps = _train_steps(tc, len(data["train"]))
    return {"total": sum(weights.values()) + 1 + unit * steps * len(config.recipes),
            "train_unit": unit, "cells": len(weights), "cell_weights": weights}


def preflight_eval(config, patches, frames=None, *, allow_code: bool = False,
                   baselines: dict | None = None) -> None:
    """Check given models and baselines on the evaluation images before training anything."""
    from cellrobust.sweep import SweepConfig, preflight

    segs = tuple(config.models) + tuple(_baseline_spec(b, baselines) for b in config.baselines)
    for recipe in config.recipes:
        _train_config(config, recipe)  # validates the training overrides now
    if segs:
        preflight(SweepConfig(segmenters=segs, artefacts=config.artefacts,
                              severities=config.severities, thresholds=config.thresholds,
                              patch_size=config.patch_size),
                  patches, frames, allow_code=allow_code)


def train_recipes(config, data, folder: Path, *, tick: Callable, unit: float) -> dict:
    """Train each recipe (reusing a finished run with the same configuration); the progress bar
    advances by each epoch's share through the trainer's ``on_epoch`` callback."""
    from cellrobust.training import train

    out = {}
    for recipe in config.recipes:
        tc = _train_config(config, recipe)
        run_dir = folder / recipe
        stamp = run_dir / "study_train.json"
        steps = _train_steps(tc, len(data["train"]))
        if (run_dir / "best.pt").is_file() and stamp.is_file() \
                and json.loads(stamp.read_text()) == json.loads(json.dumps(tc.to_dict())):
            out[recipe] = run_dir / "best.pt"
            tick(unit * steps, f"reused {recipe}")
            continue
        ticked = []

        def on_epoch(record, recipe=recipe, per_epoch=unit * steps / tc.epochs):
            ticked.append(per_epoch)
            tick(per_epoch, f"training {recipe}")

        out[recipe] = Path(train(tc, data["train"], data["val"], run_dir=run_dir,
                                 progress=False, on_epoch=on_epoch))
        write_json(stamp, tc.to_dict())
        tick(max(0.0, unit * steps - sum(ticked)), f"trained {recipe}")
    return out


def run_sweep(config, sweep, patches, folder: Path, *, tick: Callable, frames=None,
              weights: dict | None = None, overwrite: bool = False, allow_code: bool = False):
    """Run the sweep; ``tick`` the progress bar by each finished cell's weight."""
    from cellrobust.sweep import Execution
    from cellrobust.sweep import run_sweep as _run

    execution = Execution(workers=config.workers, scheduler=config.scheduler,
                          overwrite=overwrite, allow_code=allow_code)
    return _run(sweep, patches, folder, frames=frames, execution=execution,
                progress=lambda cells: tick(sum((weights or {}).get(c, 1.0) for c in cells),
                                            "sweep"))


def image_figures(config, sweep, patches, folder: Path, *, allow_code: bool = False) -> dict:
    """Artefact gallery and example predictions (need images, so drawn here, not from the table)."""
    from cellrobust import artefacts
    from cellrobust.report import plots
    from cellrobust.sweep import build_segmenters, resolve_severities

    figdir = folder / "figures"
    from cellrobust.stages.artefacts import gray_range, ladder_rows

    sample = max(patches, key=lambda s: int(np.count_nonzero(s.labels)))
    rows = ladder_rows(sample, [a for a in config.artefacts
                                if artefacts.get(a).frame_kernel is None], seed=config.seed)
    fig = plots.figure_gallery(rows, vrange=gray_range(sample.image),
                               title=f"artefacts x severity level 0-5 on {sample.name}")
    plots.save_figure(fig, figdir / "gallery", config.figure_formats)
    severities = resolve_severities(sweep)
    segmenters = build_segmenters(sweep, allow_code=allow_code)
    panels = []
    for name in config.artefacts[:4]:
        values = severities[name]
        idx = max(1, (2 * (len(values) - 1)) // 3) if len(values) > 1 else 0
        rng = artefacts.stream(config.seed, sample.name, name, values[idx])  # the sweep's
        corrupted, _ = artefacts.apply(sample, name, values[idx], rng=rng)
        image = np.asarray(corrupted.image, np.float32)[None]
        preds = {name: np.asarray(seg.segment(image))[0] for name, seg in segmenters.items()}
        panels.append((f"{name} = {values[idx]:g}", corrupted.image, corrupted.labels, preds))
    plots.save_figure(plots.figure_examples(panels), figdir / "examples", config.figure_formats)
    return segmenters


def robust_pair(config) -> tuple[str, str]:
    """(robust model, its comparison model) for the paired differences: the first of
    ``artefact``, ``nma``, ``augmented`` among the study's models, against ``original``."""
    from cellrobust.segmenters import parse_spec

    names = set(config.recipes) | {parse_spec(m).name for m in config.models}
    robust = next((r for r in ("artefact", "nma", "augmented") if r in names), "artefact")
    return robust, "original"


def report(config, folder: Path) -> Path:
    from cellrobust.report import ReportOptions, build_report

    robust, baseline = robust_pair(config)
    opts = ReportOptions(metric=config.metric, reference=config.reference, n_boot=config.n_boot,
                         seed=config.seed, title=f"cellrobust robustness study ({config.preset})",
                         formats=config.figure_formats, robust=robust, baseline=baseline)
    return build_report(folder, opts)
