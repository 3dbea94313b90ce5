"""Run an Optuna study whose trials train U-Nets and are scored on robustness.

Sampler: TPE (Bergstra et al., NeurIPS 2011) seeded from ``(seed, worker, trials already in
the study)``, so workers and resumed runs never replay each other's random start-up points.
Pruner: median or percentile of the other trials' intermediate ``val_jaccard`` at the same
epoch; the intermediate value comes from :func:`~cellrobust.training.train`'s ``on_epoch``
callback, and the validation set of every trial is the study's corrupted validation patches
(all conditions pooled), so what is pruned is robust accuracy, not clean accuracy alone.

Storage: any Optuna RDB URL - ``sqlite:///OUT/study.db`` by default (resumable:
``load_if_exists``), PostgreSQL/MySQL for a cluster. Several worker processes pointed at one
storage URL share the study; each sends a heartbeat, and a trial whose worker died (no
heartbeat for ``grace_s``) is marked failed and re-queued once per ``max_retry``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellrobust._rng import derive_rng
from cellrobust._validation import DataError, collect_errors, suggest
from cellrobust.data.sample import Sample
from cellrobust.training.config import TrainConfig
from cellrobust.training.tune.objective import (Condition, ObjectiveConfig, score_model,
                                                validation_samples)
from cellrobust.training.tune.space import SearchSpace

PRUNERS = ("median", "percentile", "none")


@dataclass(frozen=True)
class SearchConfig:
    """How the study searches, where it is stored and how workers share it.

    Attributes
    ----------
    n_trials : int or None
        Trials this worker runs (``None``: until ``total_trials``).
    total_trials : int or None
        Stop once the study holds this many finished (complete or pruned) trials, counting
        every worker's and every earlier run's.
    storage : str
        Optuna RDB URL (``sqlite:///path/study.db``, ``postgresql://...``).
    study_name : str
    seed : int
        Sampler seed (combined with ``worker`` and the trials already stored).
    worker : int
        Index of this worker process (0, 1, ...) among those sharing ``storage``.
    startup_trials : int
        Random trials before TPE models the results.
    pruner : {"median", "percentile", "none"}
    percentile : float
        For ``pruner="percentile"``: prune below this percentile of the other trials (0-100).
    pruner_startup, pruner_warmup : int
        Trials before pruning starts; epochs of a trial before it may be pruned.
    heartbeat_s, grace_s : int
        Heartbeat interval and the silence after which a trial counts as dead (seconds).
    max_retry : int
        How often a dead worker's trial is re-queued.
    """

    storage: str
    n_trials: int | None = 20
    total_trials: int | None = None
    study_name: str = "cellrobust-tune"
    seed: int = 0
    worker: int = 0
    startup_trials: int = 10
    pruner: str = "median"
    percentile: float = 50.0
    pruner_startup: int = 5
    pruner_warmup: int = 1
    heartbeat_s: int = 30
    grace_s: int = 120
    max_retry: int = 1

    def __post_init__(self) -> None:
        collect_errors(self._errors(), "SearchConfig")

    def _errors(self) -> list[str]:
        errors = []
        for name in ("n_trials", "total_trials"):
            value = getattr(self, name)
            if value is not None and not _is_int(value, 0):
                errors.append(f"{name}: expected None or an int >= 0, got {value!r}")
        if self.n_trials is None and self.total_trials is None:
            errors.append("n_trials / total_trials: give at least one")
        for name in ("worker", "startup_trials", "pruner_startup", "pruner_warmup",
                     "max_retry", "seed"):
            if not _is_int(getattr(self, name), 0):
                errors.append(f"{name}: expected an int >= 0, got {getattr(self, name)!r}")
        for name in ("heartbeat_s", "grace_s"):
            if not _is_int(getattr(self, name), 1):
                errors.append(f"{name}: expected a positive int, got {getattr(self, name)!r}")
        if _is_int(self.heartbeat_s, 1) and _is_int(self.grace_s, 1) and \
                self.grace_s <= self.heartbeat_s:
            errors.append(f"grace_s: expected more than heartbeat_s ({self.heartbeat_s}), "
                          f"got {self.grace_s}")
        if self.pruner not in PRUNERS:
            errors.append(f"pruner: expected one of {', '.join(PRUNERS)}, got "
                          f"{self.pruner!r}{suggest(str(self.pruner), PRUNERS)}")
        if not isinstance(self.percentile, (int, float)) or not 0 < self.percentile < 100:
            errors.append(f"percentile: expected a value in (0, 100), got {self.percentile!r}")
        if not isinstance(self.storage, str) or "://" not in self.storage:
            errors.append(f"storage: expected a database URL such as sqlite:///study.db, got "
                          f"{self.storage!r}")
        return errors


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for records and messages)."""
    head, sep, tail = url.partition("://")
    creds, at, host = tail.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{head}{sep}{creds.split(':', 1)[0]}:***@{host}"


def open_study(config: SearchConfig, *, attempts: int = 8) -> Any:
    """Create or load the study (maximise); retried while another worker creates it."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = _storage(config)
            study = optuna.create_study(storage=storage, study_name=config.study_name,
                                        direction="maximize", load_if_exists=True,
                                        sampler=optuna.samplers.RandomSampler(0))
            study.sampler = _sampler(config, len(study.get_trials(deepcopy=False)))
            study.pruner = _pruner(config)
            return study
        except (SQLAlchemyError, optuna.exceptions.DuplicatedStudyError) as exc:
            if attempt == attempts - 1:
                raise DataError(f"storage {redact(config.storage)}: cannot open the study "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
            time.sleep(0.2 * 2 ** attempt)  # another worker is creating the tables
    raise AssertionError("unreachable")


def _storage(config: SearchConfig) -> Any:
    import optuna

    kwargs = {"connect_args": {"timeout": 60}} if config.storage.startswith("sqlite") else {}
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=config.max_retry)
    return optuna.storages.RDBStorage(config.storage, engine_kwargs=kwargs,
                                      heartbeat_interval=config.heartbeat_s,
                                      grace_period=config.grace_s,
                                      heartbeat_stale_trial_callback=retry)


def _sampler(config: SearchConfig, n_existing: int) -> Any:
    import optuna

    seed = int(derive_rng(config.seed, "tune-sampler", config.worker, n_existing)
               .integers(2**31 - 1))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=config.startup_trials)


def _pruner(config: SearchConfig) -> Any:
    import optuna

    if config.pruner == "none":
        return optuna.pruners.NopPruner()
    if config.pruner == "percentile":
        return optuna.pruners.PercentilePruner(config.percentile,
                                               n_startup_trials=config.pruner_startup,
                                               n_warmup_steps=config.pruner_warmup)
    return optuna.pruners.MedianPruner(n_startup_trials=config.pruner_startup,
                                       n_warmup_steps=config.pruner_warmup)


class TrialObjective:
    """``objective(trial) -> score``: draw a config, train it, score it on the conditions.

    Every trial trains from ``base`` with the drawn values, in ``runs_dir/trial-NNNN`` (kept:
    its ``best.pt`` is the trial's model), validating on all conditions pooled. Attributes
    stored on the trial: ``config`` (the TrainConfig dict), ``run_dir``, ``scores`` (metric per
    condition, ``clean``, ``mpc``, ``worst``) and ``pruned_at`` / ``diverged`` when so.
    """

    def __init__(self, base: TrainConfig, space: SearchSpace, train_samples: Sequence[Sample],
                 conditions: Sequence[Condition], objective: ObjectiveConfig, *,
                 runs_dir: str | Path, data_source: dict[str, Any] | None = None) -> None:
        self.base, self.space, self.objective = base, space, objective
        self.train_samples, self.conditions = list(train_samples), list(conditions)
        self.val_samples = validation_samples(conditions)
        self.runs_dir, self.data_source = Path(runs_dir), data_source

    def __call__(self, trial: Any) -> float:
        import optuna

        from cellrobust.models.checkpoint import load_checkpoint
        from cellrobust.training.loop import StopTraining, TrainingDiverged, train

        config = self.space.apply(self.base, self.space.suggest(trial))
        run_dir = self.runs_dir / f"trial-{trial.number:04d}"
        trial.set_user_attr("config", config.to_dict())
        trial.set_user_attr("run_dir", str(run_dir))

        def on_epoch(record: dict[str, Any]) -> None:
            trial.report(float(record["val_jaccard"]), int(record["epoch"]))
            if trial.should_prune():
                trial.set_user_attr("pruned_at", int(record["epoch"]))
                raise StopTraining

        try:
            best = train(config, self.train_samples, self.val_samples, run_dir=run_dir,
                         progress=False, on_epoch=on_epoch, data_source=self.data_source,
                         curves=False)
        except TrainingDiverged as exc:
            trial.set_user_attr("diverged", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        if "pruned_at" in trial.user_attrs:
            raise optuna.TrialPruned(f"pruned after epoch {trial.user_attrs['pruned_at']}")
        model, _, _ = load_checkpoint(best)
        scores = score_model(model, self.conditions, self.objective)
        trial.set_user_attr("scores", scores)
        value = scores[self.objective.score]
        return value if math.isfinite(value) else 0.0


def run_search(objective: Callable[[Any], float], config: SearchConfig, *,
               study: Any = None, progress: bool = False) -> Any:
    """Optimise ``objective`` in the study of ``config`` (or the already opened ``study``);
    return the ``optuna.Study``."""
    import optuna

    study = open_study(config) if study is None else study
    callbacks, n_trials = [], config.n_trials
    if config.total_trials is not None:
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        done = len(study.get_trials(deepcopy=False, states=states))
        remaining = max(0, config.total_trials - done)
        n_trials = remaining if n_trials is None else min(n_trials, remaining)
        callbacks.append(optuna.study.MaxTrialsCallback(config.total_trials, states=states))
    if n_trials:
        study.optimize(objective, n_trials=n_trials, callbacks=callbacks,
                       show_progress_bar=progress, gc_after_trial=True)
    return study


__all__ = ["PRUNERS", "SearchConfig", "TrialObjective", "open_study", "run_search", "redact"]
