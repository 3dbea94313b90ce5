"""Summary statistics of a data set (what ``cellrobust data info`` prints).

Statistics are computed from the annotated frames: objects per frame (the number of instance
labels), foreground fraction (share of pixels with label > 0), and object areas in pixels
(percentiles 5/25/50/75/95 over every object of every frame). For binary masks (DeepImageJ
layout), objects are 8-connected components, so touching cells count as one. Whether instances
are approximate is decided per frame; the data set is called approximate only when every
described annotated frame is (``n_approximate`` counts them, the text says "mixed" otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cellrobust.data.sample import Sample

AREA_PERCENTILES = (5, 25, 50, 75, 95)


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`describe` measured (areas in pixels, fractions in [0, 1])."""

    path: str
    format: str
    n_frames: int
    n_annotated: int
    n_described: int
    shapes: list[tuple[int, int]]
    dtypes: list[str]
    intensity: dict[str, float]
    objects_per_frame: dict[str, float]
    foreground_fraction: dict[str, float]
    object_area_px: dict[str, float]
    approximate_instances: bool
    pixel_size_um: float | None = None
    n_approximate: int = 0
    n_annotated_described: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every field."""
        return asdict(self)

    def to_text(self) -> str:
        """Human-readable multi-line summary."""
        opf, fg, area = self.objects_per_frame, self.foreground_fraction, self.object_area_px
        lines = [
            f"path:                {self.path}",
            f"format:              {self.format}",
            f"frames:              {self.n_frames} ({self.n_annotated} annotated"
            + (f", {self.n_described} described)" if self.n_described < self.n_frames else ")"),
            f"image shape:         {', '.join(f'{h}x{w}' for h, w in self.shapes)}",
            f"image dtype:         {', '.join(self.dtypes)}",
            f"intensity:           min {self.intensity['min']:g}, mean "
            f"{self.intensity['mean']:.1f}, max {self.intensity['max']:g}",
        ]
        if opf:
            lines += [
                f"objects per frame:   median {opf['median']:g} (min {opf['min']:g}, "
                f"max {opf['max']:g}, mean {opf['mean']:.1f})",
                f"foreground fraction: mean {fg['mean']:.4f} "
                f"(min {fg['min']:.4f}, max {fg['max']:.4f})",
                "object area (px):    " + ", ".join(f"{k} {v:.0f}" for k, v in area.items()),
                f"instances:           {self._instances_text()}",
            ]
        if self.pixel_size_um:
            lines.append(f"pixel size:          {self.pixel_size_um:g} um")
        lines += [f"note:                {n}" for n in self.notes]
        return "\n".join(lines)

    def _instances_text(self) -> str:
        if self.approximate_instances:
            return "approximate (connected components of binary masks)"
        if self.n_approximate:
            return (f"mixed: {self.n_approximate} of {self.n_annotated_described} annotated "
                    "frames approximate "
                    "(binary masks), the others exact (instance masks)")
        return "exact (instance masks)"


def describe(
    dataset: Sequence[Sample] | str | os.PathLike,
    *,
    max_frames: int | None = None,
    **open_options: Any,
) -> DatasetInfo:
    """Measure a data set (a path is opened with :func:`~cellrobust.data.open_dataset`).

    Parameters
    ----------
    dataset : Dataset, sequence of Sample, or path
        What to describe; samples without labels count as frames but not as annotated.
    max_frames : int, optional
        Describe only the first ``max_frames`` frames (evenly spaced) - for quick looks.
    **open_options
        Passed to :func:`~cellrobust.data.open_dataset` when ``dataset`` is a path.
    """
    if isinstance(dataset, (str, os.PathLike)):
        from cellrobust.data.dataset import open_dataset

        dataset = open_dataset(dataset, **open_options)
    n_frames = len(dataset)
    positions = _positions(n_frames, max_frames)
    stats = _Accumulator()
    for i in positions:
        stats.add(dataset[i])
    return stats.result(dataset, n_frames, len(positions))


def _positions(n: int, max_frames: int | None) -> list[int]:
    if max_frames is None or max_frames >= n:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, max(1, int(max_frames))).round().astype(int).tolist()))


class _Accumulator:
    def __init__(self) -> None:
        self.shapes: set[tuple[int, int]] = set()
        self.dtypes: set[str] = set()
        self.lo, self.hi, self.means = np.inf, -np.inf, []
        self.counts, self.fg, self.areas = [], [], []
        self.n_annotated, self.n_approx = 0, 0
        self.pixel_size: float | None = None

    def add(self, sample: Sample) -> None:
        image = sample.image
        self.shapes.add(tuple(int(s) for s in image.shape[:2]))
        self.dtypes.add(str(image.dtype))
        self.lo, self.hi = min(self.lo, float(image.min())), max(self.hi, float(image.max()))
        self.means.append(float(image.mean()))
        self.pixel_size = self.pixel_size or sample.meta.get("pixel_size_um")
        if sample.labels is None:
            return
        self.n_annotated += 1
        self.n_approx += bool(sample.meta.get("approximate_instances", False))
        area = np.bincount(sample.labels.ravel())[1:]
        area = area[area > 0]
        self.counts.append(area.size)
        self.fg.append(float(area.sum()) / sample.labels.size)
        self.areas.append(area)

    def result(self, dataset: Any, n_frames: int, n_described: int) -> DatasetInfo:
        areas = np.concatenate(self.areas) if self.areas else np.zeros(0)
        notes = [] if self.n_annotated else ["no annotated frame: object statistics unavailable"]
        return DatasetInfo(
            path=str(getattr(dataset, "path", "")),
            format=str(getattr(dataset, "format", type(dataset).__name__)),
            n_frames=n_frames,
            n_annotated=_n_annotated(dataset, self.n_annotated, n_frames, n_described),
            n_described=n_described,
            shapes=sorted(self.shapes),
            dtypes=sorted(self.dtypes),
            intensity={"min": self.lo, "mean": float(np.mean(self.means)) if self.means else 0.0,
                       "max": self.hi},
            objects_per_frame=_summary(self.counts),
            foreground_fraction=_summary(self.fg),
            object_area_px={f"p{p}": float(np.percentile(areas, p)) for p in AREA_PERCENTILES}
            if areas.size else {},
            approximate_instances=0 < self.n_approx == self.n_annotated,
            pixel_size_um=self.pixel_size,
            n_approximate=self.n_approx,
            n_annotated_described=self.n_annotated,
            notes=notes,
        )


def _n_annotated(dataset: Any, counted: int, n_frames: int, n_described: int) -> int:
    known = getattr(dataset, "n_annotated", None)
    if isinstance(known, int):
        return known
    return counted


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values, dtype=float)
    return {"min": float(arr.min()), "median": float(np.median(arr)), "mean": float(arr.mean()),
            "max": float(arr.max())}
