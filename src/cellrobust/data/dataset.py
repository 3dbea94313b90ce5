"""A lazy, annotated data set and :func:`open_dataset`, which picks the reader for a path.

A :class:`Dataset` holds only file references (:class:`Entry`); every ``dataset[i]`` reads the
files again and returns a fresh :class:`~cellrobust.data.Sample`, so a large data set is never held
in memory (and never twice). Readers live in one module per format (``ctc``, ``deepimagej``,
``cellpose``, ``folders``); each answers ``can_read(path)`` and builds a Dataset with ``read``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, overload

import numpy as np

from cellrobust._validation import DataError, InputError, check_choice
from cellrobust.data.sample import Sample

MASK_CHOICES = ("gt", "st", "gt+st")


@dataclass(frozen=True)
class Entry:
    """A reference to one frame: where its image and mask are and how to convert them.

    Attributes
    ----------
    name : str
        The sample name (stable; seeds per-sample random streams).
    image : Path
        Image file; for stacked formats (``.npz``) the stack file.
    mask : Path or None
        Mask file (None: no annotation); for ``.npz`` the stack file.
    index : int or None
        Position in a stack (``.npz``); None for one-frame files.
    mask_kind : {"auto", "binary", "instance"}
        How to turn the mask into instances (see :func:`cellrobust.data._convert.to_labels`).
    channel : int or None
        Which channel of a multi-channel image to use (None: gray/RGB conversion).
    meta : Mapping
        Metadata copied into the sample (``frame``, ``sequence``, ``split``, ``truth``, ...).
    """

    name: str
    image: Path
    mask: Path | None = None
    index: int | None = None
    mask_kind: str = "auto"
    channel: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


class Dataset(Sequence[Sample]):
    """A lazy sequence of :class:`~cellrobust.data.Sample` read from disk on access.

    Parameters
    ----------
    entries : sequence of Entry
        The frames, in order.
    format : str
        Name of the reader that found them (``"ctc"``, ``"deepimagej"``, ...).
    path : Path
        The path the data set was opened from.
    loader : callable, optional
        ``loader(entry) -> Sample``; defaults to reading files with :func:`load_entry`.
    """

    def __init__(
        self,
        entries: Sequence[Entry],
        *,
        format: str,
        path: str | os.PathLike,
        loader: Callable[[Entry], Sample] | None = None,
    ) -> None:
        self.entries: tuple[Entry, ...] = tuple(entries)
        self.format = format
        self.path = Path(path)
        self._loader = loader

    def __len__(self) -> int:
        return len(self.entries)

    @overload
    def __getitem__(self, item: int) -> Sample: ...

    @overload
    def __getitem__(self, item: slice) -> "Dataset": ...

    def __getitem__(self, item):
        if isinstance(item, slice):
            return self._with(self.entries[item])
        entry = self.entries[item]
        return (self._loader or load_entry)(entry)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"Dataset(format={self.format!r}, path='{self.path}', frames={len(self)})"

    @property
    def names(self) -> list[str]:
        """Sample names, in order (no file is read)."""
        return [e.name for e in self.entries]

    @property
    def n_annotated(self) -> int:
        """Number of frames that have a mask (no file is read)."""
        return sum(e.mask is not None for e in self.entries)

    def annotated(self) -> "Dataset":
        """The frames that have a mask (the ones that can be scored)."""
        return self._with([e for e in self.entries if e.mask is not None])

    def subset(self, selection: Iterable[int] | Iterable[str]) -> "Dataset":
        """The frames at the given positions or with the given names, in the order given."""
        items = list(selection)
        if all(isinstance(i, str) for i in items):
            by_name = {e.name: e for e in self.entries}
            missing = [n for n in items if n not in by_name]
            if missing:
                raise InputError(
                    f"subset: unknown sample names {missing[:5]} ({len(missing)} in all)"
                )
            return self._with([by_name[n] for n in items])
        return self._with([self.entries[int(i)] for i in items])

    def where(self, predicate: Callable[[Entry], bool]) -> "Dataset":
        """The frames whose :class:`Entry` satisfies ``predicate`` (no file is read)."""
        return self._with([e for e in self.entries if predicate(e)])

    def _with(self, entries: Sequence[Entry]) -> "Dataset":
        return Dataset(entries, format=self.format, path=self.path, loader=self._loader)


def load_entry(entry: Entry) -> Sample:
    """Read one frame from its files and convert it (see :mod:`cellrobust.data._convert`)."""
    from cellrobust.data._convert import read_array, read_array_meta, to_gray, to_labels

    raw, file_meta = read_array_meta(entry.image)
    channel = entry.channel
    if channel is None and "rgb_channel" in entry.meta and _is_colour(raw):
        channel = entry.meta["rgb_channel"]
    image = to_gray(raw, file=entry.image, channel=channel)
    meta: dict[str, Any] = {"source": str(entry.image), **file_meta, **entry.meta}
    labels = None
    if entry.mask is not None:
        labels, approx = to_labels(read_array(entry.mask), file=entry.mask, kind=entry.mask_kind)
        check_same_shape(image, labels, entry.image, entry.mask)
        meta.update(mask_source=str(entry.mask), approximate_instances=approx)
    return Sample(image=image, labels=labels, name=entry.name, meta=meta)


def _is_colour(raw: np.ndarray) -> bool:
    if raw.ndim != 3 or raw.shape[-1] not in (3, 4):
        return False
    same = np.array_equal(raw[..., 0], raw[..., 1]) and np.array_equal(raw[..., 1], raw[..., 2])
    return not same


def check_same_shape(
    image: np.ndarray, labels: np.ndarray, image_file: object, mask_file: object
) -> None:
    """Raise :class:`DataError` naming both files when image and mask sizes differ."""
    if image.shape[:2] != labels.shape:
        raise DataError(
            f"{mask_file}: mask shape {labels.shape} does not match its image {image_file} "
            f"of shape {image.shape[:2]}; masks must match their images pixel for pixel"
        )


class Reader(NamedTuple):
    """One format: name, expected layout, ``can_read(path)`` and ``read(path, **options)``."""

    name: str
    description: str
    can_read: Callable[[Path], bool]
    read: Callable[..., Dataset]


def readers() -> list[Reader]:
    """Every reader, in the order :func:`open_dataset` tries them."""
    from cellrobust.data import cellpose, ctc, deepimagej, folders

    return [*ctc.READERS, *deepimagej.READERS, *cellpose.READERS, *folders.READERS]


def formats() -> dict[str, str]:
    """``{format name: description of the layout it reads}`` for every reader."""
    return {r.name: r.description for r in readers()}


def open_dataset(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    split: str | None = None,
    masks: str = "gt",
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
        A folder holding exactly one sub-folder and nothing readable is descended into.
    format : str, optional
        Force a reader (``"ctc"``, ``"deepimagej"``, ``"cellpose-npz"``, ``"cellpose-folder"``,
        ``"folders"``) instead of detecting it.
    split : str, optional
        DeepImageJ layout: ``"train"``, ``"validation"`` or ``"test"`` (None: every split present).
        Cellpose npz folder: ``"train"`` or ``"test"`` (``cells_train.npz``/``cells_test.npz``).
    masks : {"gt", "st", "gt+st"}
        Cell Tracking Challenge: gold truth, silver truth, or gold where present, silver elsewhere.
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
        An option has an invalid value.
    """
    check_choice("masks", masks, MASK_CHOICES)
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
    if root.is_dir():
        children = [c for c in root.iterdir() if not c.name.startswith(".")]
        folders_ = [c for c in children if c.is_dir()]
        if len(folders_) == 1 and all(c.is_dir() or c.suffix.lower() in (".md", ".txt")
                                      for c in children):
            return open_dataset(folders_[0], format=format, unannotated=unannotated, **options)
    tried = "; ".join(f"{name}: {desc}" for name, desc in formats().items())
    raise DataError(f"{root}: no reader recognises this path. Formats tried - {tried}")
