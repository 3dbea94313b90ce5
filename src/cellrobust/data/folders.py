"""Reader for plain folders of images and masks paired by file stem.

Two layouts are recognised:

* **two sub-folders** — images in one of ``images/``, ``image/``, ``imgs/``, ``img/``, ``raw/``,
  ``inputs/``; masks in one of ``masks/``, ``mask/``, ``labels/``, ``label/``, ``gt/``,
  ``annotations/``, ``outputs/`` (the first present, with a warning when several are; choose one
  with ``masks="labels"`` or any sub-folder name); ``images/a01.tif`` pairs with
  ``masks/a01.tif`` (or ``masks/a01_mask.png``);
* **one folder** — a file whose name carries a mask word (``mask``, ``masks``, ``label``,
  ``labels``, ``seg``, ``gt``) as a separate token is a mask, every other image file an image;
  ``cell01.tif`` pairs with ``cell01_mask.tif``, ``img2d.tif`` with ``mask2d.tif``.

The pairing key is the lower-case stem with one image word (``img``, ``image``, ``raw``,
``input``) or mask word removed. Every unpaired file is listed at once in the error. Masks may be
binary (instances = 8-connected components, marked approximate) or instance labels (relabelled
sequentially); see :func:`cellrobust.data._convert.to_labels`.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from cellrobust._validation import DataError, InputError
from cellrobust.data._layout import image_files, reject_options, unpaired_error
from cellrobust.data._base import Dataset, Entry, Reader

NAME = "folders"
DESCRIPTION = (
    "plain folders: images/ + masks/ (or labels/, gt/, ..., or a chosen mask folder) "
    "sub-folders paired by stem, or one folder "
    "with image files and *_mask.* (mask*, *_labels.*) files paired by stem"
)
IMAGE_DIRS = ("images", "image", "imgs", "img", "raw", "inputs")
MASK_DIRS = ("masks", "mask", "labels", "label", "gt", "annotations", "outputs")
GROUND_TRUTH = "gt"
_SEP = r"[_\-. ]"
_MASK_WORD = re.compile(rf"(?:(?<=^)|(?<={_SEP}))(masks?|labels?|seg|gt)(?=$|{_SEP}|\d)")
_IMAGE_WORD = re.compile(rf"(?:(?<=^)|(?<={_SEP}))(img|image|raw|input)(?=$|{_SEP}|\d)")


def pair_key(stem: str) -> str:
    """The pairing key of a file stem (lower case, one image/mask word removed)."""
    low = stem.lower()
    for word in (_MASK_WORD, _IMAGE_WORD):
        low, n = word.subn("", low, count=1)
        if n:
            break
    low = re.sub(rf"{_SEP}{{2,}}", "_", low)
    return low.strip("_-. ") or stem.lower()


def is_mask_name(stem: str) -> bool:
    """True when a file stem carries a mask word as a separate token."""
    return _MASK_WORD.search(stem.lower()) is not None


def _image_dir(path: Path) -> Path | None:
    return next((path / d for d in IMAGE_DIRS if image_files(path / d)), None)


def _mask_dirs(path: Path) -> list[Path]:
    return [path / d for d in MASK_DIRS if image_files(path / d)]


def _flat(path: Path) -> tuple[list[Path], list[Path]]:
    files = image_files(path)
    masks = [f for f in files if is_mask_name(f.stem)]
    return [f for f in files if f not in masks], masks


def can_read(path: Path) -> bool:
    """True for a folder with image + mask sub-folders, or with image and mask files."""
    if not path.is_dir():
        return False
    if _image_dir(path) and _mask_dirs(path):
        return True
    images, masks = _flat(path)
    return bool(images) and bool(masks)


def read(path: Path, *, masks: str | None = None, **options) -> Dataset:
    """Build the lazy :class:`~cellrobust.data.Dataset`, pairing images and masks by stem.

    ``masks`` names the mask sub-folder (default: the first of :data:`MASK_DIRS` present;
    ``"gt"``, the ground truth of every layout, is the ``gt/`` folder when there is one and the
    default folder otherwise).
    """
    reject_options(NAME, options, ("masks",))
    images, mask_files, mask_dir = _files(path, masks)
    by_image, by_mask = _index(path, images), _index(path, mask_files)
    unpaired = [by_image[k] for k in by_image.keys() - by_mask.keys()]
    unpaired += [by_mask[k] for k in by_mask.keys() - by_image.keys()]
    if unpaired:
        raise unpaired_error(path, "unpaired files", unpaired,
                             "every image to have a mask with the same stem and vice versa")
    meta = {"format": NAME, **({"mask_folder": mask_dir.name} if mask_dir else {})}
    entries = [Entry(name=f"{path.name}/{by_image[k].stem}", image=by_image[k], mask=by_mask[k],
                     mask_kind="auto", meta=meta)
               for k in sorted(by_image)]
    return Dataset(entries, format=NAME, path=path)


def _files(path: Path, masks: str | None) -> tuple[list[Path], list[Path], Path | None]:
    """(image files, mask files, mask folder or None for the one-folder layout)."""
    mask_dir = _chosen_mask_dir(path, masks)
    if mask_dir is None:
        return *_flat(path), None
    image_dir = _image_dir(path)
    images = image_files(image_dir) if image_dir else _flat(path)[0]
    return images, image_files(mask_dir), mask_dir


def _chosen_mask_dir(path: Path, masks: str | None) -> Path | None:
    if masks == GROUND_TRUTH and not (path / masks).is_dir():
        masks = None  # "gt", the ground truth of every layout: here the detected mask folder
    if masks is not None:
        if image_files(path / masks):
            return path / masks
        found = sorted(d.name for d in path.iterdir() if d.is_dir() and image_files(d))
        raise InputError(
            f"masks: {path} has no sub-folder {masks!r} holding images; expected the name of the "
            f"mask folder, found: {', '.join(found) or 'no sub-folder with images'}"
        )
    candidates = _mask_dirs(path) if _image_dir(path) else []
    if len(candidates) > 1:
        warnings.warn(
            f"{path}: several mask folders ({', '.join(d.name for d in candidates)}); using "
            f"{candidates[0].name}/ - pass masks={candidates[1].name!r} to choose another",
            UserWarning, stacklevel=4,
        )
    return candidates[0] if candidates else None


def _index(root: Path, files: list[Path]) -> dict[str, Path]:
    table: dict[str, Path] = {}
    for file in files:
        key = pair_key(file.stem)
        if key in table:
            raise DataError(
                f"{root}: {table[key].name} and {file.name} have the same pairing stem {key!r}; "
                "expected one image and one mask per stem - rename or remove one"
            )
        table[key] = file
    return table


READERS = [Reader(NAME, DESCRIPTION, can_read, read)]
