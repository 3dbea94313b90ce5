""":func:`open_dataset`, which picks the reader for a path, and the table of readers.

The shared types (:class:`Dataset`, :class:`Entry`, :class:`Reader`) live in
:mod:`cellrobust.data._base`, below the reader modules (``ctc``, ``deepimagej``, ``cellpose``,
``folders``); this module sits above them, so no import loop joins them. Each reader answers
``can_read(path)`` and builds a Dataset with ``read(path, **options)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cellrobust._io import IMAGE_SUFFIXES
from cellrobust._validation import DataError, InputError, check_choice
from cellrobust.data import cellpose, ctc, deepimagej, folders
from cellrobust.data._base import Dataset, Entry, Reader, check_same_shape, load_entry
from cellrobust.data.ctc import MASK_CHOICES

__all__ = ["Dataset", "Entry", "MASK_CHOICES", "Reader", "check_same_shape", "formats",
           "load_entry", "open_dataset", "readers"]

#: Files that never hold data: ignored when deciding whether to descend into a lone sub-folder.
_DATA_SUFFIXES = (*IMAGE_SUFFIXES, ".npz")
_IGNORED_DIRS = ("__MACOSX",)


def readers() -> list[Reader]:
    """Every reader, in the order :func:`open_dataset` tries them."""
    return [*ctc.READERS, *deepimagej.READERS, *cellpose.READERS, *folders.READERS]


def formats() -> dict[str, str]:
    """``{format name: description of the layout it reads}`` for every reader."""
    return {r.name: r.description for r in readers()}


def open_dataset(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    split: str | None = None,
    masks: str | None = None,
    sequences: str | Sequence[str] | None = None,
    channel: int | None = None,
    unannotated: str = "skip",
    trust_pickle: bool = False,
) -> Dataset:
    """Open an annotated data set, choosing the reader that recognises ``path``.

    Parameters
    ----------
    path : path-like
        A data set folder or file (Cell Tracking Challenge folder or sequence folder, DeepImageJ
        root or split folder, Cellpose ``.npz`` or ``_img``/``_masks`` folder, plain folder).
        A folder holding exactly one sub-folder and no image file is descended into; other files
        beside it (``README*``, ``stats.json``, ``*.csv``, hidden files) are ignored.
    format : str, optional
        Force a reader (``"ctc"``, ``"deepimagej"``, ``"cellpose-npz"``, ``"cellpose-folder"``,
        ``"folders"``) instead of detecting it.
    split : str, optional
        DeepImageJ layout: ``"train"``, ``"validation"`` or ``"test"`` (None: every split present).
        Cellpose npz folder: ``"train"`` or ``"test"`` (``cells_train.npz``/``cells_test.npz``).
    masks : str, optional
        Which masks. Cell Tracking Challenge: ``"gt"`` gold truth (the default), ``"st"`` silver
        truth, ``"gt+st"`` gold where present, silver elsewhere. Plain folders: the name of the
        mask sub-folder (e.g. ``"labels"``; default: the first of ``masks/``, ``mask/``,
        ``labels/``, ...). Other layouts take no ``masks``.
    sequences : str or sequence of str, optional
        Cell Tracking Challenge sequences to read (``"01"``, ``["01", "02"]``); None: all.
    channel : int, optional
        Channel of multi-channel images to use (see :mod:`cellrobust.data.cellpose`).
    unannotated : {"skip", "keep"}
        Frames without a mask are left out (``"skip"``, what evaluation needs) or kept with
        ``labels=None`` (``"keep"``, e.g. to predict every frame).
    trust_pickle : bool
        Allow ``.npz`` files that store pickled Python objects (the Neuromatch files do). Loading a
        pickle can run code: allow it only for files from a source you trust.

    Returns
    -------
    Dataset
        Lazy: no image is read until a sample is accessed.

    Raises
    ------
    DataError
        The path does not exist, no reader recognises it (the message lists every format tried
        and the layout each expects), files are unpaired, or the data set is empty.
    InputError
        An option has an invalid value or does not apply to the detected layout.
    """
    if masks is not None and not isinstance(masks, str):
        raise InputError(f"masks: expected a string such as 'gt' or a folder name, got {masks!r}")
    check_choice("unannotated", unannotated, ("skip", "keep"))
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: path does not exist; expected a data set folder or file")
    options = dict(split=split, masks=masks, sequences=sequences, channel=channel,
                   trust_pickle=trust_pickle)
    reader = _pick_reader(root, format)
    if reader is None:
        return _descend_or_fail(root, format, options, unannotated)
    dataset = reader.read(root, **options)
    if unannotated == "skip":
        dataset = dataset.annotated()
    if len(dataset) == 0:
        raise DataError(
            f"{root}: empty data set ({reader.name} layout recognised, but no annotated frame "
            "found); expected at least one image with its mask"
        )
    return dataset


def _pick_reader(root: Path, format: str | None) -> Reader | None:
    known = readers()
    if format is not None:
        check_choice("format", format, [r.name for r in known])
        reader = next(r for r in known if r.name == format)
        if not reader.can_read(root):
            raise DataError(f"{root}: not a {format} data set; expected {reader.description}")
        return reader
    return next((r for r in known if r.can_read(root)), None)


def _descend_or_fail(root: Path, format: str | None, options: dict, unannotated: str) -> Dataset:
    subfolders, data_files = _contents(root)
    if len(subfolders) == 1 and not data_files:
        return open_dataset(subfolders[0], format=format, unannotated=unannotated, **options)
    tried = "; ".join(f"{name}: {desc}" for name, desc in formats().items())
    raise DataError(f"{root}: no reader recognises this path{_hint(subfolders, data_files)}. "
                    f"Formats tried - {tried}")


def _contents(root: Path) -> tuple[list[Path], list[Path]]:
    """Visible sub-folders and data files (images, npz) of ``root``; sidecars are left out."""
    if not root.is_dir():
        return [], []
    visible = sorted(c for c in root.iterdir() if not c.name.startswith("."))
    subfolders = [c for c in visible if c.is_dir() and c.name not in _IGNORED_DIRS]
    data_files = [c for c in visible if c.is_file() and c.suffix.lower() in _DATA_SUFFIXES]
    return subfolders, data_files


def _hint(subfolders: list[Path], data_files: list[Path]) -> str:
    if len(subfolders) > 1:
        names = ", ".join(c.name for c in subfolders[:8])
        return f" (it holds {len(subfolders)} sub-folders: {names}; open one of them)"
    if subfolders and data_files:
        return (f" (not descending into {subfolders[0].name}/: {len(data_files)} image file(s) "
                f"lie beside it, e.g. {data_files[0].name}; open {subfolders[0].name}/ directly)")
    return ""
