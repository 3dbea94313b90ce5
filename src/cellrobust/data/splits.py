"""Train/validation/test splits: the PSC split of the studies, and seeded splits for any data.

The PSC studies (DeepImageJ U-Net on PhC-C2DL-PSC) used train = sequence 01 frames 150-250
(101 frames), validation = sequence 02 frames 235-250 (16) and test = sequence 02 frames 150-234
(85). :func:`psc_split` selects these frames from a Cell Tracking Challenge copy of PhC-C2DL-PSC
(as ``cellrobust data fetch psc`` downloads it) or from the DeepImageJ prepared folders.
:func:`split_dataset` is a seeded split into any fractions; :func:`default_split` is the
train/validation split used when a data set comes without one (rules in its docstring).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from cellrobust._rng import derive_rng
from cellrobust._validation import DataError, InputError, check_choice, check_range
from cellrobust.data._base import Dataset, Entry, load_entry
from cellrobust.data.patches import crop
from cellrobust.data.sample import Sample

PSC_SPLITS: dict[str, tuple[str, int, int]] = {
    "train": ("01", 150, 250),
    "validation": ("02", 235, 250),
    "test": ("02", 150, 234),
}
"""``{split: (sequence, first frame, last frame)}`` (inclusive) of the PSC studies."""

DEFAULT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def psc_split(dataset: Dataset, split: str) -> Dataset:
    """The frames of the PSC studies' ``split`` (``"train"``, ``"validation"``, ``"test"``).

    Parameters
    ----------
    dataset : Dataset
        PhC-C2DL-PSC opened with :func:`~cellrobust.data.open_dataset`, in the Cell Tracking
        Challenge layout (frames selected by sequence and number) or the DeepImageJ layout (frames
        selected by split folder and number).

    Raises
    ------
    DataError
        When the data set holds none of the split's frames.
    """
    check_choice("split", split, PSC_SPLITS)
    seq, first, last = PSC_SPLITS[split]

    def wanted(entry: Entry) -> bool:
        frame = entry.meta.get("frame")
        if frame is None or not first <= frame <= last:
            return False
        if dataset.format == "deepimagej":
            return entry.meta.get("split") == split
        return entry.meta.get("sequence") == seq

    subset = dataset.where(wanted)
    if len(subset) == 0:
        raise DataError(
            f"{dataset.path}: none of the PSC {split} frames (sequence {seq}, t{first}-t{last}) "
            f"found in this {dataset.format} data set of {len(dataset)} frames"
        )
    return subset


def split_dataset(
    dataset: Dataset,
    fractions: Mapping[str, float] | None = None,
    *,
    seed: int = 0,
    group: str | None = None,
) -> dict[str, Dataset]:
    """Deterministic seeded split of any data set.

    Sample names are sorted, shuffled by ``derive_rng(seed, "split")`` and cut into consecutive
    parts whose sizes follow ``fractions`` (largest-remainder rounding), so the same names and seed
    always give the same split, whatever order the files were listed in.

    Parameters
    ----------
    fractions : mapping of str to float, optional
        ``{split name: fraction}``, fractions > 0 summing to 1 (default 0.8/0.1/0.1).
    seed : int
        Seed of the shuffle.
    group : str, optional
        A ``meta`` key (e.g. ``"sequence"``) whose values are kept together in one split, so that
        neighbouring frames of a time-lapse do not leak between training and evaluation.

    Returns
    -------
    dict of str to Dataset
        One lazy Dataset per split, in the order of ``fractions``.
    """
    fractions = dict(fractions or DEFAULT_FRACTIONS)
    _check_fractions(fractions)
    groups = _groups(dataset, group)
    keys = sorted(groups)
    order = derive_rng(seed, "split").permutation(len(keys))
    sizes = _sizes(len(keys), list(fractions.values()))
    out, start = {}, 0
    for name, size in zip(fractions, sizes):
        chosen = [keys[i] for i in order[start:start + size]]
        out[name] = dataset.subset([i for k in sorted(chosen) for i in groups[k]])
        start += size
    return out


def _check_fractions(fractions: dict[str, float]) -> None:
    if not fractions:
        raise InputError("fractions: expected at least one split, got none")
    for name, value in fractions.items():
        check_range(f"fractions[{name!r}]", value, low=0, low_inclusive=False, high=1)
    total = sum(fractions.values())
    if not np.isclose(total, 1.0, atol=1e-6):
        raise InputError(f"fractions: expected fractions summing to 1, got {total:g}")


def _groups(dataset: Dataset, group: str | None) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, entry in enumerate(dataset.entries):
        if group is None:
            key = entry.name
        elif group in entry.meta:
            key = str(entry.meta[group])
        else:
            raise InputError(f"group: sample {entry.name} has no {group!r} metadata; "
                             f"available keys: {', '.join(sorted(entry.meta))}")
        groups.setdefault(key, []).append(i)
    return groups


def _sizes(n: int, fractions: list[float]) -> list[int]:
    raw = np.asarray(fractions) * n
    sizes = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[i] += 1
    return sizes.tolist()


class Split(NamedTuple):
    """``train, validation, record = default_split(...)``; ``record`` is JSON-ready."""

    train: Dataset
    validation: Dataset
    record: dict[str, Any]


def default_split(dataset: Dataset, *, val_fraction: float = 0.2, seed: int = 0) -> Split:
    """Split a data set into training and validation frames, deterministically.

    The same data and seed always give the same split; the rule depends on the data:

    1. **the layout's own split** - a DeepImageJ root holding ``train/`` and ``validation/``
       keeps it (``test/`` frames are left out and listed in ``record["held_out"]``);
    2. **by sequence** - frames with two or more ``meta["sequence"]`` values (Cell Tracking
       Challenge ``01``/``02``) are split by whole sequences, so neighbouring time-lapse frames
       never sit on both sides;
    3. **contiguous** - one time-lapse (one CTC sequence, or one DeepImageJ split folder, whose
       entries carry ``meta["frame"]``): validation is one contiguous run of frames (in frame
       order) at a seeded position, which limits leakage between neighbouring frames;
    4. **shuffled** - other data sets (plain folders, Cellpose): a seeded shuffle of frames;
    5. **spatial** - a single frame (e.g. one fluorescence image) is cut across its longer axis:
       training gets the first ``1 - val_fraction`` of it, validation the rest (cells crossing
       the cut become two partial objects); a ``UserWarning`` says that validation is then not
       independent of training.

    Validation gets ``max(1, round(val_fraction * n))`` of the ``n`` frames (or sequences),
    training the rest (at least one).

    Parameters
    ----------
    dataset : Dataset
        As :func:`~cellrobust.data.open_dataset` returns it (no file is read, except the one
        frame of a single-frame data set, whose size sets the cut).
    val_fraction : float
        Share of frames (or sequences) for validation, in (0, 1); ignored when the layout has
        its own split.
    seed : int
        Seeds the choice of frames (``derive_rng(seed, "default-split")``).

    Returns
    -------
    Split
        ``(train, validation, record)``: two lazy Datasets and a dict with ``method``
        (``"layout"``, ``"sequence"``, ``"contiguous"``, ``"shuffled"`` or ``"spatial"``),
        ``seed``, ``val_fraction``, the sample names of each side (``train``, ``validation``),
        plus ``sequences``, ``held_out`` or ``window`` where they apply.

    Raises
    ------
    DataError
        When the data set has no frame.
    """
    check_range("val_fraction", val_fraction, low=0, high=1, low_inclusive=False,
                high_inclusive=False)
    if len(dataset) == 0:
        raise DataError(f"{dataset.path}: empty data set; expected at least one frame to split")
    method, train, val, extra = _choose(dataset, val_fraction, seed)
    record = {"method": method, "seed": int(seed), "val_fraction": float(val_fraction),
              "train": train.names, "validation": val.names, **extra}
    return Split(train, val, record)


def _choose(dataset: Dataset, fraction: float, seed: int):
    splits = {e.meta.get("split") for e in dataset.entries}
    if dataset.format == "deepimagej" and {"train", "validation"} <= splits:
        return _by_layout(dataset)
    sequences = sorted({str(e.meta["sequence"]) for e in dataset.entries
                        if "sequence" in e.meta})
    if len(dataset) == 1:
        return _spatial(dataset, fraction)
    if len(sequences) > 1 and all("sequence" in e.meta for e in dataset.entries):
        return _by_sequence(dataset, sequences, fraction, seed)
    if len(sequences) <= 1 and all("frame" in e.meta for e in dataset.entries):
        return _contiguous(dataset, fraction, seed)
    return _shuffled(dataset, fraction, seed)


def _n_val(n: int, fraction: float) -> int:
    return min(n - 1, max(1, int(round(fraction * n))))


def _by_layout(dataset: Dataset):
    def side(name: str) -> Dataset:
        return dataset.where(lambda e: e.meta.get("split") == name)

    held_out = [e.name for e in dataset.entries
                if e.meta.get("split") not in ("train", "validation")]
    return "layout", side("train"), side("validation"), {"held_out": held_out}


def _by_sequence(dataset: Dataset, sequences: list[str], fraction: float, seed: int):
    order = derive_rng(seed, "default-split").permutation(len(sequences))
    val_seqs = sorted(sequences[i] for i in order[:_n_val(len(sequences), fraction)])
    in_val = lambda e: str(e.meta["sequence"]) in val_seqs  # noqa: E731
    train, val = dataset.where(lambda e: not in_val(e)), dataset.where(in_val)
    seqs = {"train": [s for s in sequences if s not in val_seqs], "validation": val_seqs}
    return "sequence", train, val, {"sequences": seqs}


def _contiguous(dataset: Dataset, fraction: float, seed: int):
    order = sorted(range(len(dataset)), key=lambda i: dataset.entries[i].meta["frame"])
    n_val = _n_val(len(order), fraction)
    start = int(derive_rng(seed, "default-split").integers(0, len(order) - n_val + 1))
    val_idx = order[start:start + n_val]
    train_idx = [i for i in order if i not in val_idx]
    return "contiguous", dataset.subset(train_idx), dataset.subset(val_idx), {}


def _shuffled(dataset: Dataset, fraction: float, seed: int):
    names = sorted(dataset.names)
    order = derive_rng(seed, "default-split").permutation(len(names))
    val_names = {names[i] for i in order[:_n_val(len(names), fraction)]}
    train = [n for n in dataset.names if n not in val_names]
    val = [n for n in dataset.names if n in val_names]
    return "shuffled", dataset.subset(train), dataset.subset(val), {}


def _spatial(dataset: Dataset, fraction: float):
    entry = dataset.entries[0]
    h, w = dataset[0].shape
    axis = 0 if h >= w else 1
    cut = min(max(1, int(round((1 - fraction) * (h, w)[axis]))), (h, w)[axis] - 1)
    windows = {"train": _window(axis, 0, cut, h, w), "validation": _window(axis, cut, None, h, w)}
    loader = WindowLoader(dataset.loader)
    sides = [Dataset([_windowed(entry, side, windows[side])], format=dataset.format,
                     path=dataset.path, loader=loader) for side in ("train", "validation")]
    axis_name = ("rows", "columns")[axis]
    warnings.warn(
        f"{dataset.path}: only one annotated frame ({entry.name}); training on {axis_name} "
        f"0-{cut - 1} and validating on {axis_name} {cut}-{(h, w)[axis] - 1} of the same image, "
        "so validation is not independent of training - add frames for a real validation set",
        UserWarning, stacklevel=4,
    )
    return "spatial", sides[0], sides[1], {"window": windows}


def _window(axis: int, start: int, stop: int | None, h: int, w: int) -> dict[str, int]:
    stop = (h, w)[axis] if stop is None else stop
    y0, y1, x0, x1 = (start, stop, 0, w) if axis == 0 else (0, h, start, stop)
    return {"y": y0, "x": x0, "height": y1 - y0, "width": x1 - x0}


def _windowed(entry: Entry, side: str, window: dict[str, int]) -> Entry:
    meta = {**entry.meta, "window": window, "parent": entry.name, "split": side}
    return replace(entry, name=f"{entry.name}/{side}", meta=meta)


@dataclass(frozen=True)
class WindowLoader:
    """Loads an entry with ``base`` (default: from files) and cuts ``meta["window"]`` from it
    (image and labels together, labels relabelled 1..n). Picklable, like the Dataset."""

    base: Callable[[Entry], Sample] | None = None

    def __call__(self, entry: Entry) -> Sample:
        window = entry.meta["window"]
        frame = (self.base or load_entry)(replace(entry, name=entry.meta["parent"]))
        part = crop(frame, window["y"], window["x"], (window["height"], window["width"]),
                    name=entry.name)
        return part.with_(meta={"split": entry.meta["split"]})

