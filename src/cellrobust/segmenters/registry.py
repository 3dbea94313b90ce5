"""Segmenter kinds: what each needs, accepts and builds; detection of a kind from a file.

Each adapter module defines one ``KIND = Kind(...)``; :data:`KIND_MODULES` lists them in
detection order. Modules import their heavy libraries (onnxruntime, cellpose, ...) only inside
``build``, so listing the kinds (``cellrobust models``) is cheap and a missing optional library
is one clear line naming the extra to install.
"""

from __future__ import annotations

import dataclasses

import importlib
import importlib.util
from pathlib import Path

from cellrobust._validation import DataError, InputError, suggest
from cellrobust.segmenters.kind import Kind
from cellrobust.segmenters.spec import SegmenterSpec, parse_spec

__all__ = ["KIND_MODULES", "Kind", "build_segmenter", "detect_kind", "get_kind", "kind_names",
           "missing_requirements"]

#: kind -> module defining ``KIND``, in the order targets are tried for detection.
KIND_MODULES: dict[str, str] = {
    "baseline": "cellrobust.segmenters.baselines",
    "unet": "cellrobust.segmenters.unet",
    "torchscript": "cellrobust.segmenters.torchscript",
    "onnx": "cellrobust.segmenters.onnx",
    "bioimageio": "cellrobust.segmenters.bioimageio",
    "stardist": "cellrobust.segmenters.stardist",
    "cellpose": "cellrobust.segmenters.cellpose",
    "py": "cellrobust.segmenters.pyfactory",
}


def kind_names() -> list[str]:
    return list(KIND_MODULES)


def get_kind(name: str) -> Kind:
    """The :class:`Kind` called ``name`` (unknown names list the valid ones)."""
    if name not in KIND_MODULES:
        raise InputError(f"segmenter kind {name!r} is unknown{suggest(name, KIND_MODULES)}; "
                         f"valid kinds are: {', '.join(KIND_MODULES)}")
    return importlib.import_module(KIND_MODULES[name]).KIND


def missing_requirements(kind: Kind) -> list[str]:
    """The modules of ``kind.requires`` that cannot be imported here."""
    return [m for m in kind.requires if importlib.util.find_spec(m.split(".")[0]) is None]


def detect_kind(target: str) -> str:
    """The kind of an unprefixed target: a baseline name, else the first kind whose ``detect``
    recognises the existing file or folder.

    Raises
    ------
    InputError
        The target is no baseline and no file or folder, or no kind recognises it.
    """
    from cellrobust.segmenters.baselines import BASELINES
    from cellrobust.segmenters.zoo import ZOO

    if target in ZOO:
        return "unet"

    if target in BASELINES:
        return "baseline"
    path = Path(target)
    if not path.exists():
        raise InputError(f"segmenter target {target!r} not found: no such file or folder, "
                         f"and not a baseline{suggest(target, BASELINES)} "
                         f"({', '.join(BASELINES)}); give an existing model file or "
                         "KIND:TARGET (see 'cellrobust models')")
    for name in KIND_MODULES:
        kind = get_kind(name)
        if kind.detect is not None and kind.detect(path):
            return name
    raise InputError(f"segmenter target {target!r}: cannot tell which kind of model this is; "
                     f"prefix it with one of {', '.join(KIND_MODULES)}, e.g. onnx:{target}")


#: Options under which scores are measured (sweep, study, evaluate) unless the spec sets them:
#: fp32 arithmetic, so a results table does not depend on whether the CPU has native bf16
#: (a bf16 path agrees on >= 99.9 % of pixels, which still moves pixel counts).
MEASUREMENT_DEFAULTS = {"precision": "fp32"}


def build_segmenter(spec, *, allow_code: bool = False, defaults=None):
    """Build the segmenter a spec describes.

    Parameters
    ----------
    spec : str, SegmenterSpec or Segmenter
        Text in the grammar of :mod:`cellrobust.segmenters.spec`, a parsed spec, or a
        segmenter object (returned as is).
    allow_code : bool
        Allow kinds that import and run Python code (``py:``). Off by default: a spec read from
        a configuration file must not run code its reader did not ask for.
    defaults : mapping, optional
        Options used where the spec does not set them and the kind accepts them (e.g.
        :data:`MEASUREMENT_DEFAULTS`); the spec's text, name and fingerprint are unchanged.

    Raises
    ------
    InputError
        Unknown kind, undetectable target, unknown options, code not allowed, or a missing
        optional library (naming the extra that installs it).
    DataError
        The model file exists but cannot be loaded.
    """
    if not isinstance(spec, (str, SegmenterSpec)):
        return spec
    spec = spec if isinstance(spec, SegmenterSpec) else parse_spec(spec)
    kind = get_kind(spec.kind or detect_kind(spec.target))
    if kind.runs_code and not allow_code:
        raise InputError(f"segmenter {spec}: a {kind.name!r} spec imports and runs Python "
                         "code; it runs only when code is allowed explicitly by whoever "
                         "starts the run: add --allow-code to the command (in Python: "
                         "allow_code=True); a configuration file never allows it")
    missing = missing_requirements(kind)
    if missing:
        hint = f"pip install 'cellrobust[{kind.extra}]'" if kind.extra else "install them"
        raise InputError(f"segmenter {spec}: the {kind.name!r} kind needs "
                         f"{', '.join(missing)}, which is not installed; {hint}")
    spec, strategy = _split_strategies(spec, kind)
    _check_options(spec, kind)
    extra = {k: v for k, v in (defaults or {}).items()  # options None: any (a factory's)
             if k in (kind.options or ()) and k not in spec.options}
    if extra:
        spec = dataclasses.replace(spec, options={**spec.options, **extra})
    segmenter = kind.build(spec)
    if getattr(segmenter, "segment", None) is None:
        raise DataError(f"segmenter {spec}: built a {type(segmenter).__name__}, which has no "
                        "segment(images) method")
    if strategy is not None:
        from cellrobust.segmenters.strategies import StrategySegmenter

        segmenter = StrategySegmenter(segmenter, strategy, name=spec.name)
    return segmenter


def _split_strategies(spec: SegmenterSpec, kind: Kind):
    """The spec with the strategy options (valid for every kind) removed, and their validated
    :class:`~cellrobust.segmenters.strategies.StrategyConfig` (None when there are none)."""
    from cellrobust.segmenters.strategies import split_strategy_options, strategy_config

    own, options = split_strategy_options(spec.options, kind.options)
    if not options:
        return spec, None
    try:
        config = strategy_config(options)
    except InputError as exc:
        raise InputError(f"segmenter {spec}: {exc}") from None
    except TypeError as exc:  # a value of the wrong type reached the dataclass
        raise InputError(f"segmenter {spec}: invalid strategy options: {exc}") from None
    return SegmenterSpec(spec.name, spec.spec, spec.kind, spec.target, own), config


def _check_options(spec: SegmenterSpec, kind: Kind) -> None:
    if kind.options is None:
        return
    unknown = sorted(set(spec.options) - set(kind.options))
    if unknown:
        from cellrobust.segmenters.strategies import STRATEGY_OPTIONS

        valid = ", ".join(sorted(kind.options)) or "none"
        hint = suggest(unknown[0], [*kind.options, *STRATEGY_OPTIONS])
        raise InputError(f"segmenter {spec}: unknown option(s) {', '.join(unknown)} for the "
                         f"{kind.name!r} kind{hint}; valid options are: {valid}, plus the "
                         f"strategy options of every kind: {', '.join(STRATEGY_OPTIONS)}")
