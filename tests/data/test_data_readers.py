"""Readers: real files from ../shared/data and tiny files written by the tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from datatest_helpers import two_cells, write
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cellrobust._validation import DataError, InputError
from cellrobust.data import Dataset, open_dataset
from cellrobust.data._convert import RGB_WEIGHTS, relabel_sequential, to_gray, to_labels

# ---------------------------------------------------------------- real data


def test_psc_deepimagej_real(psc_dir: Path):
    train = open_dataset(psc_dir, split="train")
    assert (train.format, len(train)) == ("deepimagej", 101)
    assert train.names[0] == "train/t150" and train.names[-1] == "train/t250"
    sample = train[0]
    assert sample.image.shape == (576, 720) and sample.image.dtype == np.uint8
    assert sample.labels.dtype == np.int32 and sample.meta["approximate_instances"] is True
    # the preparation's single 0-valued marker pixel at (0, 0) is kept as read
    assert sample.image[0, 0] == 0 and (sample.image == 0).sum() == 1
    n = int(sample.labels.max())
    assert 100 <= n <= 350 and np.array_equal(np.unique(sample.labels), np.arange(n + 1))
    both = open_dataset(psc_dir)
    assert len(both) == 117 and both.names[-1] == "validation/t250"


def test_psc_split_folder_direct(psc_dir: Path):
    val = open_dataset(psc_dir / "validation")
    assert len(val) == 16 and val[0].meta["split"] == "validation" and val[0].meta["frame"] == 235
    with pytest.raises(InputError, match="validation"):
        open_dataset(psc_dir / "validation", split="train")


def test_ctc_u373_real(shared_data: Path):
    root = shared_data / "ctc-u373"
    gold = open_dataset(root)  # descends into the single data set folder
    assert gold.format == "ctc" and len(gold) == 5
    sample = gold[0]
    assert sample.image.shape == (520, 696) and sample.labels.dtype == np.int32
    assert sample.meta["truth"] == "gt" and not sample.meta["approximate_instances"]
    assert 3 <= sample.labels.max() <= 7
    silver = open_dataset(root / "PhC-C2DH-U373" / "02", masks="st")
    raw = __import__("tifffile").imread(root / "PhC-C2DH-U373/02_ST/SEG/man_seg010.tif")
    assert raw.max() > len(np.unique(raw)) - 1  # non-sequential on disk ...
    assert silver[0].labels.max() == len(np.unique(raw)) - 1  # ... sequential when read


def test_stardist_plain_folder_real(shared_data: Path):
    ds = open_dataset(shared_data / "stardist-nuclei")
    assert ds.format == "folders" and ds.names == ["stardist-nuclei/img2d"]
    sample = ds[0]
    assert sample.image.dtype == np.uint16 and sample.labels.max() == 125


# ---------------------------------------------------------------- CTC, tiny


def test_ctc_gold_silver_and_sequences(ctc_dir: Path):
    gold = open_dataset(ctc_dir)
    assert gold.names == ["Fluo-Tiny/01/t000", "Fluo-Tiny/01/t002", "Fluo-Tiny/02/t0000",
                          "Fluo-Tiny/02/t0001"]
    assert np.array_equal(np.unique(gold[0].labels), [0, 1, 2])
    silver = open_dataset(ctc_dir, masks="st", sequences="01")
    assert [s.meta["frame"] for s in silver] == [0, 1, 3]
    mixed = open_dataset(ctc_dir, masks="gt+st", sequences=["01"])
    assert [(s.meta["frame"], s.meta["truth"]) for s in mixed] == [
        (0, "gt"), (1, "st"), (2, "gt"), (3, "st")]
    assert open_dataset(ctc_dir, sequences="02")[0].image.dtype == np.uint16


def test_ctc_unannotated_kept_or_skipped(ctc_dir: Path):
    keep = open_dataset(ctc_dir, sequences="01", unannotated="keep")
    assert len(keep) == 4 and keep.n_annotated == 2
    assert keep[1].labels is None and keep.annotated().names == open_dataset(
        ctc_dir, sequences="01").names


def test_ctc_sequence_folder_and_bad_sequence(ctc_dir: Path):
    assert len(open_dataset(ctc_dir / "02")) == 2
    with pytest.raises(InputError, match="no sequence 03.*available: 01, 02"):
        open_dataset(ctc_dir, sequences="03")


def test_ctc_masks_without_images(ctc_dir: Path):
    write(ctc_dir / "01_GT" / "SEG" / "man_seg007.tif", two_cells())
    write(ctc_dir / "01_ST" / "SEG" / "man_seg008.tif", two_cells())
    with pytest.raises(DataError, match="2 masks without images.*man_seg007.*man_seg008"):
        open_dataset(ctc_dir)


# ---------------------------------------------------------------- DeepImageJ, tiny


def test_deepimagej_binary_masks_are_8_connected(dij_dir: Path):
    ds = open_dataset(dij_dir, split="train")
    sample = ds[0]
    assert sample.labels.max() == 2  # diagonal touch joins, the separate block is the second
    assert sample.labels[2, 2] == sample.labels[5, 5] != sample.labels[10, 10]
    assert sample.meta["approximate_instances"] is True
    with pytest.raises(InputError, match="no 'test' split.*train, validation"):
        open_dataset(dij_dir, split="test")


def test_deepimagej_unannotated_and_orphans(dij_dir: Path):
    write(dij_dir / "train" / "input" / "t012.tif", np.zeros((24, 24), np.uint8))
    assert len(open_dataset(dij_dir, split="train")) == 2
    assert len(open_dataset(dij_dir, split="train", unannotated="keep")) == 3
    write(dij_dir / "train" / "output" / "man_seg099.tif", np.zeros((24, 24), np.uint8))
    with pytest.raises(DataError, match="masks without images.*man_seg099"):
        open_dataset(dij_dir)


# ---------------------------------------------------------------- Cellpose / Neuromatch, tiny


def _cells_arrays(n=3, shape=(20, 24)):
    imgs = np.zeros((n, *shape, 2), np.float32)
    imgs[..., 0] = 1.0   # cytoplasm
    imgs[..., 1] = 2.0   # nuclei
    masks = np.stack([two_cells(shape, (4, 8)).astype(np.int32)] * n)
    return imgs, masks


def test_cellpose_npz_plain_and_channels(tmp_path: Path):
    imgs, masks = _cells_arrays()
    np.savez(tmp_path / "cells_train.npz", imgs=imgs, masks=masks)
    ds = open_dataset(tmp_path / "cells_train.npz")
    assert ds.format == "cellpose-npz" and ds.names == ["train/0000", "train/0001", "train/0002"]
    assert np.all(ds[1].image == 1.0) and ds[1].labels.max() == 2
    assert np.all(open_dataset(tmp_path / "cells_train.npz", channel=1)[0].image == 2.0)
    np.savez(tmp_path / "cells_test.npz", imgs=imgs.transpose(0, 3, 1, 2)[:1], masks=masks[:1])
    test = open_dataset(tmp_path, split="test")  # channel-first stack is detected
    assert len(test) == 1 and test[0].image.shape == (20, 24) and np.all(test[0].image == 1.0)


def test_cellpose_npz_pickled_needs_trust(tmp_path: Path):
    imgs, masks = _cells_arrays(2)
    file = tmp_path / "cells_train.npz"
    np.savez(file, np.array({"imgs": imgs, "masks": masks}, dtype=object))
    with pytest.raises(DataError, match="pickled.*trust_pickle=True"):
        open_dataset(file)
    ds = open_dataset(file, trust_pickle=True)
    assert len(ds) == 2 and ds[0].labels.max() == 2


def test_cellpose_folder_rgb_uses_green(tmp_path: Path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0], rgb[..., 1] = 50, 200  # nuclei red, cytoplasm green
    write(tmp_path / "cp" / "000_img.png", rgb)
    write(tmp_path / "cp" / "000_masks.png", two_cells((16, 16), (1, 2)).astype(np.uint8))
    ds = open_dataset(tmp_path / "cp")
    assert ds.format == "cellpose-folder" and np.all(ds[0].image == 200)
    write(tmp_path / "cp" / "001_img.png", rgb)
    write(tmp_path / "cp" / "002_masks.png", rgb[..., 0])
    with pytest.raises(DataError, match="2 unpaired files.*001_img.png.*002_masks.png"):
        open_dataset(tmp_path / "cp")


# ---------------------------------------------------------------- plain folders, tiny


def test_plain_subfolders_and_flat(tmp_path: Path):
    for stem in ("a01", "b02"):
        write(tmp_path / "sub" / "images" / f"{stem}.tif", np.zeros((8, 8), np.uint8))
        write(tmp_path / "sub" / "masks" / f"{stem}_mask.tif", two_cells((8, 8), (0, 0)))
    ds = open_dataset(tmp_path / "sub")
    assert ds.format == "folders" and ds.names == ["sub/a01", "sub/b02"]
    write(tmp_path / "flat" / "cell_1.tif", np.ones((8, 8), np.float64))
    write(tmp_path / "flat" / "cell_1_labels.tif", np.ones((8, 8), np.uint8))
    sample = open_dataset(tmp_path / "flat")[0]
    assert sample.image.dtype == np.float32 and sample.labels.max() == 1


def test_plain_unpaired_listed_at_once(tmp_path: Path):
    for name in ("x_img.tif", "x_mask.tif", "y.tif", "z.tif", "w_mask.tif"):
        write(tmp_path / name, np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"3 unpaired files: w_mask.tif, y.tif, z.tif"):
        open_dataset(tmp_path)


# ---------------------------------------------------------------- conversions


def test_to_gray_dtypes_and_rgb():
    assert to_gray(np.zeros((4, 5), np.uint16), file="f").dtype == np.uint16
    assert to_gray(np.zeros((4, 5), np.int16), file="f").dtype == np.float32
    assert to_gray(np.zeros((1, 4, 5), np.uint8), file="f").shape == (4, 5)
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 50
    expected = round(100 * RGB_WEIGHTS[0] + 200 * RGB_WEIGHTS[1] + 50 * RGB_WEIGHTS[2])
    gray = to_gray(rgb, file="f")
    assert gray.dtype == np.uint8 and np.all(gray == expected)
    for bad, message in ((np.zeros((4, 5), bool), "dtype bool"),
                         (np.zeros((3, 6, 7, 8), np.uint8), "shape"),
                         (np.zeros((5, 6, 7), np.uint8), "shape")):
        with pytest.raises(DataError, match=f"f: unsupported image {message}"):
            to_gray(bad, file="f")


def test_to_labels_rules():
    labels, approx = to_labels(np.array([[0, 255], [255, 0]], np.uint8), file="m")
    assert approx and labels.max() == 1  # diagonal pixels are 8-connected
    labels, approx = to_labels(np.array([[0, 7, 3], [9, 0, 0]], np.uint16), file="m")
    assert not approx and labels.tolist() == [[0, 2, 1], [3, 0, 0]]
    with pytest.raises(DataError, match="m: mask holds non-integer"):
        to_labels(np.array([[0.5, 1.0]]), file="m")
    with pytest.raises(DataError, match="m: mask holds negative"):
        to_labels(np.array([[-1, 1]]), file="m")


def test_relabel_sequential_keeps_order():
    labels = np.array([[0, 40, 40], [12, 0, 99]])
    out = relabel_sequential(labels)
    assert out.dtype == np.int32 and out.tolist() == [[0, 2, 2], [1, 0, 3]]


# ---------------------------------------------------------------- bad input, laziness


def test_missing_path_and_unknown_layout(tmp_path: Path):
    with pytest.raises(DataError, match="does-not-exist: path does not exist"):
        open_dataset(tmp_path / "does-not-exist")
    (tmp_path / "notes.txt").write_text("hello")
    write(tmp_path / "lonely.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="no reader.*ctc:.*deepimagej:.*cellpose-npz:.*folders:"):
        open_dataset(tmp_path)


def test_truncated_tiff_named(tmp_path: Path, dij_dir: Path):
    image = dij_dir / "train" / "input" / "t010.tif"
    write(image, np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    ds = open_dataset(dij_dir, split="train")
    data = image.read_bytes()
    image.write_bytes(data[: len(data) - 2000])
    with pytest.raises(DataError, match="t010.tif: truncated TIFF"):
        ds[0]


def test_shape_mismatch_names_both_files(dij_dir: Path):
    write(dij_dir / "train" / "output" / "man_seg011.tif", np.zeros((10, 12), np.uint8))
    with pytest.raises(DataError, match=r"man_seg011.tif: mask shape \(10, 12\).*t011.tif"):
        open_dataset(dij_dir, split="train")[1]


def test_empty_dataset(tmp_path: Path):
    write(tmp_path / "e" / "01" / "t000.tif", np.zeros((4, 4), np.uint8))
    (tmp_path / "e" / "01_GT" / "SEG").mkdir(parents=True)
    with pytest.raises(DataError, match="empty data set"):
        open_dataset(tmp_path / "e")


def test_options_that_do_not_apply(ctc_dir: Path, dij_dir: Path):
    with pytest.raises(InputError, match="split do not apply to the ctc layout"):
        open_dataset(ctc_dir, split="train")
    with pytest.raises(InputError, match="format: unknown value 'ctcc'.*did you mean 'ctc'"):
        open_dataset(ctc_dir, format="ctcc")
    with pytest.raises(DataError, match="not a ctc data set"):
        open_dataset(dij_dir, format="ctc")


def test_dataset_is_lazy_sliceable_and_picklable(dij_dir: Path):
    ds = open_dataset(dij_dir)
    (dij_dir / "validation" / "input" / "t020.tif").unlink()  # opening read no pixel
    first = ds[:2]
    assert isinstance(first, Dataset) and len(first) == 2 and first[1].name == "train/t011"
    again = pickle.loads(pickle.dumps(ds))
    assert again.names == ds.names and np.array_equal(again[0].labels, ds[0].labels)
    with pytest.raises(DataError, match="t020.tif: file not found"):
        ds[2]
    assert ds.subset(["train/t011"]).names == ["train/t011"]


def test_pixel_size_from_tiff_tags(tmp_path: Path):
    import tifffile

    image = np.zeros((8, 8), np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", image, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"unit": "micron"})
    tifffile.imwrite(tmp_path / "b.tif", image, resolution=(1e4 / 1.6, 1e4 / 1.6),
                     resolutionunit="CENTIMETER")
    tifffile.imwrite(tmp_path / "c.tif", image, resolution=(72, 72), resolutionunit="INCH")
    for stem in "abc":
        write(tmp_path / f"{stem}_mask.tif", np.zeros((8, 8), np.uint8))
    sizes = [s.meta.get("pixel_size_um") for s in open_dataset(tmp_path)]
    assert sizes[0] == pytest.approx(0.65) and sizes[1] == pytest.approx(1.6) and sizes[2] is None


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint16, st.tuples(st.integers(1, 12), st.integers(1, 12)),
              elements=st.sampled_from([0, 1, 5, 7, 300, 65535])))
def test_relabel_sequential_preserves_partition(mask):
    out, approx = to_labels(mask, file="m", kind="instance")
    assert not approx and out.dtype == np.int32
    assert np.array_equal(out == 0, mask == 0)
    assert np.array_equal(np.unique(out[out > 0]), np.arange(1, len(np.unique(mask[mask > 0])) + 1))
    flat_in, flat_out = mask.ravel(), out.ravel()
    same_in = flat_in[:, None] == flat_in[None, :]
    assert np.array_equal(same_in, flat_out[:, None] == flat_out[None, :])


def test_ctc_without_truth_is_recognised_but_empty(tmp_path: Path):
    write(tmp_path / "Test-Set" / "01" / "t000.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="empty data set \\(ctc layout"):
        open_dataset(tmp_path / "Test-Set")
    kept = open_dataset(tmp_path / "Test-Set", unannotated="keep")
    assert len(kept) == 1 and kept[0].labels is None


def test_unsupported_dimensionality_and_dtype_name_the_file(tmp_path: Path):
    write(tmp_path / "vol.tif", np.zeros((5, 6, 7), np.uint8))
    write(tmp_path / "vol_mask.tif", np.zeros((6, 7), np.uint8))
    write(tmp_path / "cplx.npy", np.zeros((6, 7), np.complex64))
    write(tmp_path / "cplx_mask.npy", np.zeros((6, 7), np.uint8))
    ds = open_dataset(tmp_path)
    with pytest.raises(DataError, match=r"cplx.npy: unsupported image dtype complex64"):
        ds[0]
    with pytest.raises(DataError, match=r"vol.tif: unsupported image shape \(5, 6, 7\)"):
        ds[1]


def test_deepimagej_instance_masks_kept_exact(dij_dir: Path):
    write(dij_dir / "train" / "output" / "man_seg010.tif", two_cells((24, 24), (4, 9)))
    sample = open_dataset(dij_dir, split="train")[0]
    assert sample.labels.max() == 2 and sample.meta["approximate_instances"] is False


def test_psc_pixel_size_from_tiff(psc_dir: Path):
    assert open_dataset(psc_dir / "validation")[0].meta["pixel_size_um"] == pytest.approx(1.6)
