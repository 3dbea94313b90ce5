"""The seeded default train/validation split (issue #15) and polarity detection."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from datatest_helpers import two_cells, write

from cellrobust._validation import InputError
from cellrobust.data import Sample, default_split, detect_polarity, open_dataset


def _folders(root: Path, n: int) -> Path:
    for i in range(n):
        write(root / "images" / f"f{i:02d}.tif", np.full((32, 40), i, np.uint8))
        write(root / "masks" / f"f{i:02d}.tif", two_cells())
    return root


def _check_partition(dataset, split) -> None:
    train, val, record = split
    assert set(train.names).isdisjoint(val.names) and len(train) >= 1 and len(val) >= 1
    assert record["train"] == train.names and record["validation"] == val.names
    json.dumps(record)  # JSON-ready


@pytest.mark.parametrize("layout, method, n_val", [
    ("ctc", "sequence", 2),           # sequences 01 (4 frames) / 02 (2 frames): whole sequences
    ("ctc-one-sequence", "contiguous", 1),
    ("deepimagej-root", "layout", 1),  # the layout's own train / validation folders
    ("deepimagej-split", "contiguous", 1),
    ("folders", "shuffled", 2),       # 10 frames, 20 %
])
def test_default_split_every_layout(layout, method, n_val, ctc_dir, dij_dir, tmp_path):
    path, options = {
        "ctc": (ctc_dir, {"masks": "gt+st"}),
        "ctc-one-sequence": (ctc_dir, {"sequences": "01", "masks": "st"}),
        "deepimagej-root": (dij_dir, {}),
        "deepimagej-split": (dij_dir / "train", {}),
        "folders": (_folders(tmp_path / "plain", 10), {}),
    }[layout]
    dataset = open_dataset(path, **options)
    split = default_split(dataset, seed=3)
    _check_partition(dataset, split)
    assert split.record["method"] == method and len(split.validation) == n_val
    if method != "layout":
        assert sorted(split.train.names + split.validation.names) == sorted(dataset.names)
    again = default_split(open_dataset(path, **options), seed=3)
    assert again.record == split.record  # deterministic


def test_sequence_split_keeps_sequences_whole(ctc_dir: Path):
    train, val, record = default_split(open_dataset(ctc_dir, masks="gt+st"), seed=0)
    seqs = record["sequences"]
    assert {s.meta["sequence"] for s in train} == set(seqs["train"])
    assert {s.meta["sequence"] for s in val} == set(seqs["validation"])
    assert len(seqs["validation"]) == 1 and not set(seqs["train"]) & set(seqs["validation"])


def test_contiguous_split_is_one_run_of_frames(tmp_path: Path):
    root = tmp_path / "Seq"
    for t in range(10):
        write(root / "01" / f"t{t:03d}.tif", np.full((32, 40), t, np.uint8))
        write(root / "01_GT" / "SEG" / f"man_seg{t:03d}.tif", two_cells())
    dataset = open_dataset(root)
    starts = set()
    for seed in range(6):
        _, val, _ = default_split(dataset, val_fraction=0.3, seed=seed)
        frames = [s.meta["frame"] for s in val]
        assert len(frames) == 3 and frames == list(range(frames[0], frames[0] + 3))
        starts.add(frames[0])
    assert len(starts) > 1  # the seed moves the run


def test_single_frame_is_cut_spatially_with_a_warning(tmp_path: Path):
    image = np.arange(40 * 32, dtype=np.uint16).reshape(40, 32)  # taller than wide: cut rows
    write(tmp_path / "one" / "img2d.tif", image)
    write(tmp_path / "one" / "mask2d.tif", two_cells((40, 32), values=(1, 2)))
    dataset = open_dataset(tmp_path / "one")
    with pytest.warns(UserWarning, match="only one annotated frame.*rows 0-31.*rows 32-39"):
        train, val, record = default_split(dataset, val_fraction=0.2)
    assert record["method"] == "spatial"
    assert record["window"]["validation"] == {"y": 32, "x": 0, "height": 8, "width": 32}
    top, bottom = train[0], val[0]
    assert np.array_equal(np.vstack([top.image, bottom.image]), image)
    assert top.name.endswith("/train") and bottom.meta["split"] == "validation"
    assert top.labels.max() == 2 and bottom.labels.max() == 0
    assert np.array_equal(pickle.loads(pickle.dumps(val))[0].image, bottom.image)


def test_real_ctc_and_single_image_split_without_options(shared_data: Path):
    ctc = open_dataset(shared_data / "ctc-u373" / "PhC-C2DH-U373")
    train, val, record = default_split(ctc)
    assert (len(train), len(val), record["method"]) == (4, 1, "contiguous")
    nuclei = open_dataset(shared_data / "stardist-nuclei")
    with pytest.warns(UserWarning, match="not independent"):
        train, val, record = default_split(nuclei)
    assert train[0].shape == (410, 512) and val[0].shape == (102, 512)
    assert train[0].labels.max() + val[0].labels.max() >= 125  # cut cells count on both sides


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1])
def test_default_split_rejects_bad_fraction(dij_dir: Path, bad):
    with pytest.raises(InputError, match="val_fraction"):
        default_split(open_dataset(dij_dir), val_fraction=bad)


# ---------------------------------------------------------------- polarity


def _discs(bright: bool, *, seed: int) -> Sample:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    labels = np.zeros((64, 64), np.int32)
    for k, (cy, cx) in enumerate([(16, 16), (16, 48), (48, 30)], start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = k
    image = 100 + rng.normal(0, 5, (64, 64)) + np.where(labels > 0, 40 if bright else -40, 0)
    return Sample(image.astype(np.float32), labels, f"d{seed}")


@pytest.mark.parametrize("bright", [True, False])
@pytest.mark.parametrize("with_masks", [True, False])
def test_detect_polarity_known_answer(bright: bool, with_masks: bool):
    frames = [_discs(bright, seed=s) for s in range(3)]
    if not with_masks:
        frames = [s.with_(labels=None) for s in frames]
    polarity, evidence = detect_polarity(frames)
    assert polarity == ("bright" if bright else "dark") and evidence["confident"]
    assert evidence["method"] == ("masks" if with_masks else "image statistics")
    if with_masks:
        assert evidence["contrast"] == pytest.approx(8 if bright else -8, rel=0.25)
    json.dumps(evidence)


def test_detect_polarity_flat_image_not_confident_and_empty_rejected():
    flat = Sample(np.full((16, 16), 7, np.uint8), None, "flat")
    assert detect_polarity([flat]) == ("bright", {
        "method": "image statistics", "n_frames": 1, "quantile_skew": 0.0,
        "p5": 7.0, "p50": 7.0, "p95": 7.0, "confident": False})
    with pytest.raises(InputError, match="samples: expected at least one frame"):
        detect_polarity([])


def test_detect_polarity_real_data(psc_dir: Path, shared_data: Path):
    polarity, evidence = detect_polarity(open_dataset(psc_dir / "validation"), max_frames=2)
    assert polarity == "bright" and evidence["n_frames"] == 2 and evidence["contrast"] > 1
    polarity, _ = detect_polarity(open_dataset(shared_data / "stardist-nuclei"))
    assert polarity == "bright"
