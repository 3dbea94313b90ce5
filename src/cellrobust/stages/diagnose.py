"""Diagnose unlabelled images: the library side of ``cellrobust diagnose``.

Estimates every artefact's severity per image (:func:`cellrobust.diagnose.diagnose_images`),
and with a study folder predicts each segmenter's metric there, flags images outside a model's
trusted range and recommends a model. Writes into ``out``: ``diagnosis.csv`` (one row per image
x artefact), with a study ``predictions.csv``, ``recommendation.csv`` and
``diagnosis_curves.png``; ``diagnosis.md`` (a short page) and ``diagnosis.json`` (resolved
configuration, provenance: versions and the SHA-256 of every input file, the files written).
``out`` is refused when it holds files a previous diagnosis did not write (unless
``overwrite``) or when it would overwrite an input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cellrobust._io import IMAGE_SUFFIXES, read_image, write_json, write_text
from cellrobust._validation import DataError, InputError, check_range, collect_errors

OUTPUTS = ("diagnosis.csv", "predictions.csv", "recommendation.csv", "diagnosis_curves.png",
           "diagnosis.md", "diagnosis.json")
MAX_REFERENCE = 16


@dataclass(frozen=True)
class DiagnoseConfig:
    """What to diagnose (validated at construction; all problems reported at once).

    ``images``: files or folders of images; ``study``: a results folder holding
    ``results.parquet`` (or ``.csv``); ``reference``: clean images of the study (folder or
    files; at most 16 are read, sorted by name).
    """

    images: tuple[str, ...]
    out: str
    study: str | None = None
    reference: tuple[str, ...] = ()
    artefacts: tuple[str, ...] | None = None
    metric: str = "jaccard"
    tolerance: float = 0.9
    n_boot: int = 200
    seed: int = 0
    overwrite: bool = False

    def __post_init__(self) -> None:
        from cellrobust.diagnose import ESTIMATORS
        from cellrobust.diagnose.predict import METRICS

        errors = []
        if not self.images:
            errors.append("images: at least one image file or folder is required")
        unknown = sorted(set(self.artefacts or ()) - set(ESTIMATORS))
        if unknown:
            errors.append(f"artefacts: no estimator for {unknown}; estimators exist for "
                          f"{', '.join(ESTIMATORS)}")
        if self.metric not in METRICS:
            errors.append(f"metric: expected one of {METRICS}, got {self.metric!r}")
        if not (isinstance(self.tolerance, (int, float)) and 0 < self.tolerance <= 1):
            errors.append(f"tolerance: expected a fraction in (0, 1], got {self.tolerance!r}")
        if not (isinstance(self.n_boot, int) and self.n_boot >= 0):
            errors.append(f"n_boot: expected an integer >= 0, got {self.n_boot!r}")
        collect_errors(errors, "diagnose configuration")


def image_files(items) -> list[Path]:
    """Image files named by ``items`` (files, or folders: their image files, sorted)."""
    files = []
    for item in map(Path, items):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(f"{item}: no such file or folder; give image files or folders")
    if not files:
        raise DataError(f"{', '.join(map(str, items))}: no image files found (expected "
                        f"{', '.join(IMAGE_SUFFIXES)})")
    return files


def _gray(path: Path) -> np.ndarray:
    image = read_image(path)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3].mean(axis=-1)
    if image.ndim != 2:
        raise DataError(f"{path}: expected a 2-D gray-level image, got shape {image.shape}; "
                        "split stacks into single frames first")
    return image


def _names(files: list[Path]) -> list[str]:
    stems = [f.stem for f in files]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{f.parent.name}/{f.stem}" for f in files]


def check_output(out: Path, inputs: list[Path], *, overwrite: bool) -> None:
    """Refuse an output folder holding inputs, or files a diagnosis did not write."""
    resolved = out.resolve()
    for f in inputs:
        if f.resolve().parent == resolved or resolved in f.resolve().parents:
            raise InputError(f"out: {out} holds the input {f}; choose an output folder "
                             "outside the inputs")
    if not out.exists() or overwrite:
        return
    foreign = sorted(p.name for p in out.iterdir() if p.name not in OUTPUTS)
    if foreign:
        raise InputError(f"out: {out} already holds files this stage did not write "
                         f"({', '.join(foreign[:3])}...); choose an empty folder or overwrite")


def read_study(folder: str | Path) -> pd.DataFrame:
    """The results table of a study folder (``results.parquet``, else ``results.csv``)."""
    folder = Path(folder)
    for name, reader in (("results.parquet", pd.read_parquet), ("results.csv", pd.read_csv)):
        if (folder / name).is_file():
            return reader(folder / name)
    raise DataError(f"{folder}: no results.parquet or results.csv; give the folder a "
                    "cellrobust study or sweep wrote")


def run(config: DiagnoseConfig) -> Path:
    """Diagnose ``config.images``; return the path of ``diagnosis.md``."""
    from cellrobust import diagnose

    check_range("n_boot", config.n_boot, low=0)
    files = image_files(config.images)
    ref_files = image_files(config.reference)[:MAX_REFERENCE] if config.reference else []
    out = Path(config.out)
    check_output(out, files + ref_files, overwrite=config.overwrite)
    images = dict(zip(_names(files), (_gray(f) for f in files)))
    reference = diagnose.reference_stats([_gray(f) for f in ref_files], rng=config.seed) \
        if ref_files else None
    table = diagnose.diagnose_images(images, reference=reference, artefacts=config.artefacts,
                                     rng=config.seed, n_boot=config.n_boot)
    out.mkdir(parents=True, exist_ok=True)
    written = [_csv(table, out / "diagnosis.csv")]
    study = _study(config, table, out, written) if config.study else None
    written.append(write_text(out / "diagnosis.md", _markdown(table, study, config)))
    _record(config, files, ref_files, reference, out, written)
    return out / "diagnosis.md"


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    return write_text(path, frame.to_csv(index=False))


def _study(config, table, out, written):
    from cellrobust import diagnose
    from cellrobust.report.diagnose import curves_figure
    from cellrobust.stages._record import save_figure

    results = read_study(config.study)
    curves = diagnose.study_curves(results, metric=config.metric, n_boot=config.n_boot,
                                   seed=config.seed)
    preds = diagnose.predict(table, results, metric=config.metric,
                             tolerance=config.tolerance, n_boot=config.n_boot, seed=config.seed)
    if preds.empty:
        raise DataError(f"{config.study}: the study covers none of the diagnosed artefacts "
                        f"({', '.join(sorted(set(table['artefact'])))})")
    per_image, per_set = diagnose.recommend(preds)
    written += [_csv(preds, out / "predictions.csv"),
                _csv(per_image.merge(per_set[["segmenter", "recommended"]], how="left"),
                     out / "recommendation.csv")]
    fig = curves_figure(curves, preds, metric=config.metric)
    written.append(save_figure(fig, out / "diagnosis_curves.png", dpi=110))
    return preds, per_image, per_set


def _fmt(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{v:.3g}"


def _markdown(table, study, config) -> str:
    lines = ["# Diagnosis", ""]
    found = table[table["detected"]]
    lines.append(f"{table['image'].nunique()} image(s); {found['image'].nunique()} read as "
                 "corrupted (an estimate whose 95 % interval clears what clean reference "
                 "images read as).")
    lines += ["", "| image | artefact | estimate [95 % CI] | unit |", "|---|---|---|---|"]
    for _, r in found.iterrows():
        lines.append(f"| {r['image']} | {r['artefact']} | {_fmt(r['estimate'])} "
                     f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | {r['unit']} |")
    if study is not None:
        preds, per_image, per_set = study
        best = per_set.iloc[0]
        lines += ["", f"**Recommended for the set: {best['segmenter']}** — mean predicted "
                  f"{config.metric} {best['mean_predicted']:.3f} (per-image 95 % bounds "
                  f"averaged: {best['mean_ci_low']:.3f}-{best['mean_ci_high']:.3f}); "
                  f"{int(best['n_outside'])} image(s) outside its trusted range.", "",
                  "| image | model | predicted [95 % CI] | binding artefact | outside trusted |",
                  "|---|---|---|---|---|"]
        for _, r in per_image.iterrows():
            lines.append(f"| {r['image']} | {r['segmenter']} | {r['predicted']:.3f} "
                         f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | "
                         f"{r['binding_artefact']} | {'yes' if r['outside_trusted'] else ''} |")
        lines += ["", "![images on the study's curves](diagnosis_curves.png)"]
    lines += ["", "Files: `diagnosis.csv` (every estimate), "
              + ("`predictions.csv`, `recommendation.csv`, " if study is not None else "")
              + "`diagnosis.json` (configuration, provenance). Estimators and their accuracy: "
              "docs/diagnose.md.", ""]
    return "\n".join(lines)


def _record(config, files, ref_files, reference, out, written) -> None:
    from cellrobust.segmenters.protocol import file_sha256, library_versions
    from cellrobust.stages._record import provenance

    record = provenance("diagnose", config,
                        libraries=library_versions("scipy", "opencv-python",
                                                   "opencv-python-headless", "PyWavelets",
                                                   "pandas"),
                        inputs={str(f): file_sha256(f) for f in files},
                        reference_files={str(f): file_sha256(f) for f in ref_files},
                        reference_stats=None if reference is None else reference.to_dict(),
                        files=[p.name for p in written] + ["diagnosis.json"])
    write_json(out / "diagnosis.json", json.loads(json.dumps(record, default=float)))
