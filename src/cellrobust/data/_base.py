"""The shared types of the readers: :class:`Entry`, :class:`Dataset`, :class:`Reader`.

A :class:`Dataset` holds only file references (:class:`Entry`); every ``dataset[i]`` reads the
files again and returns a fresh :class:`~cellrobust.data.Sample`, so a large data set is never held
in memory (and never twice). Each reader module (``ctc``, ``deepimagej``, ``cellpose``,
``folders``) imports this module; :mod:`cellrobust.data.dataset` sits above them and picks one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, overload

import numpy as np

from cellrobust._validation import DataError, InputError
from cellrobust.data._convert import read_array_meta, read_mask, to_gray, to_labels
from cellrobust.data.sample import Sample


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
    def loader(self) -> Callable[[Entry], Sample] | None:
        """The custom ``loader(entry) -> Sample`` (None: files read by :func:`load_entry`)."""
        return self._loader

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
    raw, file_meta = read_array_meta(entry.image)
    channel = entry.channel
    if channel is None and "rgb_channel" in entry.meta and _is_colour(raw):
        channel = entry.meta["rgb_channel"]
    image = to_gray(raw, file=entry.image, channel=channel)
    meta: dict[str, Any] = {"source": str(entry.image), **file_meta, **entry.meta}
    labels = None
    if entry.mask is not None:
        labels, approx = to_labels(read_mask(entry.mask), file=entry.mask, kind=entry.mask_kind)
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


