"""Corrupt image files on disk: the library side of ``cellrobust corrupt``.

Every input file gets its own random stream ``stream(seed, file stem, artefact, value)``, so a
file is corrupted identically whatever else is in the batch and in any process. Outputs:
``<out>/<stem>.tif`` (float32, or the input dtype with ``keep_dtype``), ``<out>/masks/
<stem>.tif`` (int32, geometric artefacts with masks) and ``<out>/params.json`` (the drawn
parameters per file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellrobust._io import IMAGE_SUFFIXES, read_image, write_json, write_tiff
from cellrobust._validation import DataError, InputError, collect_errors
from cellrobust.artefacts import apply, get, stream
from cellrobust.data.sample import Sample


@dataclass(frozen=True)
class CorruptJob:
    """What to corrupt and how (validated at construction; every problem reported at once).

    Exactly one of ``severity`` (parameter value in the artefact's unit) and ``level`` (0-5)
    is given. ``masks`` pairs mask files with ``inputs`` in order (files only).
    """

    inputs: tuple[str, ...]
    artefact: str
    out: str
    severity: float | None = None
    level: int | None = None
    masks: tuple[str, ...] = ()
    normalise: str | None = None
    keep_dtype: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    overwrite: bool = False

    def __post_init__(self) -> None:
        errors = []
        if not self.inputs:
            errors.append("inputs: at least one image file or folder is required")
        try:
            get(self.artefact)
        except InputError as exc:
            errors.append(str(exc))
        if (self.severity is None) == (self.level is None):
            errors.append("give exactly one of severity and level")
        if self.level is not None and not (isinstance(self.level, int) and 0 <= self.level <= 5):
            errors.append(f"level: expected an integer 0..5, got {self.level!r}")
        collect_errors(errors, "corrupt job")

    @property
    def value(self) -> float:
        """The parameter value (from ``severity`` or the ladder at ``level``)."""
        art = get(self.artefact)
        return art.check_value(self.severity) if self.level is None else art.value_at(self.level)


def expand_inputs(inputs: tuple[str, ...]) -> list[Path]:
    """Image files named directly or found (non-recursively, sorted) in named folders."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) found")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return files


def _to_dtype(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(image), info.min, info.max).astype(dtype)
    return image.astype(dtype)


def corrupt_files(job: CorruptJob) -> list[Path]:
    """Run ``job``; return the corrupted image paths written."""
    files = expand_inputs(job.inputs)
    if job.masks and len(job.masks) != len(files):
        raise InputError(f"masks: expected {len(files)} mask files (one per image), "
                         f"got {len(job.masks)}")
    from cellrobust._guard import unique_output_names
    from cellrobust.stages._outputs import guarded_output

    art, value = get(job.artefact), job.value
    names = unique_output_names(files)
    with guarded_output(job.out, owner="corrupt", inputs=[*files, *job.masks],
                        overwrite=job.overwrite) as out:
        return _corrupt_all(job, files, names, art, value, out)


def _corrupt_all(job: CorruptJob, files: list[Path], names: list[str], art, value: float,
                 out: Path) -> list[Path]:
    written, params = [], {}
    for i, file in enumerate(files):
        image = _gray_image(file)
        labels = _labels(job.masks[i]) if job.masks else None
        sample = Sample(image, labels, names[i], {"source": str(file)})
        corrupted, drawn = apply(sample, job.artefact, value,
                                 rng=stream(job.seed, file.stem, job.artefact, value),
                                 normalise=job.normalise, **job.options)
        if not np.isfinite(corrupted.image).all():
            raise DataError(f"{file}: {job.artefact} at {value:g} {art.unit} gives non-finite "
                            "values; use a smaller severity")
        result = _to_dtype(corrupted.image, image.dtype) if job.keep_dtype else corrupted.image
        written.append(write_tiff(out / f"{names[i]}.tif", result))
        if art.kind == "geometric" and corrupted.labels is not None:
            write_tiff(out / "masks" / f"{names[i]}.tif", corrupted.labels)
        params[str(file)] = drawn
    write_json(out / "params.json", {"artefact": job.artefact, "value": value,
                                     "seed": job.seed, "files": params})
    return written


def _gray_image(file: Path) -> np.ndarray:
    image = read_image(file)
    if image.ndim != 2:
        raise DataError(f"{file}: expected a 2-D gray-level image, got shape {image.shape}")
    if image.dtype == bool:
        raise DataError(f"{file}: expected gray levels, got a boolean mask; give the image")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise DataError(f"{file}: the image holds NaN or infinite values; replace them first")
    return image


def _labels(path) -> np.ndarray:
    mask = read_image(path)
    if mask.dtype.kind == "f" and not (np.isfinite(mask).all() and (mask == np.rint(mask)).all()):
        raise DataError(f"{path}: expected integer labels, found fractional or non-finite values")
    if mask.dtype.kind in "if" and mask.min() < 0:
        raise DataError(f"{path}: expected labels >= 0 (0 = background), found {mask.min()}")
    return mask.astype(np.int32)
