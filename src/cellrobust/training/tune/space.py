"""The search space of a tuning study, declared as data and validated.

A space is a mapping ``name -> spec`` (a Python dict or a YAML file)::

    lr:        {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
    optimizer: {type: categorical, choices: [adam, adamax]}
    width:     {type: int, low: 8, high: 16, step: 4}
    artefact:gaussian_noise: {type: float, low: 0, high: 60}

``type`` is ``float`` (``low``, ``high``, optional ``log``/``step``), ``int`` (``low``,
``high``, optional ``log``/``step``) or ``categorical`` (``choices``). The names a space may
use are :data:`PARAMETERS`; ``artefact:NAME`` sets the training range of a registered intensity
artefact to U(identity, value) (the value is the strongest severity drawn; ``value ==
identity`` trains without it). :meth:`SearchSpace.apply` turns the drawn values into a
:class:`~cellrobust.training.TrainConfig`; :meth:`SearchSpace.check_against` proves before any
trial runs that every extreme value and every choice gives a valid config.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellrobust._validation import DataError, InputError, collect_errors, parse_scalar, suggest
from cellrobust.training.config import ArtefactRange, TrainConfig

#: Parameters a space may tune, and what each sets.
PARAMETERS: dict[str, str] = {
    "lr": "learning rate",
    "weight_decay": "optimizer weight decay",
    "momentum": "SGD momentum",
    "optimizer": "adam, adamax, adamw or sgd",
    "loss": "bce or dice_bce",
    "schedule": "none, cosine, plateau or step",
    "batch_size": "patches per optimizer step",
    "dihedral": "random rot90 x flip (true/false)",
    "affine": "random rotation, scale, translation, flip (true/false)",
    "scale_spread": "s: affine scale range (1 / (1 + s), 1 + s)",
    "width": "filters of the first U-Net level",
    "depth": "U-Net encoder levels",
    "dropout": "one dropout rate for every U-Net level",
    "activation": "elu, relu, leaky_relu or gelu",
    "batchnorm": "batch normalisation (true/false)",
    "normalisation": "input normalisation: max, minmax, none or percentile",
    "artefact:NAME": "strongest training severity of artefact NAME, U(identity, value)",
}
_TRAIN_FIELDS = ("lr", "weight_decay", "momentum", "optimizer", "loss", "schedule",
                 "batch_size", "dihedral", "affine")
_MODEL_FIELDS = ("width", "depth", "activation", "batchnorm", "normalisation")
TYPES = ("float", "int", "categorical")
_KEYS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"},
         "categorical": {"choices"}}


@dataclass(frozen=True)
class ParamSpec:
    """One tuned parameter: ``float``/``int`` in [low, high] (``log``, ``step``) or a choice."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        collect_errors(self._errors(), f"search space parameter {self.name!r}")

    def _errors(self) -> list[str]:
        errors = _name_errors(self.name)
        if self.type not in TYPES:
            return errors + [f"type: expected one of {', '.join(TYPES)}, got {self.type!r}"
                             f"{suggest(str(self.type), TYPES)}"]
        if self.type == "categorical":
            if not self.choices:
                errors.append("choices: expected a non-empty list")
            elif len(set(map(repr, self.choices))) != len(self.choices):
                errors.append(f"choices: duplicates in {list(self.choices)}")
            return errors
        return errors + self._range_errors()

    def _range_errors(self) -> list[str]:
        kind = int if self.type == "int" else (int, float)
        for key in ("low", "high"):
            value = getattr(self, key)
            if (not isinstance(value, kind) or isinstance(value, bool)
                    or not math.isfinite(value)):
                return [f"{key}: expected a finite {self.type}, got {value!r}"]
        errors = []
        if self.low > self.high:
            errors.append(f"expected low <= high, got low {self.low} > high {self.high}")
        if self.log and self.low <= 0:
            errors.append(f"log: needs low > 0, got low {self.low}")
        if self.step is not None and (not isinstance(self.step, kind) or self.step <= 0
                                      or self.log):
            errors.append(f"step: expected a positive {self.type} without log, "
                          f"got {self.step!r}")
        return errors

    def suggest(self, trial: Any) -> Any:
        """Draw this parameter from an Optuna ``trial``."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log,
                                     step=self.step or 1)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log,
                                   step=self.step)

    def extremes(self) -> tuple[Any, ...]:
        """Every choice, or (low, high): the values :meth:`SearchSpace.check_against` tries."""
        return self.choices if self.type == "categorical" else (self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        """The spec as written in a space file."""
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices)}
        out = {"type": self.type, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


def _name_errors(name: str) -> list[str]:
    if name in PARAMETERS and name != "artefact:NAME":
        return []
    if isinstance(name, str) and name.startswith("artefact:"):
        return _artefact_errors(name.split(":", 1)[1])
    valid = [p for p in PARAMETERS if p != "artefact:NAME"] + ["artefact:<name>"]
    return [f"unknown parameter{suggest(str(name), valid)}; valid: {', '.join(valid)}"]


def _artefact_errors(art: str) -> list[str]:
    from cellrobust import artefacts

    if art not in artefacts.names():
        return [f"unknown artefact {art!r}{suggest(art, artefacts.names())}; valid: "
                f"{', '.join(artefacts.names())}"]
    spec = artefacts.get(art)
    if spec.kind != "intensity" or spec.scope != "patch" or not math.isfinite(spec.identity):
        return [f"artefact {art!r} cannot be a training range here (training artefacts must "
                "be patch-level intensity artefacts with a finite identity value)"]
    return []


@dataclass(frozen=True)
class SearchSpace:
    """A validated set of :class:`ParamSpec` (see the module docstring)."""

    params: tuple[ParamSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        names = [p.name for p in self.params]
        errors = [] if self.params else ["expected at least one parameter"]
        errors += [f"{n!r} given twice" for n in sorted(set(names)) if names.count(n) > 1]
        collect_errors(errors, "search space")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> "SearchSpace":
        """Build from ``{name: {type, low, high, log, step, choices}}``; every error at once."""
        if not isinstance(mapping, Mapping):
            raise InputError(f"search space: expected a mapping of parameter names to specs, "
                             f"got {type(mapping).__name__}")
        params, errors = [], []
        for name, spec in mapping.items():
            try:
                params.append(_spec(str(name), spec))
            except InputError as exc:
                errors.append(str(exc).removeprefix("invalid "))
        collect_errors(errors, "search space")
        return cls(tuple(params))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "SearchSpace":
        """Read a YAML (or JSON) space file; the file is data (``yaml.safe_load``)."""
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"{path}: not a readable search space ({reason})") from None
        try:
            return cls.from_mapping(data)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The space as a plain mapping (inverse of :meth:`from_mapping`)."""
        return {p.name: p.to_dict() for p in self.params}

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Draw every parameter from an Optuna ``trial``; ``{name: value}``."""
        return {p.name: p.suggest(trial) for p in self.params}

    def apply(self, base: TrainConfig, values: Mapping[str, Any]) -> TrainConfig:
        """``base`` with the drawn ``values`` applied (a new, validated TrainConfig)."""
        train = {k: v for k, v in values.items() if k in _TRAIN_FIELDS}
        model = {k: v for k, v in values.items() if k in _MODEL_FIELDS}
        if "dropout" in values:
            depth = model.get("depth", base.model.depth)
            model["dropout"] = (float(values["dropout"]),) * (2 * depth + 1)
        elif "depth" in model and base.model.dropout is not None:
            model["dropout"] = None  # the base's rates fit its own depth only
        if "scale_spread" in values:
            spread = float(values["scale_spread"])
            train["scale_range"] = (1.0 / (1.0 + spread), 1.0 + spread)
        arts = _artefact_ranges(base.artefacts, values)
        return dataclasses.replace(base, **train, artefacts=arts,
                                   model=dataclasses.replace(base.model, **model))

    def point_of(self, config: TrainConfig) -> tuple[dict[str, Any] | None, list[str]]:
        """The values of this space that reproduce ``config`` exactly, or why none do.

        Returns
        -------
        values : dict or None
            ``{name: value}`` with ``self.apply(config, values) == config``; None when the
            space cannot express ``config`` (a value outside a range or grid, per-level dropout
            rates, a field that applying the values would change).
        reasons : list of str
            Why not (empty when ``values`` is given).
        """
        values, reasons = {}, []
        for param in self.params:
            value, why = _base_value(param.name, config)
            if why is not None:
                reasons.append(why)
            elif not _contains(param, value):
                reasons.append(f"{param.name}: the base value {value!r} lies outside "
                               f"{param.to_dict()}")
            else:
                values[param.name] = value
        if reasons:
            return None, reasons
        applied = self.apply(config, values)
        changed = [f.name for f in dataclasses.fields(config)
                   if getattr(applied, f.name) != getattr(config, f.name)]
        if changed:
            return None, [f"applying the base values would change {', '.join(changed)}"]
        return values, []

    def check_against(self, base: TrainConfig) -> None:
        """Raise one :class:`InputError` listing every extreme value that gives a bad config."""
        errors = []
        for param in self.params:
            for value in param.extremes():
                try:
                    self.apply(base, {param.name: value})
                except InputError as exc:
                    errors.append(f"{param.name}={value!r}: {exc}")
        collect_errors(errors, "search space for this base config")


def _spec(name: str, spec: Any) -> ParamSpec:
    if not isinstance(spec, Mapping):
        raise InputError(f"invalid parameter {name!r}: expected a mapping such as "
                         f"{{type: float, low: 0.0001, high: 0.01, log: true}}, got {spec!r}")
    kind = spec.get("type")
    unknown = sorted(set(spec) - {"type"} - _KEYS.get(kind, set()))
    if kind in _KEYS and unknown:
        raise InputError(f"invalid parameter {name!r}: unknown key(s) {unknown} for type "
                         f"{kind}; valid: {sorted(_KEYS[kind])}")
    values = {k: parse_scalar(v) if k in ("low", "high", "step") and isinstance(v, str) else v
              for k, v in spec.items() if k != "type"}  # YAML reads 1e-4 as text
    if "choices" in values and not isinstance(values["choices"], (list, tuple)):
        raise InputError(f"invalid parameter {name!r}: choices: expected a list, "
                         f"got {values['choices']!r}")
    return ParamSpec(name=name, type=kind, **values)


def _artefact_ranges(base: tuple[ArtefactRange, ...],
                     values: Mapping[str, Any]) -> tuple[ArtefactRange, ...]:
    """The base ranges with the tuned ones replaced in place (keeping their order and ``p``);
    a tuned artefact the base lacks is appended; a value at the identity drops it."""
    from cellrobust import artefacts

    tuned = {k.split(":", 1)[1]: float(v) for k, v in values.items()
             if k.startswith("artefact:")}
    ranges = {a.name: a for a in base}
    for name in tuned:
        ranges.setdefault(name, ArtefactRange(name, 0.0, 0.0))
    out = []
    for name, current in ranges.items():
        if name not in tuned:
            out.append(current)
            continue
        identity, value = float(artefacts.get(name).identity), tuned[name]
        if value != identity:
            out.append(dataclasses.replace(current, low=min(identity, value),
                                           high=max(identity, value)))
    return tuple(out)


def _base_value(name: str, config: TrainConfig) -> tuple[Any, str | None]:
    """The value of parameter ``name`` that ``config`` has, or (None, why it has none)."""
    if name in _TRAIN_FIELDS:
        return getattr(config, name), None
    if name in _MODEL_FIELDS:
        return getattr(config.model, name), None
    if name == "dropout":
        rates = config.model.dropout
        if rates is None or len(set(rates)) != 1:
            return None, ("dropout: the base config uses per-level rates "
                          f"{'(the model default)' if rates is None else list(rates)}, "
                          "not one rate")
        return rates[0], None
    if name == "scale_spread":
        return config.scale_range[1] - 1.0, None
    from cellrobust import artefacts

    art = name.split(":", 1)[1]
    identity = float(artefacts.get(art).identity)
    found = [a for a in config.artefacts if a.name == art]
    if not found:
        return identity, None
    bounds = {found[0].low, found[0].high}
    if identity not in bounds:
        return None, (f"{name}: the base range [{found[0].low}, {found[0].high}] does not "
                      f"start at the identity {identity}")
    return max(bounds, key=lambda b: abs(b - identity)), None


def _contains(param: ParamSpec, value: Any) -> bool:
    if param.type == "categorical":
        return any(type(value) is type(c) and value == c for c in param.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if param.type == "int" and int(value) != value:
        return False
    if not param.low <= value <= param.high:
        return False
    if param.step is None:
        return True
    ratio = (value - param.low) / param.step
    return math.isclose(ratio, round(ratio), abs_tol=1e-9)


#: The default space: optimizer and learning rate, capacity, dropout, loss, augmentation and
#: the illumination / noise training ranges (the ``artefact`` recipe's U(0, 300) and U(0, 30)
#: lie inside), speckle as in the Neuromatch recipe.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
    "optimizer": {"type": "categorical", "choices": ["adam", "adamax"]},
    "loss": {"type": "categorical", "choices": ["bce", "dice_bce"]},
    "width": {"type": "int", "low": 8, "high": 24, "step": 8},
    "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "dihedral": {"type": "categorical", "choices": [True, False]},
    "artefact:illumination": {"type": "float", "low": 0.0, "high": 600.0},
    "artefact:gaussian_noise": {"type": "float", "low": 0.0, "high": 100.0},
    "artefact:speckle": {"type": "float", "low": 0.0, "high": 0.1},
}


__all__ = ["PARAMETERS", "TYPES", "ParamSpec", "SearchSpace", "DEFAULT_SPACE"]
