"""Issue #15 reader defects: colour/palette masks, mask-folder choice, sidecar files, CTC binary
masks, per-frame "approximate", Sample repr; issue #13: no import loop inside cellrobust.data."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from datatest_helpers import two_cells, write

import cellrobust.data
from cellrobust._validation import DataError, InputError
from cellrobust.data import Sample, describe, open_dataset
from cellrobust.data._convert import to_labels

DATA_PKG = Path(cellrobust.data.__file__).parent


# ---------------------------------------------------------------- import graph (#13)


def _data_imports(file: Path) -> set[str]:
    """Modules of cellrobust.data that ``file`` imports (anywhere in it, lazily or not)."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "cellrobust.data":
                found |= {a.name for a in node.names if (DATA_PKG / f"{a.name}.py").exists()}
            elif node.module.startswith("cellrobust.data."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names
                      if a.name.startswith("cellrobust.data.")}
    return found


def test_no_import_cycle_inside_data_package():
    graph = {f.stem: _data_imports(f) - {f.stem} for f in DATA_PKG.glob("*.py")
             if f.stem != "__init__"}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n}))
                   for n in graph.get(start, ()))

    cycles = sorted(m for m in graph if reaches(m, m, {m}))
    assert cycles == [], f"modules on an import cycle: {cycles}"
    for reader in ("ctc", "deepimagej", "cellpose", "folders"):
        assert "dataset" not in graph[reader] and "_base" in graph[reader]


# ---------------------------------------------------------------- colour and palette masks


def _rgb(shape, *colours: tuple[tuple[slice, slice], tuple]) -> np.ndarray:
    out = np.zeros((*shape, len(colours[0][1])), np.uint8)
    for where, colour in colours:
        out[where] = colour
    return out


A, B = (slice(2, 6), slice(2, 7)), (slice(10, 15), slice(20, 26))  # 20 px and 30 px
ALL = (slice(None), slice(None))


@pytest.mark.parametrize("mask, n_objects, approximate", [
    # RGBA: each colour one instance, alpha 0 background (the colour under alpha 0 is ignored)
    (_rgb((32, 40), (ALL, (9, 9, 9, 0)), (A, (255, 0, 0, 255)), (B, (0, 0, 255, 255))),
     2, False),
    # RGB colours, black background; two cells sharing the red channel stay apart
    (_rgb((32, 40), (A, (200, 10, 10)), (B, (200, 10, 11))), 2, False),
    # gray RGB: equal channels are the label values (two instances 3 and 9)
    (_rgb((32, 40), (A, (3, 3, 3)), (B, (9, 9, 9))), 2, False),
    # one colour: a binary mask painted white -> connected components, approximate
    (_rgb((32, 40), (A, (255, 255, 255)), (B, (255, 255, 255))), 2, True),
    # gray + alpha
    (_rgb((32, 40), (A, (5, 255)), (B, (6, 255))), 2, False),
])
def test_colour_mask_rules(mask: np.ndarray, n_objects: int, approximate: bool):
    labels, approx = to_labels(mask, file="m.png")
    assert labels.dtype == np.int32 and labels.shape == (32, 40)
    assert labels.max() == n_objects and approx is approximate
    assert sorted(np.bincount(labels.ravel())[1:].tolist()) == [20, 30]


def test_folder_with_rgba_png_masks_reads(tmp_path: Path):
    root = tmp_path / "rgba"
    for i in range(2):
        write(root / "images" / f"c{i}.png", np.full((32, 40), 50 + i, np.uint8))
        write(root / "masks" / f"c{i}.png",
              _rgb((32, 40), (A, (255, 0, 0, 255)), (B, (0, 255, 0, 255))))
    sample = open_dataset(root)[1]
    assert sample.labels.max() == 2 and sample.meta["approximate_instances"] is False


def test_palette_png_index_is_the_label(tmp_path: Path):
    from PIL import Image

    indices = np.zeros((32, 40), np.uint8)
    indices[A], indices[B] = 2, 5
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0] + [255, 255, 255] * 255)  # every index but 0 shows white
    write(tmp_path / "p" / "cell.tif", np.ones((32, 40), np.uint8))
    image.save(tmp_path / "p" / "cell_mask.png")
    sample = open_dataset(tmp_path / "p")[0]
    # the colours alone would be one binary mask; the indices are two exact instances
    assert sample.labels.max() == 2 and sample.meta["approximate_instances"] is False


# ---------------------------------------------------------------- mask-folder choice


@pytest.fixture
def two_mask_dirs(tmp_path: Path) -> Path:
    root = tmp_path / "choice"
    write(root / "images" / "a.tif", np.ones((32, 40), np.uint8))
    write(root / "masks" / "a.tif", two_cells())
    one = np.zeros((32, 40), np.uint16)
    one[0:3, 0:3] = 4
    write(root / "labels" / "a.tif", one)
    return root


@pytest.mark.parametrize("masks, n_objects", [("labels", 1), ("masks", 2)])
def test_folders_mask_folder_chosen(two_mask_dirs: Path, masks: str, n_objects: int):
    sample = open_dataset(two_mask_dirs, masks=masks)[0]
    assert sample.labels.max() == n_objects and sample.meta["mask_folder"] == masks


def test_folders_default_warns_when_several_mask_folders(two_mask_dirs: Path):
    with pytest.warns(UserWarning, match="several mask folders.*masks='labels'"):
        assert open_dataset(two_mask_dirs)[0].labels.max() == 2


def test_folders_unknown_mask_folder_lists_candidates(two_mask_dirs: Path):
    with pytest.raises(InputError, match="masks: .* no sub-folder 'segs'.*images, labels, masks"):
        open_dataset(two_mask_dirs, masks="segs")


def test_masks_option_rejected_where_it_does_not_apply(dij_dir: Path):
    with pytest.raises(InputError, match="masks do not apply to the deepimagej layout"):
        open_dataset(dij_dir, masks="gt+st")


# ---------------------------------------------------------------- sidecar files


@pytest.mark.parametrize("sidecar", ["stats.json", "README", "README.md", ".DS_Store",
                                     "results.csv", "LICENSE", "Thumbs.db"])
def test_sidecar_beside_single_subfolder_is_ignored(tmp_path: Path, dij_dir: Path, sidecar):
    outer = dij_dir.parent
    (outer / sidecar).write_text("{}")
    assert open_dataset(outer).format == "deepimagej"


def test_several_subfolders_named_in_the_error(tmp_path: Path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with pytest.raises(DataError, match=r"2 sub-folders: a, b; open one of them"):
        open_dataset(tmp_path)


# ---------------------------------------------------------------- CTC binary masks, per frame


@pytest.fixture
def ctc_binary(tmp_path: Path) -> Path:
    """Sequence 01: t000 gold instance mask (two cells 3, 9) + binary 0/255 silver truth with two
    separate blobs; t001 silver truth only, one object labelled 7 (instance, not binary)."""
    root = tmp_path / "PhC-Bin"
    for t in range(2):
        write(root / "01" / f"t{t:03d}.tif", np.full((32, 40), 10 * t, np.uint8))
    write(root / "01_GT" / "SEG" / "man_seg000.tif", two_cells())
    binary = (two_cells() > 0).astype(np.uint8) * 255
    write(root / "01_ST" / "SEG" / "man_seg000.tif", binary)
    single = np.zeros((32, 40), np.uint16)
    single[5:9, 5:9] = 7
    write(root / "01_ST" / "SEG" / "man_seg001.tif", single)
    return root


def test_ctc_binary_silver_truth_split_and_marked_approximate(ctc_binary: Path):
    silver = open_dataset(ctc_binary, masks="st")
    first, second = silver[0], silver[1]
    assert first.labels.max() == 2 and first.meta["approximate_instances"] is True
    assert second.labels.max() == 1 and second.meta["approximate_instances"] is False
    gold = open_dataset(ctc_binary, masks="gt")[0]
    assert gold.labels.max() == 2 and gold.meta["approximate_instances"] is False


def test_describe_decides_approximate_per_frame(ctc_binary: Path):
    info = describe(ctc_binary, masks="st")
    assert info.approximate_instances is False and info.n_approximate == 1
    assert "mixed: 1 of 2 annotated frames approximate" in info.to_text()
    assert json.loads(json.dumps(info.to_dict()))["n_approximate"] == 1
    single = describe(ctc_binary, masks="gt")  # one instance frame only: exact
    assert single.approximate_instances is False and single.n_approximate == 0


def test_single_object_instance_mask_is_exact():
    mask = np.zeros((8, 8), np.uint16)
    mask[1:3, 1:3] = 7
    assert to_labels(mask, file="m")[1] is False
    assert to_labels(mask.astype(bool), file="m")[1] is True
    assert to_labels(np.zeros((8, 8), np.uint8), file="m")[1] is False  # empty: nothing approx.


# ---------------------------------------------------------------- Sample repr


def test_sample_repr_is_short_and_has_no_pixels():
    image = np.arange(200 * 300, dtype=np.float32).reshape(200, 300)
    labels = np.zeros((200, 300), np.int32)
    labels[:5, :5], labels[50:60, 50:60] = 1, 2
    text = repr(Sample(image, labels, "f", {"source": "x.tif"}))
    assert len(text) < 200 and "[[" not in text and "..." not in text
    assert "float32 200x300" in text and "2 objects" in text and "'f'" in text
    assert "labels=None" in repr(Sample(image, None, "g"))


def test_warnings_from_plain_readers_are_silent_by_default(tmp_path: Path):
    write(tmp_path / "s" / "img2d.tif", np.ones((32, 40), np.uint8))
    write(tmp_path / "s" / "mask2d.tif", two_cells())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_dataset(tmp_path / "s").n_annotated == 1
