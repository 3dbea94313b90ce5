"""Training configuration and the studies' recipes as named, overridable presets.

``recipe_config("augmented", epochs=20)`` returns the frozen :class:`TrainConfig` of a recipe
with any field overridden. Recipes:

``original``   random 256 x 256 crops, 6 per frame, no augmentation (DeepImageJ model);
``augmented``  plus the 8 dihedral transforms (rot90 x flip) of image and mask together;
``artefact``   plus illumination (amplitude U(0, 300) gray levels) and gaussian noise
               (sigma U(0, 30) gray levels) on the image only (the PSC robustness study);
``nma``        rotation by any angle, scale 0.75-1.25, random crop with translation,
               horizontal flip, speckle noise (variance U(0, 0.1)), Adamax (Neuromatch).

Defaults follow the studies: BCE loss, Adam lr 1e-3, batch 2, up to 100 epochs, best weights
by validation loss, early stopping with patience 50, seed 0.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cellrobust._validation import (DataError, InputError, check_choice, collect_errors,
                                    suggest)
from cellrobust.models.unet import UNetConfig

LOSSES = ("bce", "dice_bce")
OPTIMIZERS = ("adam", "adamax", "adamw", "sgd")
MONITORS = {"val_loss": "min", "val_jaccard": "max", "val_accuracy": "max"}
SCHEDULES = ("none", "cosine", "plateau", "step")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class ArtefactRange:
    """One training artefact: its registry name, the severity drawn uniformly in [low, high],
    and the probability ``p`` that a patch gets it at all (``1``: every patch).

    With several artefacts at ``p = 1`` hardly any training patch is near-clean (two ranges
    drawn independently from 0 leave ~0.5 % of patches below a tenth of both); ``p < 1``
    keeps clean and single-artefact patches in the mix, as augmentation libraries do
    (albumentations' per-transform ``p``).
    """

    name: str
    low: float
    high: float
    p: float = 1.0

    @classmethod
    def parse(cls, text: str) -> "ArtefactRange":
        """Parse ``"name:low:high"`` or ``"name:low:high:p"`` (e.g. ``"speckle:0:0.05:0.5"``)."""
        parts = str(text).split(":")
        try:
            if len(parts) not in (3, 4):
                raise ValueError
            return cls(parts[0], *(float(v) for v in parts[1:]))
        except ValueError:
            raise InputError(f"artefact: expected 'name:low:high' or 'name:low:high:p' such as "
                             f"'speckle:0:0.05' or 'speckle:0:0.05:0.5', got {text!r}") from None

    def to_list(self) -> list:
        """``[name, low, high]``, with ``p`` appended only when it is not 1 (older records)."""
        return [self.name, self.low, self.high] + ([self.p] if self.p != 1.0 else [])


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (frozen; every invalid field reported at once).

    Attributes
    ----------
    recipe : str
        Name of the preset this config came from (informative).
    model : UNetConfig
        Architecture and input normalisation (travels in every checkpoint).
    patch_size : int
        Side of the square training crops in pixels (multiple of ``2**model.depth``).
    patches_per_frame : int
        Random crops per training frame per epoch (6 in the studies).
    patches_per_epoch : int or None
        Crops per epoch; ``None`` = frames x ``patches_per_frame``. Lower it for short epochs.
    dihedral : bool
        Random rot90 x flip of image and mask together.
    affine : bool
        Random rotation (any angle), scale in ``scale_range``, translation and horizontal flip,
        sampled directly from the frame (image bilinear, mask nearest neighbour).
    scale_range : (float, float)
    artefacts : tuple of ArtefactRange
        Applied to the image only, each with a severity drawn uniformly from its range.
    loss : {"bce", "dice_bce"}
    optimizer : {"adam", "adamax", "adamw", "sgd"}
    lr, weight_decay, momentum : float
        ``momentum`` is used by SGD only.
    batch_size, epochs, patience : int
        Early stopping after ``patience`` epochs without improvement of ``monitor``.
    monitor : {"val_loss", "val_jaccard", "val_accuracy"}
        Metric that selects the best weights (``best.pt``).
    schedule : {"none", "cosine", "plateau", "step"}
    seed : int
        Root of every random stream (crops, augmentation, weights, dropout).
    workers : int
        Background data-loading processes (0 = load in the training process).
    device : {"auto", "cpu", "cuda"}
    precision : {"auto", "fp32", "bf16", "fp16"}
        ``auto``: fp16 autocast on CUDA, bf16 autocast on CPUs that support it (measured fastest,
        see docs/training.md), else fp32.
    channels_last : bool
    threads : int or None
        Torch intra-op threads on CPU (``None`` = torch's default).
    val_threshold : float
        Probability threshold for the validation Jaccard/accuracy.
    init_weights : str or None
        Checkpoint whose weights start the run (fine-tuning); its model config must equal
        ``model``. ``None``: He-normal initialisation from ``seed``.
    """

    recipe: str = "original"
    model: UNetConfig = field(default_factory=UNetConfig)
    patch_size: int = 256
    patches_per_frame: int = 6
    patches_per_epoch: int | None = None
    dihedral: bool = False
    affine: bool = False
    scale_range: tuple[float, float] = (0.75, 1.25)
    artefacts: tuple[ArtefactRange, ...] = ()
    loss: str = "bce"
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = 2
    epochs: int = 100
    patience: int = 50
    monitor: str = "val_loss"
    schedule: str = "none"
    seed: int = 0
    workers: int = 1
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    threads: int | None = None
    val_threshold: float = 0.5
    init_weights: str | None = None

    def __post_init__(self) -> None:
        arts = tuple(a if isinstance(a, ArtefactRange) else ArtefactRange(*a)
                     for a in self.artefacts)
        object.__setattr__(self, "artefacts", arts)
        object.__setattr__(self, "scale_range", tuple(float(s) for s in self.scale_range))
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", UNetConfig.from_dict(self.model))
        collect_errors(self._errors(), "TrainConfig")

    def _errors(self) -> list[str]:
        errors = []
        positive = ("patch_size", "patches_per_frame", "batch_size", "epochs", "patience")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                errors.append(f"{name}: expected a positive int, got {value!r}")
        if self.patches_per_epoch is not None and (not isinstance(self.patches_per_epoch, int)
                                                   or self.patches_per_epoch < 1):
            errors.append(f"patches_per_epoch: expected None or a positive int, "
                          f"got {self.patches_per_epoch!r}")
        if isinstance(self.patch_size, int) and self.patch_size % self.model.multiple:
            errors.append(f"patch_size: expected a multiple of {self.model.multiple} "
                          f"(2**depth), got {self.patch_size}")
        choices = {"loss": LOSSES, "optimizer": OPTIMIZERS, "monitor": tuple(MONITORS),
                   "schedule": SCHEDULES, "precision": PRECISIONS, "device": DEVICES}
        for name, options in choices.items():
            value = getattr(self, name)
            if value not in options:
                errors.append(f"{name}: expected one of {', '.join(options)}, got {value!r}"
                              f"{suggest(str(value), options)}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            errors.append(f"lr: expected a positive number, got {self.lr!r}")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            errors.append(f"scale_range: expected 0 < low <= high, got {self.scale_range}")
        if not isinstance(self.workers, int) or self.workers < 0:
            errors.append(f"workers: expected an int >= 0, got {self.workers!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            errors.append(f"threads: expected None or a positive int, got {self.threads!r}")
        if not 0 < self.val_threshold < 1:
            errors.append(f"val_threshold: expected a value in (0, 1), got {self.val_threshold}")
        errors.extend(_artefact_errors(self.artefacts))
        return errors

    def to_dict(self) -> dict[str, Any]:
        """Plain-types dict (for YAML/JSON and checkpoints)."""
        data = dataclasses.asdict(self)
        data["model"] = self.model.to_dict()
        data["scale_range"] = list(self.scale_range)
        data["artefacts"] = [a.to_list() for a in self.artefacts]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys are reported."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            collect_errors([f"unknown field(s) {unknown}"], "TrainConfig")
        values = dict(data)
        if "model" in values and isinstance(values["model"], dict):
            values["model"] = UNetConfig.from_dict(values["model"])
        values["artefacts"] = tuple(ArtefactRange(**a) if isinstance(a, dict) else ArtefactRange(*a)
                                    for a in values.get("artefacts", ()))
        return cls(**values)


def _artefact_errors(artefacts: tuple[ArtefactRange, ...]) -> list[str]:
    if not artefacts:
        return []
    from cellrobust import artefacts as registry

    errors = []
    for art in artefacts:
        if art.name not in registry.names():
            errors.append(f"artefacts: unknown artefact {art.name!r}"
                          f"{suggest(art.name, registry.names())}; valid: "
                          f"{', '.join(registry.names())}")
        elif not art.low <= art.high:
            errors.append(f"artefacts: {art.name} range expects low <= high, "
                          f"got {art.low}..{art.high}")
        if not (isinstance(art.p, (int, float)) and 0 < art.p <= 1):
            errors.append(f"artefacts: {art.name} p expects a probability in (0, 1], "
                          f"got {art.p!r}")
    return errors


RECIPES: dict[str, dict[str, Any]] = {
    "original": {},
    "augmented": {"dihedral": True},
    "artefact": {"dihedral": True, "artefacts": (ArtefactRange("illumination", 0.0, 300.0),
                                                 ArtefactRange("gaussian_noise", 0.0, 30.0))},
    "nma": {"affine": True, "scale_range": (0.75, 1.25), "optimizer": "adamax",
            "artefacts": (ArtefactRange("speckle", 0.0, 0.1),)},
    # cell size: dihedral + affine (any rotation, zoom 0.5-2 x, image and mask together)
    "scale": {"dihedral": True, "affine": True, "scale_range": (0.5, 2.0)},
    # the artefact recipe's artefacts over wider ranges, plus the scale augmentation
    "robust": {"dihedral": True, "affine": True, "scale_range": (0.5, 2.0),
               "artefacts": (ArtefactRange("illumination", 0.0, 1500.0),
                             ArtefactRange("gaussian_noise", 0.0, 150.0))},
}


def recipe_config(name: str = "original", **overrides: Any) -> TrainConfig:
    """The :class:`TrainConfig` of recipe ``name`` with ``overrides`` applied.

    ``model`` may be a :class:`UNetConfig` or a dict of UNetConfig fields to change;
    ``extra_artefacts`` (iterable of ``ArtefactRange`` or ``"name:low:high"``) is appended to
    the recipe's artefacts.
    """
    check_choice("recipe", name, tuple(RECIPES))
    values: dict[str, Any] = {"recipe": name, **RECIPES[name]}
    model = overrides.pop("model", None)
    extra = overrides.pop("extra_artefacts", ())
    _check_fields(overrides)
    values.update(overrides)
    if isinstance(model, dict):
        model = dataclasses.replace(UNetConfig(), **model)
    if model is not None:
        values["model"] = model
    if extra:
        parsed = tuple(a if isinstance(a, ArtefactRange) else ArtefactRange.parse(a)
                       for a in extra)
        values["artefacts"] = tuple(values.get("artefacts", ())) + parsed
    return TrainConfig(**values)


def _check_fields(overrides: dict[str, Any]) -> None:
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        collect_errors([f"unknown field(s) {unknown}"], "TrainConfig")


def replace_config(base: TrainConfig, *, model: dict[str, Any] | None = None,
                   **overrides: Any) -> TrainConfig:
    """``base`` with ``overrides`` (TrainConfig fields) and ``model`` (UNetConfig fields)
    changed; a new, validated config. Unknown fields raise one :class:`InputError`."""
    _check_fields(overrides)
    if model:
        overrides["model"] = dataclasses.replace(base.model, **model)
    return dataclasses.replace(base, **overrides)


def load_train_config(path: str | os.PathLike) -> TrainConfig:
    """Read a training config file (YAML or JSON mapping of :class:`TrainConfig` fields).

    The file is data: read with ``yaml.safe_load`` (no tags, no code). Fields left out keep
    their defaults; a ``config.yaml`` of a run folder and the ``best_config.yaml`` of a tuning
    study are such files.

    Raises
    ------
    DataError
        When the file cannot be read or is not a mapping.
    InputError
        Listing every invalid or unknown field, prefixed by the file name.
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a readable training config ({reason})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping of training config fields, got "
                        f"{type(data).__name__}")
    try:
        return TrainConfig.from_dict(data)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: invalid TrainConfig: {exc}") from None


__all__ = ["TrainConfig", "ArtefactRange", "RECIPES", "recipe_config", "MONITORS",
           "load_train_config", "replace_config"]
