"""Train/validation/test splits: the PSC split of the studies, and seeded splits for any data.

The PSC studies (DeepImageJ U-Net on PhC-C2DL-PSC) used train = sequence 01 frames 150-250
(101 frames), validation = sequence 02 frames 235-250 (16) and test = sequence 02 frames 150-234
(85). :func:`psc_split` selects these frames from a Cell Tracking Challenge copy of PhC-C2DL-PSC
(as ``cellrobust data fetch psc`` downloads it) or from the DeepImageJ prepared folders.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cellrobust._rng import derive_rng
from cellrobust._validation import DataError, InputError, check_choice, check_range
from cellrobust.data.dataset import Dataset, Entry

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
