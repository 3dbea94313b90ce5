"""Models x artefacts x severities x images -> one tidy results table.

One *cell* = one artefact at one severity index. A cell corrupts every image once, with the
stream ``artefacts.stream(seed, sample name, artefact, severity value)`` - so every segmenter
sees the same corrupted image (a paired comparison), any row can be regenerated alone (also
with ``cellrobust corrupt``, which uses the same streams), and a severity value shared by two
sweeps (a ladder and a grid, say) gives the same image in both - then
segments the corrupted images with every segmenter in batches and counts, per image: pixel
TP/FP/FN/TN, instances matched at each IoU threshold, cell counts and the runtime.

A frame-level artefact (``cell_size``) does not corrupt the fixed patches: each of its cells
cuts its own ``patch_size`` windows from the evaluation frames with the stream
``artefacts.stream(seed, frame name, artefact, severity value)``, so the images (and how many there
are) differ between its severities while every segmenter still sees the same ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from cellrobust import table as schema
from cellrobust.metrics.counts import counts_row
from cellrobust._validation import InputError, check_choice, collect_errors
from cellrobust.segmenters.spec import SegmenterSpec, parse_spec

__all__ = [
    "CLEAN",
    "SegmenterSpec",
    "SweepConfig",
    "build_segmenters",
    "cell_list",
    "columns",
    "frame_level",
    "parse_segmenter",
    "resolve_severities",
    "run_cell",
]

CLEAN = schema.CLEAN

#: Kept for callers of the first version: the grammar's parser.
parse_segmenter = parse_spec

SEVERITY_MODES = ("ladder", "grid")


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep (validated; every invalid field reported at once).

    Attributes
    ----------
    segmenters : tuple of SegmenterSpec or str
        Segmenters to compare, in the grammar of :mod:`cellrobust.segmenters.spec`.
    artefacts : tuple of str
        Registered artefact names.
    severities : {"ladder", "grid"} or str or mapping
        ``"ladder"``: levels 0..5; ``"grid"``: the continuous curve grid; another string: a
        named preset of each artefact (e.g. ``"study"``); a mapping ``artefact -> values``
        (the identity is put first - it gives the clean rows, severity index 0).
    thresholds : tuple of float
        IoU thresholds for instance matching (columns ``tp@0.50`` ...).
    seed : int
        Root of the corruption streams.
    batch_size : int
        Images per segmenter call.
    normalise : str or None
        Artefact output normalisation (None: each artefact's default).
    connectivity : int
        Connectivity of cell counting (8 or 4).
    patch_size : int
        Side (px) of the windows that frame-level artefacts cut from the frames; use the
        evaluation patch size.
    clean_reference : bool
        Add the raw clean rows (artefact :data:`CLEAN`): each image as read, segmented once,
        the reference of every score. Severity index 0 of each artefact stays what that
        artefact's identity gives (the studies' min-max rescale for illumination and noise).
    """

    segmenters: tuple = ()
    artefacts: tuple[str, ...] = ()
    severities: object = "ladder"
    thresholds: tuple[float, ...] = schema.DEFAULT_THRESHOLDS
    seed: int = 0
    batch_size: int = 4
    normalise: str | None = None
    connectivity: int = 8
    patch_size: int = 256
    clean_reference: bool = True
    options: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        specs = tuple(s if isinstance(s, SegmenterSpec) else parse_spec(str(s))
                      for s in self.segmenters)
        object.__setattr__(self, "segmenters", specs)
        object.__setattr__(self, "artefacts", tuple(self.artefacts))
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        errors = []
        if not specs:
            errors.append("segmenters: empty selection, give at least one")
        if not self.artefacts:
            errors.append("artefacts: empty selection, give at least one")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            errors.append(f"segmenters: duplicate names {sorted(names)}; name them 'name=spec'")
        if not self.thresholds or not all(0 < t <= 1 for t in self.thresholds):
            errors.append(f"thresholds: expected values in (0, 1], got {self.thresholds}")
        if int(self.batch_size) < 1:
            errors.append(f"batch_size: expected >= 1, got {self.batch_size}")
        if int(self.patch_size) < 1:
            errors.append(f"patch_size: expected >= 1 px, got {self.patch_size}")
        if self.connectivity not in (4, 8):
            errors.append(f"connectivity: expected 4 or 8, got {self.connectivity}")
        collect_errors(errors, "sweep configuration")

    def describe(self) -> dict:
        """JSON-serialisable description (written next to the results)."""
        out = asdict(self)
        out["segmenters"] = [{"name": s.name, "spec": s.spec} for s in self.segmenters]
        out["severities"] = {k: list(v) for k, v in resolve_severities(self).items()}
        return out


def resolve_severities(config: SweepConfig) -> dict[str, tuple[float, ...]]:
    """Severity values per artefact (validated against each artefact's limits)."""
    from cellrobust import artefacts

    out, errors = {}, []
    for name in config.artefacts:
        art = artefacts.get(name)  # unknown names list the valid ones
        sev = config.severities
        if isinstance(sev, Mapping):
            values = tuple(sev.get(name, art.ladder))
        elif sev == "ladder":
            values = tuple(art.ladder)
        elif sev == "grid":
            values = tuple(art.grid)
        elif isinstance(sev, str) and sev in art.presets:
            values = tuple(art.presets[sev])
        else:
            valid = [*SEVERITY_MODES, *art.presets]
            check_choice(f"severities (for {name})", sev, valid)
        values = (art.identity, *(v for v in values if float(v) != art.identity))
        try:
            out[name] = tuple(art.check_value(v) for v in values)
        except InputError as exc:
            errors.append(str(exc))
        if not values:
            errors.append(f"severities for {name}: empty selection")
    collect_errors(errors, "severities")
    return out


def cell_list(config: SweepConfig) -> list[tuple[str, int]]:
    """Every (artefact, severity index) cell of the sweep, in a fixed order (the raw clean
    reference cell ``(CLEAN, 0)`` first when the config asks for it)."""
    sev = resolve_severities(config)
    cells = [(CLEAN, 0)] if config.clean_reference else []
    return cells + [(a, i) for a in config.artefacts for i in range(len(sev[a]))]


def columns(config: SweepConfig) -> list[str]:
    """The table's columns, in order."""
    return [*schema.BASE_COLUMNS, *schema.threshold_columns(config.thresholds)]


def build_segmenters(config: SweepConfig, *, allow_code: bool = False) -> dict[str, object]:
    """The sweep's segmenters, built once for one run (no process-wide cache: a checkpoint
    retrained at the same path is read afresh by the next sweep), under the measurement
    defaults (fp32 unless a spec sets ``precision``)."""
    from cellrobust.segmenters import build_segmenter
    from cellrobust.segmenters.registry import MEASUREMENT_DEFAULTS

    return {spec.name: build_segmenter(spec, allow_code=allow_code,
                                       defaults=MEASUREMENT_DEFAULTS)
            for spec in config.segmenters}


def _corrupt(samples, artefact: str, value: float, config: SweepConfig):
    """Corrupt every sample, one ``apply_batch`` per group of equal shape and dtype, with one
    stream per image (row i equals ``apply`` with ``stream(seed, name_i, artefact, value)``)."""
    out: list = [None] * len(samples)
    for group in _groups(samples).values():
        for i, item in zip(group, _corrupt_group([samples[i] for i in group], artefact, value,
                                                 config)):
            out[i] = item
    return out


def _groups(samples) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, s in enumerate(samples):
        image = np.asarray(s.image)
        key = (image.shape, image.dtype.str, s.labels is None)
        groups.setdefault(key, []).append(i)
    return groups


def _corrupt_group(samples, artefact: str, value: float, config: SweepConfig):
    from cellrobust import artefacts

    rngs = [artefacts.stream(config.seed, s.name, artefact, value) for s in samples]
    labels = None if samples[0].labels is None else np.stack([s.labels for s in samples])
    images, new_labels, params = artefacts.apply_batch(
        np.stack([np.asarray(s.image) for s in samples]), artefact, value, rng=rngs,
        labels=labels, normalise=config.normalise)
    moved = new_labels is not None and new_labels is not labels
    out = []
    for k, s in enumerate(samples):
        corrupted = s.with_(image=images[k], labels=new_labels[k] if moved else s.labels,
                            meta={"artefact": params[k]})
        out.append((corrupted, json.dumps(params[k], sort_keys=True, default=_jsonable)))
    return out


def _cut_from_frames(frames, art, value: float, config: SweepConfig):
    from cellrobust import artefacts

    if not frames:
        raise InputError(f"artefact {art.name!r} cuts its patches from whole frames, but the "
                         "sweep was given none; pass frames=... (cellrobust study and sweep "
                         "do) or use 'zoom' to scale the fixed patches")
    normalise = config.normalise or art.default_normalise
    out = []
    for frame in frames:
        rng = artefacts.stream(config.seed, frame.name, art.name, value)
        for crop, params in art.frame_kernel(frame, value, rng, size=int(config.patch_size),
                                             normalise=normalise):
            out.append((crop, json.dumps(params, sort_keys=True, default=_jsonable)))
    return out


def frame_level(config: SweepConfig) -> list[str]:
    """The artefacts of ``config`` that cut their patches from frames."""
    from cellrobust import artefacts

    return [a for a in config.artefacts if artefacts.get(a).frame_kernel is not None]


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _segment_all(segmenter, images: list[np.ndarray], batch_size: int):
    """Labels and per-image runtime, batching images of equal shape."""
    labels: list = [None] * len(images)
    runtime = np.zeros(len(images))
    order = sorted(range(len(images)), key=lambda i: images[i].shape)
    i = 0
    while i < len(order):
        shape = images[order[i]].shape
        batch = [j for j in order[i:i + batch_size] if images[j].shape == shape]
        stack = np.stack([images[j].astype(np.float32, copy=False) for j in batch])
        start = time.perf_counter()
        out = np.asarray(segmenter.segment(stack))
        elapsed = (time.perf_counter() - start) / len(batch)
        for k, j in enumerate(batch):
            labels[j], runtime[j] = out[k], elapsed
        i += len(batch)
    return labels, runtime


def _instances(sample) -> bool | None:
    """Whether a sample's labels are real instances (counted as labelled), from its meta."""
    approximate = (getattr(sample, "meta", None) or {}).get("approximate_instances")
    return None if approximate is None else not approximate


def _clean_images(samples):
    """The raw clean reference: every image as read (float32), nothing drawn."""
    params = json.dumps({"artefact": CLEAN}, sort_keys=True)
    return [(s.with_(image=np.asarray(s.image, dtype=np.float32)), params) for s in samples]


def _cell_images(config: SweepConfig, samples, artefact: str, value: float, frames):
    from cellrobust import artefacts

    if artefact == CLEAN:
        return _clean_images(samples), CLEAN
    art = artefacts.get(artefact)
    if art.frame_kernel is not None:
        return _cut_from_frames(frames, art, value, config), art.unit
    return _corrupt(samples, artefact, value, config), art.unit


def run_cell(config: SweepConfig, samples: Sequence, artefact: str, index: int, *,
             frames: Sequence | None = None, segmenters: Mapping | None = None,
             allow_code: bool = False) -> pd.DataFrame:
    """Compute every row of one cell (all segmenters x all images) and return them.

    ``samples`` are the fixed evaluation patches; ``frames`` the whole frames they came from,
    needed only by frame-level artefacts (:func:`frame_level`). ``segmenters`` (name ->
    segmenter, from :func:`build_segmenters`) are built here when not given.
    """
    value = 0.0 if artefact == CLEAN else resolve_severities(config)[artefact][index]
    corrupted, unit = _cell_images(config, samples, artefact, value, frames)
    if segmenters is None:
        segmenters = build_segmenters(config, allow_code=allow_code)
    images = [c.image for c, _ in corrupted]
    rows = []
    for spec in config.segmenters:
        labels, runtime = _segment_all(segmenters[spec.name], images, int(config.batch_size))
        for (c, params), pred, rt in zip(corrupted, labels, runtime):
            counts = counts_row(c.labels, pred, thresholds=config.thresholds,
                                       connectivity=config.connectivity,
                                       instances=_instances(c))
            rows.append({"segmenter": spec.name, "artefact": artefact, "severity_index": index,
                         "severity": float(value), "unit": unit, "sample": c.name,
                         "params": params, **counts, "runtime_s": float(rt)})
    return pd.DataFrame(rows, columns=columns(config))
