"""Resource caps checked before allocating; tampered checkpoints; finite severities."""

from __future__ import annotations

import io
import math
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cellrobust._io import read_image
from cellrobust._limits import check_count, check_model_size, check_npz, limit
from cellrobust._validation import DataError, InputError


def make_tiff_header_bomb(path: Path, side: int = 100_000, size: int = 4096) -> Path:
    """A ``size``-byte uncompressed TIFF whose header claims ``side`` x ``side`` uint8 pixels."""
    tags = [(256, 4, side), (257, 4, side), (258, 3, 8), (259, 3, 1), (262, 3, 1),
            (273, 4, size), (277, 3, 1), (278, 4, side), (279, 4, (side * side) % 2**32 or 1)]
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        ifd += struct.pack("<HHII" if kind == 4 else "<HHIHH", tag, kind, 1,
                           *((value,) if kind == 4 else (value, 0)))
    data = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    path.write_bytes(data + bytes(size - len(data)))
    return path


def make_npz_header_bomb(path: Path, shape=(100_000, 100_000)) -> Path:
    """An ``.npz`` whose one ``.npy`` header claims ``shape`` float64 with no data behind it."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("images.npy", header.getvalue())  # magic + header, no data
    return path


def test_tiff_header_bomb_refused_without_allocating(tmp_path: Path):
    bomb = make_tiff_header_bomb(tmp_path / "bomb.tif")
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"bomb.tif: declares an image of shape \(100000, "):
            read_image(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20


def test_large_deflate_tiff_refused_from_its_header(tmp_path: Path):
    import tifffile

    path = tmp_path / "big.tif"
    tile = np.zeros((4096, 4096), np.uint8)
    tifffile.imwrite(path, (tile for _ in range(100)), shape=(40960, 40960), dtype=np.uint8,
                     tile=(4096, 4096), compression="zlib")
    assert path.stat().st_size < 4 * 2**20
    with pytest.raises(DataError, match=r"shape \(40960, 40960\).*above the cap"):
        read_image(path)


def test_caps_are_overridable(tmp_path: Path, monkeypatch):
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((64, 64), np.uint16))
    with pytest.raises(DataError, match="above the cap of 1000 pixels"):
        read_image(tmp_path / "a.tif", max_pixels=1000)
    monkeypatch.setenv("CELLROBUST_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(DataError, match="above the cap of 1000 pixels"):
        read_image(tmp_path / "a.tif")
    monkeypatch.setenv("CELLROBUST_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(InputError, match="CELLROBUST_MAX_IMAGE_PIXELS: expected a positive"):
        limit("image_pixels")
    monkeypatch.delenv("CELLROBUST_MAX_IMAGE_PIXELS")
    assert read_image(tmp_path / "a.tif").shape == (64, 64)
    np.save(tmp_path / "b.npy", np.zeros((64, 64)))
    with pytest.raises(DataError, match="b.npy: declares"):
        read_image(tmp_path / "b.npy", max_bytes=100)


def test_npz_checked_from_headers(tmp_path: Path):
    with pytest.raises(DataError, match=r"arrays declare 74.5 GiB in total, above the cap"):
        check_npz(make_npz_header_bomb(tmp_path / "bomb.npz"))
    (tmp_path / "text.npz").write_text("pickled? no, just text\n")
    with pytest.raises(DataError, match="text.npz: not a readable .npz archive"):
        check_npz(tmp_path / "text.npz")
    np.savez_compressed(tmp_path / "ok.npz", images=np.zeros((4, 8, 8), np.uint8))
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.npz: not a readable .npz archive"):
        check_npz(tmp_path / "cut.npz")
    shape, dtype = check_npz(tmp_path / "ok.npz")["images"]
    assert shape == (4, 8, 8) and dtype == np.uint8
    np.savez_compressed(tmp_path / "zeros.npz", x=np.zeros(80 * 2**20, np.uint8))
    with pytest.raises(DataError, match="decompression bomb"):
        check_npz(tmp_path / "zeros.npz")


@pytest.mark.parametrize("n, message", [(1e8, r"in \[1, 100000\]"), (0, r"in \[1, "),
                                        (2.5, "whole number"), ("abc", "whole number"),
                                        (math.inf, "whole number"), (True, "whole number")])
def test_check_count(n, message):
    with pytest.raises(InputError, match=f"n_boot: expected a whole number.*{message}|{message}"):
        check_count("n_boot", n, "bootstrap")
    assert check_count("n_boot", 1e3, "bootstrap") == 1000


def test_model_size_cap():
    assert check_model_size(16, 3) == 481_745
    with pytest.raises(DataError, match="width 2048 and depth 6 has 509,583,697,921 param"):
        check_model_size(2048, 6, what="ckpt.pt")
    with pytest.raises(InputError, match="width 100000"):
        check_model_size(100_000, 3, what="TrainConfig", error=InputError)


def _checkpoint(tmp_path: Path, edit) -> Path:
    import torch

    from cellrobust.models.checkpoint import save_checkpoint
    from cellrobust.models.unet import UNetConfig, build_unet

    config = UNetConfig(width=2, depth=1)
    path = save_checkpoint(tmp_path / "m.pt", build_unet(config), config)
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


def _nan_weights(p):
    p["state_dict"]["head.weight"].fill_(float("nan"))


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.pop("model_config"), "'model_config' is missing, expected a dict"),
    (lambda p: p.pop("state_dict"), "'state_dict' is missing, expected a dict"),
    (lambda p: p.update(format_version="one"), "invalid checkpoint format_version 'one'"),
    (lambda p: p.update(format_version=99), "format 99 is newer"),
    (lambda p: p.update(meta=[1, 2]), "'meta' is a list, expected a dict"),
    (lambda p: p["model_config"].update(width=2048, depth=6), "above the cap"),
    (lambda p: p["model_config"].update(width=3), r"wrong shape down.0.0.weight \(2, 1, 3, 3\) != \(3, 1, 3, 3\)"),
    (lambda p: p["state_dict"].pop("head.bias"), "missing head.bias"),
    (_nan_weights, "non-finite weights .* in head.weight"),
    (lambda p: p["model_config"].update(activation="nosuch"), "invalid model_config"),
])
def test_tampered_checkpoints_one_clear_line(tmp_path: Path, edit, message):
    from cellrobust.models.checkpoint import load_checkpoint

    path = _checkpoint(tmp_path, edit)
    with pytest.raises(DataError, match=message) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("name, value", [("gaussian_noise", math.inf), ("gaussian_noise", 1e308),
                                         ("speckle", math.nan), ("poisson", -math.inf),
                                         ("illumination", 1e13), ("jpeg", math.nan)])
def test_non_finite_severities_refused(name, value):
    from cellrobust import artefacts

    with pytest.raises(InputError, match=f"{name}: .* must be a finite number"):
        artefacts.get(name).check_value(value)


def test_poisson_identity_inf_stays_valid():
    from cellrobust import artefacts
    from cellrobust.data import Sample

    assert artefacts.get("poisson").check_value(math.inf) == math.inf
    sample = Sample(np.full((8, 8), 100, np.uint8), None, "s", {})
    out, _ = artefacts.apply(sample, "poisson", math.inf, rng=0)
    assert np.array_equal(out.image, sample.image.astype(np.float32))
