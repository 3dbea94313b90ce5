"""The robustness objective of a tuning study: scores on corrupted validation patches.

:func:`build_conditions` corrupts the validation patches once per study, each with the
sweep's stream ``artefacts.stream(seed, sample.name, artefact, value)``, so every trial is
scored on identical inputs (paired comparisons) and on the images the sweep would score.
:func:`score_model` runs the network as the U-Net segmenter does
(:func:`~cellrobust.models.inference.predict_tiled`, normalisation from the checkpoint, halo
47 px) and returns the metric per condition plus

- ``clean``: the metric on the uncorrupted patches;
- ``mpc``: the mean over artefacts x ladder levels of the corrupted-condition metric
  (mean performance under corruption, Hendrycks & Dietterich, ICLR 2019; clean excluded);
- ``worst``: the lowest corrupted-condition metric.

Metrics: ``jaccard`` = pixel foreground TP / (TP + FP + FN), counts pooled over the patches of a
condition (micro); ``ap50`` = instance TP / (TP + FP + FN) at IoU >= 0.5 (DSB 2018 "AP", not
COCO's), counts pooled, labels from threshold + 8-connected components.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cellrobust._validation import check_choice, collect_errors, suggest
from cellrobust.data.sample import Sample

METRICS = ("jaccard", "ap50")
SCORES = ("mpc", "clean", "worst")
CLEAN = "clean"


@dataclass(frozen=True)
class ObjectiveConfig:
    """What a trial is scored on.

    Attributes
    ----------
    artefacts : tuple of str
        Registered patch-level artefacts applied to the validation patches.
    levels : tuple of int
        Ladder levels (1-5) of each artefact (:meth:`Artefact.value_at`).
    metric : {"jaccard", "ap50"}
    score : {"mpc", "clean", "worst"}
        The value the study maximises (see the module docstring).
    threshold : float
        Foreground probability threshold in (0, 1).
    seed : int
        Root of the corruption streams.
    """

    artefacts: tuple[str, ...] = ("illumination", "gaussian_noise")
    levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    metric: str = "jaccard"
    score: str = "mpc"
    threshold: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "artefacts", tuple(self.artefacts))
        object.__setattr__(self, "levels", tuple(self.levels))
        collect_errors(self._errors(), "ObjectiveConfig")

    def _errors(self) -> list[str]:
        from cellrobust import artefacts

        errors = []
        for name in self.artefacts:
            if name not in artefacts.names():
                errors.append(f"artefacts: unknown artefact {name!r}"
                              f"{suggest(name, artefacts.names())}")
            elif artefacts.get(name).scope != "patch":
                errors.append(f"artefacts: {name!r} is a frame-level artefact; the objective "
                              "corrupts validation patches")
        if self.score != CLEAN and not self.artefacts:
            errors.append(f"artefacts: score {self.score!r} needs at least one artefact")
        bad = [v for v in self.levels if not isinstance(v, int) or isinstance(v, bool)
               or not 1 <= v <= 5]
        if bad or (self.score != CLEAN and not self.levels):
            errors.append(f"levels: expected ladder levels in 1..5, got {list(self.levels)}")
        for name, value, options in (("metric", self.metric, METRICS),
                                     ("score", self.score, SCORES)):
            if value not in options:
                errors.append(f"{name}: expected one of {', '.join(options)}, got {value!r}"
                              f"{suggest(str(value), options)}")
        if not isinstance(self.threshold, (int, float)) or not 0 < self.threshold < 1:
            errors.append(f"threshold: expected a value in (0, 1), got {self.threshold!r}")
        return errors

    def to_dict(self) -> dict[str, Any]:
        """Plain types (for JSON records)."""
        return {"artefacts": list(self.artefacts), "levels": list(self.levels),
                "metric": self.metric, "score": self.score, "threshold": self.threshold,
                "seed": self.seed}


@dataclass(frozen=True)
class Condition:
    """The validation patches under one artefact at one ladder level (``clean``: level 0)."""

    key: str
    artefact: str
    level: int
    value: float
    samples: tuple[Sample, ...]


def build_conditions(patches: Sequence[Sample], config: ObjectiveConfig) -> list[Condition]:
    """The clean condition, then every (artefact, level) of ``config``, in that order."""
    from cellrobust import artefacts

    clean = tuple(patches)
    if not clean:
        collect_errors(["validation patches: none given"], "tuning objective")
    out = [Condition(CLEAN, "none", 0, 0.0, clean)]
    for name in config.artefacts:
        for level in config.levels:
            value = artefacts.get(name).value_at(level)
            corrupted = tuple(artefacts.apply(
                s, name, value, rng=artefacts.stream(config.seed, s.name, name, value))[0]
                for s in clean)
            out.append(Condition(f"{name}@{level}", name, level, float(value), corrupted))
    return out


def validation_samples(conditions: Sequence[Condition]) -> list[Sample]:
    """Every condition's samples, renamed ``<key>/<name>``: the training validation set."""
    return [s.with_(name=f"{c.key}/{s.name}") for c in conditions for s in c.samples]


def score_model(model: Any, conditions: Sequence[Condition], config: ObjectiveConfig, *,
                batch_size: int = 8) -> dict[str, float]:
    """The metric per condition key plus ``clean``, ``mpc`` and ``worst`` (module docstring)."""
    scores = {c.key: _condition_score(model, c, config, batch_size) for c in conditions}
    corrupted = [v for k, v in scores.items() if k != CLEAN]
    scores["mpc"] = float(np.mean(corrupted)) if corrupted else float("nan")
    scores["worst"] = float(np.min(corrupted)) if corrupted else float("nan")
    return scores


def _condition_score(model: Any, condition: Condition, config: ObjectiveConfig,
                     batch_size: int) -> float:
    from cellrobust.models.inference import predict_tiled

    pairs = []
    for sample in condition.samples:
        prob = predict_tiled(model, np.asarray(sample.image, np.float32),
                             batch_size=batch_size)
        pairs.append((np.asarray(sample.labels), prob))
    return _metric(pairs, config)


def _metric(pairs: list[tuple[np.ndarray, np.ndarray]], config: ObjectiveConfig) -> float:
    from cellrobust import metrics

    if config.metric == "jaccard":
        counts = [metrics.pixel_counts(t > 0, p > config.threshold) for t, p in pairs]
        return float(metrics.pixel_scores(counts, average="micro")["jaccard"])
    from cellrobust.models.postprocess import probabilities_to_labels

    labelled = [(t, probabilities_to_labels(p, threshold=config.threshold)) for t, p in pairs]
    return float(metrics.match_dataset(labelled, thresholds=(0.5,), average="micro").ap[0])


def score_keys(config: ObjectiveConfig) -> list[str]:
    """Column names of the per-condition scores, in :func:`build_conditions` order."""
    check_choice("score", config.score, SCORES)
    return [CLEAN] + [f"{a}@{lv}" for a in config.artefacts for lv in config.levels]


__all__ = ["METRICS", "SCORES", "ObjectiveConfig", "Condition", "build_conditions",
           "validation_samples", "score_model", "score_keys"]
