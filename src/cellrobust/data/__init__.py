"""Data: samples, readers for the formats the field uses, patches, splits, the simulator.

``open_dataset(path)`` reads Cell Tracking Challenge, DeepImageJ, Cellpose/Neuromatch and plain
folder layouts into a lazy :class:`Dataset` of :class:`Sample`; ``load_default_dataset`` (the
phase-contrast simulator of :mod:`cellrobust.data.synthetic`) is used when no data is given.
"""

from __future__ import annotations

from typing import Any

from cellrobust.data._base import Dataset, Entry
from cellrobust.data.dataset import formats, open_dataset
from cellrobust.data.info import DatasetInfo, describe
from cellrobust.data.patches import iter_patches, random_patches
from cellrobust.data.polarity import detect_polarity
from cellrobust.data.sample import Sample
from cellrobust.data.splits import PSC_SPLITS, Split, default_split, psc_split, split_dataset

__all__ = [
    "PSC_SPLITS",
    "Dataset",
    "DatasetInfo",
    "Entry",
    "Sample",
    "Split",
    "default_split",
    "describe",
    "detect_polarity",
    "formats",
    "iter_patches",
    "load_default_dataset",
    "open_dataset",
    "psc_split",
    "random_patches",
    "split_dataset",
]


def __getattr__(name: str) -> Any:
    # The simulator is imported on first use (it is a separate, heavier module).
    if name == "load_default_dataset":
        from cellrobust.data.synthetic import load_default_dataset

        return load_default_dataset
    raise AttributeError(f"module 'cellrobust.data' has no attribute {name!r}")
