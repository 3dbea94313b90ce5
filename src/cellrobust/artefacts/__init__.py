"""Microscopy artefacts with graded severities in physical units.

Each artefact is a pure function of (sample, severity parameter, rng) registered by name; see
:func:`names`, :func:`get` and ``docs/artefacts.md``. Intensity artefacts never touch labels;
geometric ones transform labels with the same drawn parameters (nearest neighbour, instance
ids preserved).

>>> from cellrobust import artefacts
>>> corrupted, params = artefacts.apply(sample, "gaussian_noise", 20.0, rng=0)  # doctest: +SKIP
>>> corrupted, params = artefacts.apply_level(sample, "defocus", 3, rng=0)      # doctest: +SKIP

Conventions
-----------
- Output images are float32 of the input's shape. ``normalise`` is ``"minmax"`` (per image to
  [0, 255], the studies' convention), ``"clip"`` (keep the scale, clip to the input dtype's
  range) or ``"none"``; ``None`` uses the artefact's default (``minmax`` for the studies'
  ``illumination`` and ``gaussian_noise``, ``clip`` for all others).
- The identity value (level 0) adds no artefact and draws nothing from ``rng``; only the
  output normalisation is applied, so a curve's baseline is processed exactly like its other
  points (the studies min-max normalised at amplitude 0 too). With ``clip`` or ``none`` that
  is the input unchanged (as float32); with ``minmax`` it is the min-max rescaled input.
- Determinism: the same ``rng`` seed gives bit-identical output in any process; use
  :func:`stream` to derive the generator from (seed, sample name, artefact, severity).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from cellrobust._rng import as_rng, check_rng, derive_rng
from cellrobust._validation import InputError, check_choice, check_ndim
# Importing a family module registers its artefacts; the order is the listing order
# (the studies' four first).
from cellrobust.artefacts import illumination  # noqa: F401, I001
from cellrobust.artefacts import noise  # noqa: F401
from cellrobust.artefacts import geometry  # noqa: F401
from cellrobust.artefacts import blur  # noqa: F401
from cellrobust.artefacts import intensity  # noqa: F401
from cellrobust.artefacts import compression  # noqa: F401
from cellrobust.artefacts import debris  # noqa: F401
from cellrobust.artefacts import lines  # noqa: F401
from cellrobust.artefacts._streams import Streams, vectorised
from cellrobust.artefacts.normalise import MODES, normalise as _normalise
from cellrobust.artefacts.registry import Artefact, get, names
from cellrobust.data.sample import Sample

__all__ = ["Artefact", "apply", "apply_batch", "apply_level", "get", "names", "stream"]

_RESERVED = {"images", "labels", "value", "rng", "dtype"}


def stream(seed: int, sample_name: str, name: str, severity: float) -> np.random.Generator:
    """Process-stable generator for one (seed, sample, artefact, severity) combination."""
    return derive_rng(seed, str(sample_name), str(name), repr(float(severity)))


@functools.lru_cache(maxsize=None)
def _options_of(kernel) -> tuple[str, ...]:
    return tuple(p for p in inspect.signature(kernel).parameters if p not in _RESERVED)


def _check_options(art: Artefact, options: dict[str, Any]) -> None:
    allowed = _options_of(art.kernel)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise InputError(f"{art.name}: unknown option(s) {', '.join(unknown)}; valid options "
                         f"are: {valid}")


def _as_batch(images: Any, labels: Any) -> tuple[np.ndarray, np.ndarray | None]:
    arr = np.asarray(images)
    check_ndim("images", arr, (3,), what="a stack of gray-level images (N, H, W)")
    if not (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr)) or arr.dtype == bool:
        raise InputError(f"images: expected a real numeric array, got dtype {arr.dtype}")
    if labels is None:
        return arr, None
    lab = np.asarray(labels)
    if lab.shape != arr.shape:
        raise InputError(f"labels: expected shape {arr.shape} like the images, got {lab.shape}")
    return arr, lab


def _generator(art: Artefact, rng) -> np.random.Generator | None:
    """The kernel's generator; ``None`` (after validating ``rng``) for one that never draws."""
    if art.draws:
        return as_rng(rng)
    check_rng(rng)
    return None


def _run(art, images, labels, value, gen, mode, options):
    x = images if art.raw_input else images.astype(np.float32)  # else always a fresh copy
    if art.kind == "geometric":
        out, lab, params = art.kernel(x, labels, value, gen, dtype=images.dtype, **options)
    else:
        out, params = art.kernel(x, value, gen, labels=labels, dtype=images.dtype, **options)
        lab = labels
    out = _normalise(out, mode, dtype=images.dtype, clean=images)
    return out, lab, params


def _run_streams(art, images, labels, value, gens, mode, options):
    """Per-image streams: one vectorised kernel call on a :class:`Streams` batch where the
    artefact allows (rows bit-identical to :func:`apply` with ``gens[i]``), else image by image."""
    if not vectorised(art.name, options):
        parts = [_run(art, images[i:i + 1], None if labels is None else labels[i:i + 1], value,
                      g, mode, options) for i, g in enumerate(gens)]
        lab = None if labels is None else np.concatenate([p[1] for p in parts])
        return np.concatenate([p[0] for p in parts]), lab, [p[2][0] for p in parts]
    if mode != "clip" or np.issubdtype(images.dtype, np.integer):  # the same for every image
        return _run(art, images, labels, value, Streams(gens), mode, options)
    out, lab, params = _run(art, images, labels, value, Streams(gens), "none", options)
    for i in range(images.shape[0]):  # per image: the clip range of float input is per image
        out[i:i + 1] = _normalise(out[i:i + 1], mode, dtype=images.dtype,
                                  clean=images[i:i + 1])
    return out, lab, params


def apply_batch(
    images: np.ndarray,
    name: str,
    value: float,
    *,
    rng: int | np.random.Generator | Sequence[int | np.random.Generator] | None,
    labels: np.ndarray | None = None,
    normalise: str | None = None,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray | None, list[dict[str, Any]]]:
    """Corrupt a stack of images with artefact ``name`` at parameter ``value``.

    Parameters
    ----------
    images : ndarray, shape (N, H, W)
        Gray-level images (uint8, uint16 or float) in raw gray levels.
    name : str
        Registered artefact name (see :func:`names`).
    value : float
        Severity parameter in the artefact's unit (``get(name).unit``), within its limits.
    rng : int, Generator, or a sequence of N of them
        One stream for the whole batch, or one per image (then each image gets exactly what
        :func:`apply` would give it with that stream; the kernel still runs once on the whole
        stack where the artefact allows, drawing row i from stream i).
    labels : ndarray of int, shape (N, H, W), optional
        Instance labels; returned untouched for intensity artefacts, resampled for geometric
        ones. Some artefacts read them (``defocus`` relative to cell diameter, ``debris``).
    normalise : {"minmax", "clip", "none"}, optional
        Output normalisation; ``None`` = the artefact's ``default_normalise``.
    **options
        Artefact-specific options (e.g. ``psf="disk"`` for ``defocus``).

    Returns
    -------
    images : ndarray of float32, shape (N, H, W)
    labels : ndarray of int32, shape (N, H, W), or None
    params : list of N dicts
        The drawn parameters per image (JSON-serialisable), including the artefact name and
        the parameter value.
    """
    art = get(name)
    value = art.check_value(value)
    mode = art.default_normalise if normalise is None else check_choice(
        "normalise", normalise, MODES)
    _check_options(art, options)
    images, labels = _as_batch(images, labels)
    base = {"artefact": art.name, art.parameter: value}
    if value == art.identity:  # no artefact, no draw; only the output normalisation
        out = _normalise(images.astype(np.float32), mode, dtype=images.dtype, clean=images)
        return out, labels, [{**base, "normalise": mode, "identity": True}
                             for _ in range(images.shape[0])]
    if isinstance(rng, (list, tuple)):
        if len(rng) != images.shape[0]:
            raise InputError(f"rng: expected one generator per image ({images.shape[0]}), "
                             f"got {len(rng)}")
        out, lab, params = _run_streams(art, images, labels, value,
                                        [_generator(art, r) for r in rng], mode, options)
    else:
        out, lab, params = _run(art, images, labels, value, _generator(art, rng), mode, options)
    return out, lab, [{**base, "normalise": mode, **p} for p in params]


def apply(
    sample: Sample,
    name: str,
    value: float,
    *,
    rng: int | np.random.Generator | None,
    normalise: str | None = None,
    **options: Any,
) -> tuple[Sample, dict[str, Any]]:
    """Corrupt one :class:`~cellrobust.data.Sample`; return (new sample, drawn parameters).

    The image must be 2-D (H, W); see :func:`apply_batch` for the parameters. The returned
    sample has a float32 image, the same name, and ``meta["artefact"]`` set to the params.
    """
    if not isinstance(sample, Sample):
        raise InputError(f"sample: expected a cellrobust.data.Sample, got {type(sample).__name__}")
    check_ndim("sample.image", sample.image, (2,), what="one gray-level image (H, W)")
    labels = None if sample.labels is None else sample.labels[None]
    out, lab, params = apply_batch(sample.image[None], name, value, rng=rng, labels=labels,
                                   normalise=normalise, **options)
    new_labels = sample.labels if lab is None or lab is labels else lab[0]
    return sample.with_(image=out[0], labels=new_labels, meta={"artefact": params[0]}), params[0]


def apply_level(
    sample: Sample,
    name: str,
    level: int,
    *,
    rng: int | np.random.Generator | None,
    normalise: str | None = None,
    **options: Any,
) -> tuple[Sample, dict[str, Any]]:
    """:func:`apply` at severity ``level`` (0..5) of the artefact's ladder."""
    value = get(name).value_at(level)
    corrupted, params = apply(sample, name, value, rng=rng, normalise=normalise, **options)
    params["level"] = int(level)
    return corrupted, params
