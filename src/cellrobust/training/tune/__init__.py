"""Robustness-driven hyper-parameter search with Optuna (``cellrobust tune``).

:mod:`.space` declares what is searched (data, validated), :mod:`.objective` scores a model on
corrupted validation patches (mPC, clean, worst), :mod:`.study` runs the Optuna study (TPE,
pruning through the training loop's ``on_epoch`` callback, resumable RDB storage shared by
worker processes), :mod:`.summary` turns a study into a table, a figure and a short text.
Optuna is imported only when a study runs.
"""

from cellrobust.training.tune.objective import (METRICS, SCORES, Condition, ObjectiveConfig,
                                                build_conditions, score_model)
from cellrobust.training.tune.space import DEFAULT_SPACE, PARAMETERS, ParamSpec, SearchSpace
from cellrobust.training.tune.study import (PRUNERS, SearchConfig, TrialObjective, open_study,
                                            run_search)

__all__ = ["METRICS", "SCORES", "Condition", "ObjectiveConfig", "build_conditions",
           "score_model", "DEFAULT_SPACE", "PARAMETERS", "ParamSpec", "SearchSpace", "PRUNERS",
           "SearchConfig", "TrialObjective", "open_study", "run_search"]
