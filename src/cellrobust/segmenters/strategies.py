"""Robustness strategies as segmenter wrappers: fix the data at test time, for every kind.

Strategy options are ``KEY=VALUE`` options valid in the spec of *any* kind
(``otsu,preprocess=flatfield``, ``runs/a/best.pt,normalise=percentile,scales=0.5+1+2``).
:func:`cellrobust.segmenters.registry.build_segmenter` removes them before the kind checks its
own options, builds the model, and wraps it in one :class:`StrategySegmenter`, so a study
compares the plain model and each strategy side by side on the same corrupted images. The
wrapper applies, in this order, per image:

1. ``preprocess`` steps in the order written (``flatfield``, ``denoise``; ``+`` combines);
2. ``normalise`` (``percentile``: percentiles ``p_low``/``p_high`` -> 0/255, unclipped;
   ``minmax``: min/max -> 0/255) - *before* the model's own normalisation, so an 8-bit-trained
   model sees its training gray-level range;
3. geometry: every factor ``rescale * s`` for ``s`` in ``scales`` (``rescale=auto``: the cell
   diameter ``cell_diameter`` over the measured one) and, with ``tta``, the 8 dihedral
   transforms; each view is segmented - probabilities where the model has ``predict_proba``,
   else its labels as binary foreground - mapped back to the input's size and orientation and
   merged (``merge=mean`` or ``max``); the merged map goes through the model's own threshold
   and components (:func:`cellrobust.models.postprocess.probabilities_to_labels`). With one
   view of factor 1 the model's own ``segment`` is called (identical labels).

Outputs stay (N, H, W) int32 labels of the input's size. Details, references and measured
accuracy: ``docs/strategies.md``; the operations: :mod:`._strategy_ops`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from cellrobust._validation import InputError, check_ndim, collect_errors, suggest
from cellrobust.segmenters import _strategy_ops as ops
from cellrobust.segmenters.protocol import provenance_of

__all__ = ["NORMALISATIONS", "PREPROCESS_STEPS", "STRATEGY_OPTIONS", "StrategyConfig",
           "StrategySegmenter", "split_strategy_options", "strategy_config"]

NORMALISATIONS = ("percentile", "minmax")
PREPROCESS_STEPS = ("flatfield", "denoise")
MERGES = ("mean", "max")
FLATFIELD_MODES = ("subtract", "divide")

#: Options valid for every kind, with their meaning (listed by ``cellrobust models``).
STRATEGY_OPTIONS: dict[str, str] = {
    "normalise": "percentile or minmax: rescale each image to 0..255 before the model "
                 "(default: none)",
    "p_low": "lower percentile mapped to to_low (default 1)",
    "p_high": "upper percentile mapped to to_high (default 99.8)",
    "to_low": "gray level the lower percentile (or the minimum) maps to (default 0); set "
              "to_low/to_high to the training images' percentiles to restore their range",
    "to_high": "gray level the upper percentile (or the maximum) maps to (default 255)",
    "preprocess": "flatfield, denoise or both in order (flatfield+denoise)",
    "bg_radius": "flat-field disc radius in px, above the cell radius (default 10)",
    "bg_mode": "flat-field correction: subtract (additive shading) or divide (default "
               "subtract)",
    "denoise_h": "non-local means strength as a multiple of the estimated noise sigma "
                 "(default 0.8)",
    "scales": "multi-scale inference factors joined by '+', e.g. 0.5+1+2 (default 1)",
    "merge": "how multi-scale / TTA foreground maps merge: mean or max (default mean)",
    "rescale": "one resize factor F (cells look F times larger) or auto (default 1)",
    "cell_diameter": "training cell diameter in px that rescale=auto aims at (default 13, "
                     "PSC)",
    "tta": "average the 8 dihedral transforms (default false; kinds with their own tta "
           "option keep it)",
}


@dataclass(frozen=True)
class StrategyConfig:
    """Validated strategy options (see the module docstring and :data:`STRATEGY_OPTIONS`).

    Attributes
    ----------
    normalise : {"percentile", "minmax"} or None
    p_low, p_high : float, percent, 0 <= p_low < p_high <= 100
    to_low, to_high : float, gray levels, to_low < to_high
        Where the normalisation maps its lower / upper reference (default 0 / 255).
    preprocess : tuple of {"flatfield", "denoise"}
        Applied in order.
    bg_radius : float, px > 0
    bg_mode : {"subtract", "divide"}
    denoise_h : float > 0
    scales : tuple of float > 0
    merge : {"mean", "max"}
    rescale : float > 0 or "auto"
    cell_diameter : float, px > 0
    tta : bool
    """

    normalise: str | None = None
    p_low: float = 1.0
    p_high: float = 99.8
    to_low: float = 0.0
    to_high: float = 255.0
    preprocess: tuple[str, ...] = ()
    bg_radius: float = 10.0
    bg_mode: str = "subtract"
    denoise_h: float = 0.8
    scales: tuple[float, ...] = (1.0,)
    merge: str = "mean"
    rescale: float | str = 1.0
    cell_diameter: float = 13.0
    tta: bool = False

    def __post_init__(self) -> None:
        collect_errors(self._errors(), "strategy options")

    def _errors(self) -> list[str]:
        errors = []
        for name, value, valid in (("normalise", self.normalise, (None, *NORMALISATIONS)),
                                   ("bg_mode", self.bg_mode, FLATFIELD_MODES),
                                   ("merge", self.merge, MERGES)):
            if value not in valid:
                shown = ", ".join(v for v in valid if v)
                errors.append(f"{name}: expected one of {shown}, got {value!r}"
                              f"{suggest(str(value), [v for v in valid if v])}")
        bad = [s for s in self.preprocess if s not in PREPROCESS_STEPS]
        if bad or not isinstance(self.preprocess, tuple):
            errors.append(f"preprocess: unknown step(s) {', '.join(map(repr, bad))}"
                          f"{suggest(str(bad[0]), PREPROCESS_STEPS) if bad else ''}; valid "
                          f"steps are {', '.join(PREPROCESS_STEPS)} (combine in order with "
                          "'+', e.g. flatfield+denoise)")
        if not (_number(self.p_low) and _number(self.p_high)
                and 0 <= self.p_low < self.p_high <= 100):
            errors.append(f"p_low/p_high: expected 0 <= p_low < p_high <= 100 (percent), got "
                          f"p_low={self.p_low!r}, p_high={self.p_high!r}")
        if not (_number(self.to_low) and _number(self.to_high) and self.to_low < self.to_high):
            errors.append(f"to_low/to_high: expected gray levels with to_low < to_high, got "
                          f"to_low={self.to_low!r}, to_high={self.to_high!r}")
        for name in ("bg_radius", "denoise_h", "cell_diameter"):
            if not _positive(getattr(self, name)):
                errors.append(f"{name}: expected a positive number, got "
                              f"{getattr(self, name)!r}")
        if not self.scales or not all(_positive(s) for s in self.scales):
            errors.append(f"scales: expected positive factors joined by '+' (e.g. 0.5+1+2), "
                          f"got {'+'.join(map(str, self.scales)) or 'nothing'}")
        if self.rescale != "auto" and not _positive(self.rescale):
            errors.append(f"rescale: expected a positive factor or 'auto', got "
                          f"{self.rescale!r}")
        if not isinstance(self.tta, bool):
            errors.append(f"tta: expected true or false, got {self.tta!r}")
        return errors

    @property
    def geometric(self) -> bool:
        """Whether the model sees other views than the image itself (scale or TTA)."""
        return self.tta or self.rescale != 1.0 or tuple(self.scales) != (1.0,)

    def to_dict(self) -> dict[str, Any]:
        """The options as plain JSON types (recorded in ``provenance()["strategies"]``)."""
        data = asdict(self)
        data["preprocess"], data["scales"] = list(self.preprocess), list(self.scales)
        return data


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def _positive(value) -> bool:
    return _number(value) and value > 0


def _steps(value) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value)
    return tuple(s.strip() for s in str(value).split("+") if s.strip())


def _factors(value) -> tuple:
    items = value if isinstance(value, (list, tuple)) else str(value).split("+")
    out = []
    for item in items:
        try:
            out.append(float(item) if not isinstance(item, bool) else item)
        except (TypeError, ValueError):
            out.append(item)
    return tuple(out)


def strategy_config(options: dict[str, Any]) -> StrategyConfig:
    """A :class:`StrategyConfig` from spec options (``preprocess``/``scales`` as ``a+b``
    text or lists; numbers as :func:`cellrobust._validation.parse_scalar` gives them)."""
    values = dict(options)
    if "preprocess" in values:
        values["preprocess"] = _steps(values["preprocess"])
    if "scales" in values:
        values["scales"] = _factors(values["scales"])
    if _number(values.get("rescale")):
        values["rescale"] = float(values["rescale"])
    return StrategyConfig(**values)


def split_strategy_options(options: dict[str, Any], kind_options) -> tuple[dict, dict]:
    """``(kind options, strategy options)``: every :data:`STRATEGY_OPTIONS` key goes to the
    strategy unless the kind declares the same option itself (the U-Net's own ``tta``)."""
    own = set(kind_options or ())
    strategy = {k: v for k, v in options.items() if k in STRATEGY_OPTIONS and k not in own}
    return {k: v for k, v in options.items() if k not in strategy}, strategy


class StrategySegmenter:
    """A segmenter behind test-time strategies (see the module docstring).

    Parameters
    ----------
    inner : Segmenter
        The model as built from its kind's options.
    config : StrategyConfig
    name : str, optional
        Display name (default: the inner segmenter's).
    """

    def __init__(self, inner, config: StrategyConfig, *, name: str | None = None) -> None:
        self.inner = inner
        self.config = config
        self.name = name or getattr(inner, "name", "segmenter")
        if callable(getattr(inner, "predict_proba", None)):
            self.predict_proba = self._predict_proba  # probability models only

    def __repr__(self) -> str:
        return f"StrategySegmenter({self.inner!r}, {self.config!r})"

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """Preprocessing and normalisation of an (N, H, W) stack (float32), no geometry."""
        c = self.config
        out = np.empty(images.shape, dtype=np.float32)
        for i, image in enumerate(np.asarray(images, dtype=np.float32)):
            for step in c.preprocess:
                image = (ops.flatfield(image, c.bg_radius, mode=c.bg_mode) if step == "flatfield"
                         else ops.denoise_nlm(image, c.denoise_h))
            target = (float(c.to_low), float(c.to_high))
            if c.normalise == "percentile":
                image = ops.percentile_normalise(image, c.p_low, c.p_high, to=target)
            elif c.normalise == "minmax":
                image = ops.minmax_normalise(image, to=target)
            out[i] = image
        return out

    def segment(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) gray levels -> (N, H, W) int32 instance labels."""
        from cellrobust.models.postprocess import probabilities_to_labels

        x = self.prepare(_stack(images))
        if not self.config.geometric:
            return np.asarray(self.inner.segment(x)).astype(np.int32)
        return probabilities_to_labels(self._merged(x), **_post_options(self.inner))

    def _predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) gray levels -> (N, H, W) float32 merged foreground probabilities."""
        x = self.prepare(_stack(images))
        if not self.config.geometric:
            return np.asarray(self.inner.predict_proba(x), dtype=np.float32)
        return self._merged(x)

    def _merged(self, x: np.ndarray) -> np.ndarray:
        if self.config.rescale != "auto":
            return self._views(x, float(self.config.rescale))
        return np.concatenate([self._views(x[i:i + 1], self.auto_factor(x[i]))
                               for i in range(len(x))])

    def auto_factor(self, image: np.ndarray) -> float:
        """``cell_diameter / measured diameter`` of one prepared image, clipped to
        :data:`~._strategy_ops.AUTO_LIMITS`; 1 when no cell scale is found."""
        measured = ops.cell_diameter_px(image)
        if not math.isfinite(measured) or measured <= 0:
            return 1.0
        return float(np.clip(self.config.cell_diameter / measured, *ops.AUTO_LIMITS))

    def _views(self, x: np.ndarray, rescale: float) -> np.ndarray:
        """Merged foreground of every (scale, dihedral) view, at the input's size."""
        c = self.config
        shape = x.shape[1:]
        transforms = ops.DIHEDRAL if c.tta else ((0, False),)
        merged = None
        for s in c.scales:
            scaled = ops.resize(x, ops.scaled_shape(shape, rescale * s))
            for k, flip in transforms:
                fg = ops.undo_dihedral(self._foreground(ops.dihedral(scaled, k, flip)), k, flip)
                fg = ops.resize(fg, shape, probabilities=True)
                merged = fg if merged is None else (merged + fg if c.merge == "mean"
                                                    else np.maximum(merged, fg))
        n_views = len(c.scales) * len(transforms)
        return (merged / n_views if c.merge == "mean" else merged).astype(np.float32)

    def _foreground(self, x: np.ndarray) -> np.ndarray:
        if callable(getattr(self.inner, "predict_proba", None)):
            return np.asarray(self.inner.predict_proba(x), dtype=np.float32)
        return (np.asarray(self.inner.segment(x)) > 0).astype(np.float32)

    def provenance(self) -> dict:
        """The model's provenance plus ``strategies`` (the resolved options and their order)."""
        record = dict(provenance_of(self.inner))
        order = [*self.config.preprocess, *(["normalise"] if self.config.normalise else []),
                 *(["multiscale"] if self.config.geometric else [])]
        record["strategies"] = {**self.config.to_dict(), "order": order}
        return record


def _stack(images) -> np.ndarray:
    arr = np.asarray(images)
    check_ndim("images", arr, (3,), what="(N, H, W) gray levels")
    return arr


def _post_options(inner) -> dict[str, Any]:
    """The inner model's own threshold and component options (its attributes or its
    ``config``'s), so the merged map becomes cells the way the model's would."""
    names = ("threshold", "connectivity", "fill_holes", "min_size", "watershed")
    options = getattr(inner, "options", None)
    sources = (_attributes(inner), _attributes(getattr(inner, "config", None)),
               options if isinstance(options, dict) else {})
    out = {}
    for name in names:
        value = next((src[name] for src in sources if src.get(name) is not None), None)
        if value is not None:
            out[name] = value
    out.setdefault("threshold", 0.5)
    return out


def _attributes(obj) -> dict[str, Any]:
    return dict(vars(obj)) if obj is not None and hasattr(obj, "__dict__") else {}


def _known() -> set[str]:  # the dataclass fields are exactly the strategy options
    return {f.name for f in fields(StrategyConfig)}


if _known() != set(STRATEGY_OPTIONS):  # pragma: no cover - a development error, caught early
    raise InputError(f"strategies: STRATEGY_OPTIONS {sorted(STRATEGY_OPTIONS)} and "
                     f"StrategyConfig fields {sorted(_known())} differ")
