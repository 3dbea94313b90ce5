"""Readers for the Cellpose / Neuromatch Academy formats.

``cellpose-npz`` — the Neuromatch Academy cell-segmentation files ``cells_train.npz`` and
``cells_test.npz`` (https://osf.io/z3h78, https://osf.io/ft5p3). They store a pickled dict
under ``arr_0`` with ``imgs`` (N, H, W, 2) and ``masks`` (N, H, W) instance labels; a plain npz
with arrays ``imgs`` and ``masks`` is read too (no pickle). **Channel choice:** channel 0 is the
cytoplasm channel (the one the masks outline), channel 1 the nuclei; ``channel=0`` is the default,
``channel=1`` selects nuclei. Channel-first stacks (N, C, H, W) are detected. Pickled files are
opened only with ``trust_pickle=True`` (loading a pickle can run code). A folder with
``cells_train.npz``/``cells_test.npz`` is read with ``split="train"``/``"test"``.

``cellpose-folder`` — the Cellpose training-folder convention ``NNN_img.png`` + ``NNN_masks.png``
(Stringer et al., Nat. Methods 18:100, 2021). Colour ``_img`` files follow the Cellpose data set
convention (cytoplasm green, nuclei red): channel 1 (green) is used unless ``channel`` is given;
gray files are read as they are.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from cellrobust._validation import DataError, InputError
from cellrobust.data._convert import to_gray, to_labels
from cellrobust.data._layout import image_files, reject_options, unpaired_error
from cellrobust.data._base import Dataset, Entry, Reader, check_same_shape
from cellrobust.data.sample import Sample

NAME = "cellpose-npz"
DESCRIPTION = (
    "Cellpose/Neuromatch npz: a .npz file (or a folder of cells_*.npz) with imgs (N,H,W,2) "
    "and masks (N,H,W)"
)
FOLDER_NAME = "cellpose-folder"
FOLDER_DESCRIPTION = "Cellpose folder: NNN_img.* images with NNN_masks.* instance masks"
DEFAULT_NPZ_CHANNEL = 0
DEFAULT_RGB_CHANNEL = 1
_IMG_RE = re.compile(r"(.+)_img")
_MASK_RE = re.compile(r"(.+)_masks")


def _npz_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix.lower() == ".npz" else []
    return sorted(path.glob("cells_*.npz")) if path.is_dir() else []


def _folder_pairs(path: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    images, masks = {}, {}
    for file in image_files(path):
        for regex, table in ((_IMG_RE, images), (_MASK_RE, masks)):
            match = regex.fullmatch(file.stem)
            if match:
                table[match.group(1)] = file
    return images, masks


def can_read_npz(path: Path) -> bool:
    """True for a ``.npz`` file or a folder holding ``cells_*.npz`` files."""
    return bool(_npz_files(path))


def can_read_folder(path: Path) -> bool:
    """True for a folder holding ``*_img.*`` and ``*_masks.*`` image files."""
    images, masks = _folder_pairs(path) if path.is_dir() else ({}, {})
    return bool(images) and bool(masks)


def read_npz(path: Path, *, split: str | None = None, channel: int | None = None,
             trust_pickle: bool = False, **options) -> Dataset:
    """Build the lazy :class:`~cellrobust.data.Dataset` of an npz file or a folder of them."""
    reject_options(NAME, options, ("split", "channel", "trust_pickle"))
    files = _npz_files(path)
    if path.is_dir():
        files = _select_split(path, files, split)
    elif split is not None:
        raise InputError(f"split: {path} is one file; open its folder to choose a split")
    entries = []
    for file in files:
        entries += _npz_entries(file, channel, trust_pickle)
    return Dataset(entries, format=NAME, path=path, loader=_load_npz_entry)


def _select_split(path: Path, files: list[Path], split: str | None) -> list[Path]:
    if split is None:
        return files
    wanted = [f for f in files if f.stem == f"cells_{split}"]
    if not wanted:
        raise InputError(
            f"split: {path} has no cells_{split}.npz; available: "
            + ", ".join(f.stem.removeprefix("cells_") for f in files)
        )
    return wanted


def _npz_entries(file: Path, channel: int | None, trust: bool) -> list[Entry]:
    imgs, masks = load_npz(file, trust)
    if len(imgs) != len(masks):
        raise DataError(f"{file}: {len(imgs)} images but {len(masks)} masks; expected one mask "
                        "per image")
    prefix = file.stem.removeprefix("cells_")
    meta = {"format": NAME, "trust_pickle": trust}
    return [Entry(name=f"{prefix}/{i:04d}", image=file, mask=file, index=i, mask_kind="instance",
                  channel=DEFAULT_NPZ_CHANNEL if channel is None else channel, meta=meta)
            for i in range(len(imgs))]


@functools.lru_cache(maxsize=2)
def _load_npz_cached(file: str, mtime_ns: int, trust: bool) -> tuple[np.ndarray, np.ndarray]:
    from cellrobust._limits import check_npz

    check_npz(file)  # sizes and integrity from the npy headers, before anything is loaded
    try:
        with np.load(file, allow_pickle=trust) as data:
            if "imgs" in data.files and "masks" in data.files:
                return np.asarray(data["imgs"]), np.asarray(data["masks"])
            if "arr_0" in data.files:
                return _from_pickled_dict(file, data["arr_0"])
            found = ", ".join(data.files)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(
                f"{file}: stores a pickled Python object (the Neuromatch cells_*.npz format); "
                "loading a pickle can run code - pass trust_pickle=True if you trust its source"
            ) from exc
        raise DataError(f"{file}: cannot read npz ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise DataError(f"{file}: cannot read npz, the file may be truncated ({exc})") from exc
    raise DataError(
        f"{file}: expected arrays 'imgs' and 'masks' (or a pickled dict), found {found}"
    )


def _from_pickled_dict(file: str, obj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    item = obj.item() if obj.dtype == object else None
    if not isinstance(item, dict) or not {"imgs", "masks"} <= set(item):
        raise DataError(f"{file}: arr_0 is not a dict with keys 'imgs' and 'masks'")
    return np.asarray(item["imgs"]), np.asarray(item["masks"])


def load_npz(file: Path, trust_pickle: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(imgs, masks)`` of a Cellpose/Neuromatch npz (cached: the last two files stay loaded)."""
    return _load_npz_cached(str(file), file.stat().st_mtime_ns, bool(trust_pickle))


def _load_npz_entry(entry: Entry) -> Sample:
    imgs, masks = load_npz(entry.image, entry.meta.get("trust_pickle", False))
    where = f"{entry.image}[{entry.index}]"
    raw = imgs[entry.index]
    if raw.ndim == 3 and raw.shape[0] <= 4 < raw.shape[-1]:
        raw = np.moveaxis(raw, 0, -1)
    image = to_gray(raw, file=where, channel=entry.channel if raw.ndim == 3 else None)
    labels, approx = to_labels(masks[entry.index], file=where, kind=entry.mask_kind)
    check_same_shape(image, labels, where, where)
    meta = {**entry.meta, "source": where, "approximate_instances": approx, "index": entry.index}
    meta.pop("trust_pickle", None)
    return Sample(image=image, labels=labels, name=entry.name, meta=meta)


def read_folder(path: Path, *, channel: int | None = None, **options) -> Dataset:
    """Build the lazy :class:`~cellrobust.data.Dataset` of a Cellpose ``_img``/``_masks`` folder."""
    reject_options(FOLDER_NAME, options, ("channel",))
    images, masks = _folder_pairs(path)
    unpaired = [images[k] for k in images.keys() - masks.keys()]
    unpaired += [masks[k] for k in masks.keys() - images.keys()]
    if unpaired:
        raise unpaired_error(path, "unpaired files", unpaired,
                             "every NNN_img.* to have a NNN_masks.* and vice versa")
    entries = [Entry(name=f"{path.name}/{key}", image=images[key], mask=masks[key],
                     mask_kind="instance", channel=channel,
                     meta={"format": FOLDER_NAME, "rgb_channel": DEFAULT_RGB_CHANNEL})
               for key in sorted(images)]
    return Dataset(entries, format=FOLDER_NAME, path=path)


READERS = [
    Reader(NAME, DESCRIPTION, can_read_npz, read_npz),
    Reader(FOLDER_NAME, FOLDER_DESCRIPTION, can_read_folder, read_folder),
]
