"""Reader for the DeepImageJ prepared layout (the PhC-C2DL-PSC U-Net training data).

Layout (Gómez-de-Mariscal et al., Nat. Methods 18:1192, 2021, the DeepImageJ U-Net notebook)::

    <root>/train/input/t150.tif        <root>/train/output/man_seg150.tif
    <root>/validation/input/...        <root>/validation/output/...
    <root>/test/input/...              <root>/test/output/...

The path may be the root (``split`` picks ``train``/``validation``/``test``; None reads every
split present, names prefixed by the split) or one split folder holding ``input``/``output``.
Masks are **binary** (0/1 in the PSC files: the upstream instance labels were merged), so
instances are derived as 8-connected components and ``meta["approximate_instances"]`` is True:
touching cells merge into one object. (Masks holding more than two values are taken as instance
labels and relabelled exactly.) The PSC input frames carry a single 0-valued pixel at
(0, 0), a marker from the preparation; images are returned as read, marker included (it sets the
frame minimum, which min-max normalisation therefore sees, as it did in the original pipeline).
"""

from __future__ import annotations

from pathlib import Path

from cellrobust._validation import InputError
from cellrobust.data._layout import image_files, numbered, reject_options, unpaired_error
from cellrobust.data._base import Dataset, Entry, Reader

NAME = "deepimagej"
DESCRIPTION = (
    "DeepImageJ prepared layout: {train,validation,test}/input/tNNN.tif with "
    "output/man_segNNN.tif binary masks (or one such split folder)"
)
SPLITS = ("train", "validation", "test")
IMAGE_RE = r"t(\d{3,4})\.tiff?"
MASK_RE = r"man_seg(\d{3,4})\.tiff?"


def _is_split_folder(path: Path) -> bool:
    return bool(image_files(path / "input", IMAGE_RE))


def can_read(path: Path) -> bool:
    """True for a split folder (``input/`` + ``output/``) or a root holding split folders."""
    if not path.is_dir():
        return False
    return _is_split_folder(path) or any(_is_split_folder(path / s) for s in SPLITS)


def read(path: Path, *, split: str | None = None, **options) -> Dataset:
    """Build the lazy :class:`~cellrobust.data.Dataset` of one split or of every split."""
    reject_options(NAME, options, ("split",))
    if _is_split_folder(path):
        if split is not None and split != path.name:
            raise InputError(f"split: {path} is the {path.name!r} split; got split={split!r}")
        return Dataset(_split_entries(path, path.name, prefix=path.name), format=NAME, path=path)
    present = [s for s in SPLITS if _is_split_folder(path / s)]
    if split is not None:
        if split not in present:
            raise InputError(
                f"split: {path} has no {split!r} split; available: {', '.join(present)}"
            )
        present = [split]
    entries = [e for s in present for e in _split_entries(path / s, s, prefix=s)]
    return Dataset(entries, format=NAME, path=path)


def _split_entries(folder: Path, split: str, *, prefix: str) -> list[Entry]:
    images = numbered(image_files(folder / "input", IMAGE_RE), IMAGE_RE)
    masks = numbered(image_files(folder / "output", MASK_RE), MASK_RE)
    orphans = [f for n, f in masks.items() if n not in images]
    if orphans:
        raise unpaired_error(folder, "masks without images", orphans,
                             "an input/tNNN.tif for every output/man_segNNN.tif")
    return [
        Entry(name=f"{prefix}/{image.stem}", image=image, mask=masks.get(number),
              mask_kind="auto",
              meta={"format": NAME, "split": split, "frame": number})
        for number, image in sorted(images.items())
    ]


READERS = [Reader(NAME, DESCRIPTION, can_read, read)]
