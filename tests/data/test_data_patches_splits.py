"""Patch sampling and splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datatest_helpers import write
from hypothesis import given, settings
from hypothesis import strategies as st

from cellrobust._validation import DataError, InputError
from cellrobust.data import (
    Sample,
    iter_patches,
    open_dataset,
    psc_split,
    random_patches,
    split_dataset,
)
from cellrobust.data.splits import PSC_SPLITS, _sizes


def _frame(h=40, w=50, name="f") -> Sample:
    # the image encodes each pixel's position, the labels a checkerboard of 5x5 cells
    yy, xx = np.mgrid[:h, :w]
    image = (yy * w + xx).astype(np.float32)
    labels = ((yy // 5) * (w // 5) + xx // 5 + 1).astype(np.int32)
    return Sample(image=image, labels=labels, name=name)


def test_random_patches_cut_image_and_labels_together():
    frame = _frame()
    patches = random_patches(frame, n=6, size=16, rng=3)
    assert [p.name for p in patches] == [f"f/p{i}" for i in range(6)]
    for p in patches:
        y, x = p.meta["origin"]
        assert np.array_equal(p.image, frame.image[y:y + 16, x:x + 16])
        # labels: same partition as the frame window, relabelled 1..n in order
        window = frame.labels[y:y + 16, x:x + 16]
        assert p.labels.max() == len(np.unique(window))
        assert np.array_equal(np.unique(p.labels), np.arange(1, p.labels.max() + 1))
        assert np.array_equal(p.labels == p.labels[0, 0], window == window[0, 0])
        assert p.meta["parent"] == "f"


def test_random_patches_seeded_and_bounds():
    frame = _frame()
    a = [p.meta["origin"] for p in random_patches(frame, rng=0, size=20)]
    b = [p.meta["origin"] for p in random_patches(frame, rng=np.random.default_rng(0), size=20)]
    c = [p.meta["origin"] for p in random_patches(frame, rng=1, size=20)]
    assert a == b != c and len(a) == 6
    assert all(0 <= y <= 20 and 0 <= x <= 30 for y, x in a)
    full = random_patches(frame, n=2, size=40, rng=0)
    assert all(p.meta["origin"][0] == 0 for p in full)
    with pytest.raises(InputError, match="size: a 41 x 41 crop does not fit f"):
        random_patches(frame, size=41, rng=0)


def test_iter_patches_independent_of_order():
    frames = [_frame(name=f"f{i}") for i in range(3)]
    forward = {p.name: p.meta["origin"] for p in iter_patches(frames, n=2, size=8, seed=5)}
    backward = {p.name: p.meta["origin"] for p in iter_patches(frames[::-1], n=2, size=8, seed=5)}
    assert forward == backward and len(forward) == 6


def test_psc_split_on_real_deepimagej(psc_dir: Path):
    ds = open_dataset(psc_dir)
    assert len(psc_split(ds, "train")) == 101 and len(psc_split(ds, "validation")) == 16
    with pytest.raises(DataError, match="none of the PSC test frames"):
        psc_split(ds, "test")


def test_psc_split_on_ctc_layout(tmp_path: Path):
    root = tmp_path / "PhC-C2DL-PSC"
    tiny = np.zeros((4, 4), np.uint8)
    for seq, frames in (("01", (149, 150, 250, 251)), ("02", (150, 234, 235, 250))):
        for t in frames:
            write(root / seq / f"t{t:03d}.tif", tiny)
            write(root / f"{seq}_ST" / "SEG" / f"man_seg{t:03d}.tif", tiny)
    ds = open_dataset(root, masks="st")
    got = {s: [e.meta["frame"] for e in psc_split(ds, s).entries] for s in PSC_SPLITS}
    assert got == {"train": [150, 250], "validation": [235, 250], "test": [150, 234]}
    with pytest.raises(InputError, match="split: unknown value 'val'"):
        psc_split(ds, "val")


def test_split_dataset_deterministic_partition(psc_dir: Path):
    ds = open_dataset(psc_dir / "train")
    parts = split_dataset(ds, seed=1)
    sizes = {k: len(v) for k, v in parts.items()}
    assert sizes == {"train": 81, "validation": 10, "test": 10}
    names = [n for v in parts.values() for n in v.names]
    assert sorted(names) == sorted(ds.names)  # a partition: nothing lost, nothing twice
    assert split_dataset(ds[::-1], seed=1)["test"].names == parts["test"].names  # order-free
    assert split_dataset(ds, seed=2)["test"].names != parts["test"].names
    with pytest.raises(InputError, match="summing to 1"):
        split_dataset(ds, {"a": 0.5, "b": 0.4})


def test_split_dataset_groups_sequences(tmp_path: Path, ctc_dir: Path):
    ds = open_dataset(ctc_dir, masks="gt+st")
    parts = split_dataset(ds, {"train": 0.5, "test": 0.5}, group="sequence")
    seqs = {k: {e.meta["sequence"] for e in v.entries} for k, v in parts.items()}
    assert seqs["train"].isdisjoint(seqs["test"]) and len(seqs["train"] | seqs["test"]) == 2
    with pytest.raises(InputError, match="no 'plate' metadata"):
        split_dataset(ds, group="plate")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 500), weights=st.lists(st.integers(1, 20), min_size=1, max_size=5))
def test_split_sizes_sum_and_round(n, weights):
    fractions = [w / sum(weights) for w in weights]
    sizes = _sizes(n, fractions)
    assert sum(sizes) == n
    assert all(abs(s - f * n) < 1 for s, f in zip(sizes, fractions))
