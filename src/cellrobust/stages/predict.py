"""``cellrobust predict``: segment images from disk with any segmenter and write 16-bit label
TIFFs (CTC ``XX_RES/maskTTT.tif`` layout), keeping the input's pixel size.

For Cell Tracking Challenge input (``Sample.meta["format"] == "ctc"``) the labels of frame
``XX/tTTT.tif`` go to ``OUT/XX_RES/maskTTT.tif`` (same digits), the layout the official
SEG/DET evaluators read. Other inputs go to ``OUT/<sample name with / as __>.tif``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellrobust._io import IMAGE_SUFFIXES, read_image, write_tiff
from cellrobust._validation import DataError, InputError
from cellrobust.data.sample import Sample


def _samples(path: str | os.PathLike, split: str | None) -> list[Sample]:
    """Samples of a data set, or of bare images (a file or a folder without masks)."""
    source = Path(path)
    if source.is_file():
        return [Sample(image=_gray(read_image(source), source), labels=None, name=source.stem)]
    from cellrobust.data import open_dataset

    try:
        return list(open_dataset(source, split=split, unannotated="keep"))
    except DataError:
        files = sorted(f for f in source.glob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise
        return [Sample(image=_gray(read_image(f), f), labels=None, name=f.stem) for f in files]


def _gray(image: np.ndarray, file: Path | None = None) -> np.ndarray:
    """A gray image by the data readers' one rule (BT.709 luma for RGB)."""
    from cellrobust.data._convert import to_gray

    return to_gray(image, file=file)


def flat_name(name: str) -> str:
    """File stem of a sample name outside the CTC layout: ``"validation/t235"`` ->
    ``"validation__t235"`` (``evaluate --pred`` looks files up by the same rule)."""
    return name.replace("/", "__")


def output_path(sample: Sample, out_dir: str | os.PathLike) -> Path:
    """Where the labels of ``sample`` go (CTC ``XX_RES/maskTTT.tif`` for CTC frames)."""
    out = Path(out_dir)
    meta = sample.meta or {}
    if meta.get("format") == "ctc" and "sequence" in meta:
        stem = sample.name.rsplit("/", 1)[-1]
        digits = re.sub(r"\D", "", stem) or f"{int(meta.get('frame', 0)):03d}"
        return out / f"{meta['sequence']}_RES" / f"mask{digits}.tif"
    return out / (flat_name(sample.name) + ".tif")


def to_uint16(labels: np.ndarray, *, name: str) -> np.ndarray:
    """Labels as uint16 (the CTC format), refusing more than 65,535 objects."""
    top = int(labels.max()) if labels.size else 0
    if top > np.iinfo(np.uint16).max:
        raise DataError(f"{name}: {top} objects do not fit a 16-bit label image")
    return labels.astype(np.uint16)


@dataclass(frozen=True)
class PredictConfig:
    """One ``cellrobust predict`` run.

    Attributes
    ----------
    model : str
        A segmenter spec (:mod:`cellrobust.segmenters.spec`).
    data : path
        Image file, folder of images, or any data set :func:`cellrobust.data.open_dataset` reads.
    out : path
        Output folder; refused when it is or holds an input image.
    split : str, optional
    probabilities : bool
        Also write float32 probability maps (``*_prob.tif``; probability models only).
    overwrite, allow_code : bool
        Permissions of whoever starts the run.
    """

    model: str
    data: str | os.PathLike
    out: str | os.PathLike
    split: str | None = None
    probabilities: bool = False
    overwrite: bool = False
    allow_code: bool = False


def run(config: PredictConfig, *, progress: bool = False) -> list[Path]:
    """Build the segmenter and write the label images; return their paths."""
    from cellrobust.segmenters import build_segmenter
    from cellrobust.stages._outputs import guarded_output

    segmenter = build_segmenter(config.model, allow_code=config.allow_code)
    if config.probabilities and not callable(getattr(segmenter, "predict_proba", None)):
        raise InputError(f"probabilities: {segmenter.name} returns labels only, no "
                         "probability map; leave probability maps out")
    with guarded_output(config.out, owner="predict", inputs=(config.data,),
                        overwrite=config.overwrite) as out:
        return predict_to_files(segmenter, config.data, out, split=config.split,
                                probabilities=config.probabilities, progress=progress)


def _check_image(sample: Sample) -> np.ndarray:
    image = np.asarray(sample.image)
    if image.dtype == bool or image.dtype.kind not in "uif":
        raise DataError(f"{sample.name}: expected a gray-level image (integer or float), got "
                        f"dtype {image.dtype}; save intensities, not a mask")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise DataError(f"{sample.name}: the image holds NaN or infinite values; replace them "
                        "before segmenting")
    return image.astype(np.float32, copy=False)


def _resolution(sample: Sample) -> dict:
    """tifffile keywords keeping the input's pixel size (µm) in the label image."""
    size = (sample.meta or {}).get("pixel_size_um")
    if not size:
        return {}
    return {"resolution": (1.0 / float(size), 1.0 / float(size)),
            "metadata": {"unit": "um"}, "imagej": True}


def predict_to_files(segmenter, data: str | os.PathLike, out_dir: str | os.PathLike, *,
                     split: str | None = None, probabilities: bool = False,
                     progress: bool = False) -> list[Path]:
    """Segment every image of ``data`` one at a time and write label TIFFs; return the paths.

    Parameters
    ----------
    segmenter : Segmenter
        Any segmenter; probability maps need ``predict_proba``.
    data : path-like
        Image file, folder of images, or any data set :func:`cellrobust.data.open_dataset`
        reads.
    probabilities : bool
        Also write the float32 probability map beside each label image (``*_prob.tif``).
    """
    samples = _samples(data, split)
    written = []
    iterator = samples
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(samples, desc="predict", unit="image")
    targets = [output_path(s, out_dir) for s in samples]
    if len(set(targets)) != len(targets):
        raise InputError(f"out: two inputs would write the same label file in {out_dir}; "
                         "give inputs with distinct names")
    for sample, target in zip(iterator, targets):
        image = _check_image(sample)[None]
        labels = np.asarray(segmenter.segment(image))[0]
        written.append(write_tiff(target, to_uint16(labels, name=sample.name),
                                  **_resolution(sample)))
        if probabilities:
            prob = segmenter.predict_proba(image)[0]
            write_tiff(target.with_name(target.stem + "_prob.tif"), prob.astype(np.float32),
                       **_resolution(sample))
    return written


__all__ = ["PredictConfig", "flat_name", "output_path", "predict_to_files", "run", "to_uint16"]
