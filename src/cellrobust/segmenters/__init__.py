"""Segmenters: one protocol for cellrobust U-Nets, external models and classical baselines.

Every command names segmenters in one grammar, ``[NAME=][KIND:]TARGET[,KEY=VALUE...]``
(:mod:`.spec`); :func:`build_segmenter` turns a spec into a :class:`Segmenter` through the kind's
adapter (:mod:`.registry` lists the kinds, what each accepts and needs). Each adapter owns its
model's contract - normalisation, axes, size multiple, halo, output kind - and reports its
provenance (kind, file SHA-256, options, library versions).

>>> from cellrobust.segmenters import build_segmenter, parse_spec
>>> parse_spec("dog=dog_otsu,sigma_low=4.5").options
{'sigma_low': 4.5}
>>> build_segmenter("otsu").name
'otsu'
"""

from __future__ import annotations

from cellrobust.segmenters.baselines import (
    BASELINES,
    ClassicalConfig,
    ClassicalSegmenter,
    build_baseline,
    calibrate_dog_sigma,
    estimate_noise_sigma,
    to_uint8,
)
from cellrobust.segmenters.protocol import Segmenter, file_sha256, provenance_of
from cellrobust.segmenters.registry import (
    Kind,
    build_segmenter,
    detect_kind,
    get_kind,
    kind_names,
    missing_requirements,
)
from cellrobust.segmenters.spec import SegmenterSpec, parse_spec

__all__ = [
    "BASELINES", "ClassicalConfig", "ClassicalSegmenter", "Kind", "Segmenter", "SegmenterSpec",
    "build_baseline", "build_segmenter", "calibrate_dog_sigma", "detect_kind",
    "estimate_noise_sigma", "file_sha256", "get_kind", "get_segmenter", "kind_names",
    "missing_requirements", "parse_spec", "provenance_of", "to_uint8",
]


def get_segmenter(spec, *, allow_code: bool = False, **options) -> Segmenter:
    """A segmenter from a spec, with extra ``options`` merged into the spec's own.

    Parameters
    ----------
    spec : str, os.PathLike, SegmenterSpec or Segmenter
        See :func:`build_segmenter`; a segmenter object is returned as is.
    allow_code : bool
        Allow ``py:`` specs (they import and run Python code).
    **options
        Kind options (e.g. ``sigma_low=4.5`` for a baseline, ``tta=True`` for a checkpoint).
    """
    if not isinstance(spec, (str, SegmenterSpec)) and hasattr(spec, "segment") \
            and not hasattr(spec, "__fspath__"):
        return spec
    parsed = spec if isinstance(spec, SegmenterSpec) else parse_spec(str(spec))
    if options:
        parsed = SegmenterSpec(parsed.name, parsed.spec, parsed.kind, parsed.target,
                               {**parsed.options, **options})
    return build_segmenter(parsed, allow_code=allow_code)
