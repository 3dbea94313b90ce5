"""``cellrobust tune``: a robustness-driven hyper-parameter search over training configs.

Opens the training and validation frames exactly as ``cellrobust train`` does
(:func:`cellrobust.stages.train.load_frames`), cuts the seeded validation crops
(:func:`cellrobust.data.iter_patches`), corrupts them once for the whole study, and runs an
Optuna study (:mod:`cellrobust.training.tune`) whose trials train from ``base`` with drawn
values. The output folder holds ``study.db`` (default storage), ``trials/trial-NNNN/`` (each
trial's run folder), ``trials.csv``, ``best_config.yaml`` (a training config file:
``cellrobust train --config best_config.yaml`` with the same data reproduces the best trial),
``tune.png`` (history + parameter importance), ``tune.md`` and ``tune.json`` (resolved config,
data digests, library versions).

A study remembers what it optimises (objective, space, base config, data digests) in its
storage; resuming it - or adding a worker - with anything else is refused.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellrobust._validation import InputError, collect_errors

__all__ = ["TuneConfig", "default_storage", "run"]


def default_storage(out: str | Path) -> str:
    """``sqlite:////abs/OUT/study.db``: the study database inside the output folder."""
    return f"sqlite:///{Path(out).resolve() / 'study.db'}"


def _default_base():
    from cellrobust.training.config import recipe_config

    return recipe_config("artefact", monitor="val_jaccard")


def _default_space():
    from cellrobust.training.tune.space import DEFAULT_SPACE, SearchSpace

    return SearchSpace.from_mapping(DEFAULT_SPACE)


def _default_objective():
    from cellrobust.training.tune.objective import ObjectiveConfig

    return ObjectiveConfig()


@dataclass(frozen=True)
class TuneConfig:
    """One ``cellrobust tune`` worker.

    Attributes
    ----------
    out : path
        Output folder (created).
    search : SearchConfig
        Trials, storage URL (see :func:`default_storage`), sampler seed, worker index, pruner.
    base : TrainConfig
        The config every trial starts from (default: the ``artefact`` recipe, best weights by
        ``val_jaccard``); drawn values replace its fields.
    space : SearchSpace
    objective : ObjectiveConfig
    data, val_data : path, optional
        As for ``cellrobust train`` (None: the built-in simulator).
    val_patches : int
        Seeded crops per validation frame (0: whole frames).
    val_patch_size : int
        Side of the validation crops in px.
    baseline : bool
        Queue the base config itself as the study's first trial (worker 0 of a new study; when
        the space can express it, see :meth:`SearchSpace.point_of`), so that the study holds
        the score the search has to beat, on the same crops.
    progress : bool
    """

    out: str | Path
    search: Any
    base: Any = field(default_factory=_default_base)
    space: Any = field(default_factory=_default_space)
    objective: Any = field(default_factory=_default_objective)
    data: str | Path | None = None
    val_data: str | Path | None = None
    val_patches: int = 6
    val_patch_size: int = 256
    baseline: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        errors = []
        if not isinstance(self.val_patches, int) or self.val_patches < 0:
            errors.append(f"val_patches: expected an int >= 0, got {self.val_patches!r}")
        if not isinstance(self.val_patch_size, int) or self.val_patch_size < 8:
            errors.append(f"val_patch_size: expected an int >= 8, got {self.val_patch_size!r}")
        collect_errors(errors, "TuneConfig")
        self.space.check_against(self.base)


def _frames(config: TuneConfig) -> tuple[list, list, dict]:
    from cellrobust.data import iter_patches
    from cellrobust.stages.train import TrainStageConfig, load_frames

    stage = TrainStageConfig(train=config.base, out=config.out, data=config.data,
                             val_data=config.val_data)
    train, val, record = load_frames(stage, seed=config.base.seed)
    if config.val_patches:
        val = list(iter_patches(val, config.val_patches, config.val_patch_size,
                                seed=config.objective.seed))
    return train, val, record


def _describe(samples) -> dict:
    from cellrobust.training.resume import describe_frames

    return describe_frames([(s.image, s.labels, s.name) for s in samples])


def _fingerprint(config: TuneConfig, train, val) -> dict[str, Any]:
    return {"objective": config.objective.to_dict(), "space": config.space.to_dict(),
            "base": config.base.to_dict(), "train_data": _describe(train),
            "validation_patches": _describe(val)}


def _check_same_study(study, fingerprint: dict[str, Any], storage: str) -> None:
    """Store the fingerprint on a new study; refuse a different request on an existing one."""
    from cellrobust.training.tune.study import redact

    saved = study.user_attrs.get("fingerprint")
    if saved is None:
        study.set_user_attr("fingerprint", fingerprint)
        return
    now = _jsonable(fingerprint)
    diff = [k for k in now if saved.get(k) != now[k]]
    if diff:
        raise InputError(f"tune: study {study.study_name!r} in {redact(storage)} was started "
                         f"with a different {', '.join(diff)}; use the same settings and data, "
                         "or another study name or output folder")


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


def run(config: TuneConfig) -> Path:
    """Run this worker's share of the study; write the summary files; return ``out``."""
    from cellrobust.training.tune.objective import build_conditions
    from cellrobust.training.tune.study import TrialObjective, open_study, run_search

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    train, val, record = _frames(config)
    conditions = build_conditions(val, config.objective)
    fingerprint = _fingerprint(config, train, val)
    study = open_study(config.search)
    _check_same_study(study, fingerprint, config.search.storage)
    baseline = _enqueue_baseline(study, config)
    _write_record(config, fingerprint, record, baseline)
    objective = TrialObjective(config.base, config.space, train, conditions, config.objective,
                               runs_dir=out / "trials", data_source=record)
    study = run_search(objective, config.search, study=study, progress=config.progress)
    write_summary(study, config, baseline)
    return out


def _enqueue_baseline(study, config: TuneConfig) -> dict[str, Any]:
    """Queue the base config as trial 0 of a new study; say whether it is (or why not)."""
    if not config.baseline:
        return {"queued": False, "reason": "disabled (--no-baseline)"}
    values, reasons = config.space.point_of(config.base)
    if values is None:
        return {"queued": False, "reason": "; ".join(reasons)}
    if config.search.worker == 0 and not study.get_trials(deepcopy=False):
        study.enqueue_trial(values, user_attrs={"baseline": True})
    return {"queued": True, "values": values}


def _write_record(config: TuneConfig, fingerprint: dict[str, Any], record: dict,
                  baseline: dict[str, Any]) -> None:
    from cellrobust._io import write_json
    from cellrobust.stages._record import jsonable, provenance
    from cellrobust.training.tune.study import redact

    import optuna
    import torch

    resolved = {**jsonable(dataclasses.asdict(config.search)),
                "storage": redact(config.search.storage)}
    write_json(Path(config.out) / "tune.json", provenance(
        "tune", {"search": resolved, "objective": config.objective.to_dict(),
                 "space": config.space.to_dict(), "base": config.base.to_dict(),
                 "val_patches": config.val_patches, "val_patch_size": config.val_patch_size,
                 "baseline": baseline},
        data=record, digests={k: fingerprint[k] for k in ("train_data", "validation_patches")},
        versions={"optuna": optuna.__version__, "torch": torch.__version__}))


def write_summary(study, config: TuneConfig, baseline: dict[str, Any] | None = None) -> None:
    """``trials.csv``, ``best_config.yaml``, ``tune.png`` and ``tune.md`` in ``config.out``."""
    from cellrobust._io import write_text
    from cellrobust.stages._record import save_figure
    from cellrobust.training.tune import summary

    out = Path(config.out)
    write_text(out / "trials.csv", _csv(summary.trials_table(study)))
    best = summary.best_trial(study)
    if best is not None:
        import yaml

        write_text(out / "best_config.yaml",
                   yaml.safe_dump(best.user_attrs["config"], sort_keys=False))
    save_figure(summary.figure(study, score=config.objective.score), out / "tune.png")
    data = f" --data {config.data}" if config.data else ""
    command = (f"cellrobust train --config {out / 'best_config.yaml'}{data} "
               f"--out runs/tuned-{study.study_name}")
    write_text(out / "tune.md", summary.markdown(study, objective=config.objective.to_dict(),
                                                 command=command, baseline=baseline))


def _csv(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns or ["number"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
