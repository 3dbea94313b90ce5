"""Segment images from disk and write 16-bit label TIFFs (CTC ``XX_RES/maskTTT.tif`` layout).

For Cell Tracking Challenge input (``Sample.meta["format"] == "ctc"``) the labels of frame
``XX/tTTT.tif`` go to ``OUT/XX_RES/maskTTT.tif`` (same digits), the layout the official
SEG/DET evaluators read. Other inputs go to ``OUT/<sample name with / as __>.tif``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from cellrobust._io import IMAGE_SUFFIXES, read_image, write_tiff
from cellrobust._validation import DataError
from cellrobust.data.sample import Sample


def _samples(path: str | os.PathLike, split: str | None) -> list[Sample]:
    """Samples of a data set, or of bare images (a file or a folder without masks)."""
    source = Path(path)
    if source.is_file():
        return [Sample(image=_gray(read_image(source)), labels=None, name=source.stem)]
    from cellrobust.data import open_dataset

    try:
        return list(open_dataset(source, split=split, unannotated="keep"))
    except DataError:
        files = sorted(f for f in source.glob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise
        return [Sample(image=_gray(read_image(f)), labels=None, name=f.stem) for f in files]


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        return image[..., :3].mean(axis=-1).astype(np.float32)
    if image.ndim != 2:
        raise DataError(f"expected a 2-D gray image, got shape {image.shape}")
    return image


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


def predict_to_files(segmenter, data: str | os.PathLike, out_dir: str | os.PathLike, *,
                     split: str | None = None, probabilities: bool = False,
                     progress: bool = False) -> list[Path]:
    """Segment every image of ``data`` one at a time and write label TIFFs; return the paths.

    Parameters
    ----------
    segmenter : Segmenter
        E.g. :class:`~cellrobust.models.inference.UNetSegmenter`.
    data : path-like
        Image file, folder of images, or any data set :func:`cellrobust.data.open_dataset`
        reads.
    probabilities : bool
        Also write the float32 probability map beside each label image (``*_prob.tif``).
    """
    from cellrobust.models.postprocess import probabilities_to_labels

    samples = _samples(data, split)
    written = []
    iterator = samples
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(samples, desc="predict", unit="image")
    for sample in iterator:
        prob = segmenter.predict_proba(np.asarray(sample.image, dtype=np.float32)[None])[0]
        labels = probabilities_to_labels(
            prob, threshold=segmenter.threshold, connectivity=segmenter.connectivity,
            fill_holes=segmenter.fill_holes, min_size=segmenter.min_size,
            watershed=segmenter.watershed)
        target = output_path(sample, out_dir)
        written.append(write_tiff(target, to_uint16(labels, name=sample.name)))
        if probabilities:
            write_tiff(target.with_name(target.stem + "_prob.tif"), prob.astype(np.float32))
    return written


__all__ = ["predict_to_files", "output_path", "flat_name", "to_uint16"]
