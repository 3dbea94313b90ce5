"""The artefacts CLI (list, gallery, corrupt) and the torch training-time path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from cellrobust.artefacts import apply_batch, names
from cellrobust.artefacts.torch_ops import OPS, apply_torch
from cellrobust.cli import main


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(0)
    files, masks = [], []
    for i in range(2):
        img = (60 + rng.random((48, 40)) * 120).astype(np.uint8)
        mask = np.zeros((48, 40), np.uint16)
        mask[10:20, 10:20], mask[30:40, 20:30] = 1, 2
        files.append(tmp_path / f"img{i}.tif")
        masks.append(tmp_path / f"mask{i}.tif")
        tifffile.imwrite(files[-1], img)
        tifffile.imwrite(masks[-1], mask)
    return files, masks


def test_list_prints_every_artefact_with_unit(capsys):
    assert main(["artefacts", "list"]) == 0
    text = capsys.readouterr().out
    for name in names():
        assert name in text
    assert "gray levels" in text and "ladder 0-5" in text
    assert main(["artefacts", "list", "--json"]) == 0
    infos = json.loads(capsys.readouterr().out)
    assert [i["name"] for i in infos] == names()
    assert len(infos[0]["presets"]["study"]) == 41


def test_corrupt_writes_images_masks_and_params(image_files, tmp_path):
    files, masks = image_files
    out = tmp_path / "out"
    code = main(["corrupt", *map(str, files), "--artefact", "zoom", "--level", "3",
                 "--out", str(out), "--masks", *map(str, masks)])
    assert code == 0
    img = tifffile.imread(out / "img0.tif")
    assert img.dtype == np.float32 and img.shape == (48, 40)
    mask = tifffile.imread(out / "masks" / "img0.tif")
    assert mask.dtype == np.int32 and set(np.unique(mask)) <= {0, 1, 2}
    params = json.loads((out / "params.json").read_text())
    from cellrobust.artefacts import get

    assert params["value"] == get("zoom").ladder[3] and len(params["files"]) == 2
    # the same file gives the same result whatever else is in the batch
    code = main(["corrupt", str(files[1]), "--artefact", "speckle", "--severity", "0.1",
                 "--out", str(tmp_path / "a"), "--keep-dtype"])
    code2 = main(["corrupt", str(tmp_path), "--artefact", "speckle", "--severity", "0.1",
                  "--out", str(tmp_path / "b"), "--keep-dtype"])
    assert code == code2 == 0
    a = tifffile.imread(tmp_path / "a" / "img1.tif")
    assert a.dtype == np.uint8
    np.testing.assert_array_equal(a, tifffile.imread(tmp_path / "b" / "img1.tif"))


def test_corrupt_options_and_usage_errors(image_files, tmp_path, capsys):
    files, _ = image_files
    ok = main(["corrupt", str(files[0]), "--artefact", "defocus", "--severity", "2",
               "--option", "psf=disk", "--out", str(tmp_path / "o")])
    assert ok == 0
    params = json.loads((tmp_path / "o" / "params.json").read_text())
    assert params["files"][str(files[0])]["psf"] == "disk"
    capsys.readouterr()
    assert main(["corrupt", str(files[0]), "--artefact", "defocuss", "--level", "1",
                 "--out", str(tmp_path / "x")]) == 2
    assert "did you mean 'defocus'" in capsys.readouterr().err
    assert main(["corrupt", str(files[0]), "--artefact", "defocus", "--severity", "-1",
                 "--out", str(tmp_path / "x")]) == 2
    assert main(["corrupt", str(tmp_path / "missing.tif"), "--artefact", "defocus",
                 "--level", "1", "--out", str(tmp_path / "x")]) == 1


def test_gallery_draws_a_png(image_files, tmp_path):
    files, _ = image_files
    out = tmp_path / "g.png"
    assert main(["artefacts", "gallery", "--out", str(out), "--data", str(files[0]),
                 "--artefact", "zoom", "--artefact", "gaussian_noise"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_torch_gaussian_noise_and_illumination_formulas():
    gen = torch.Generator().manual_seed(0)
    x = torch.full((4, 1, 128, 128), 100.0)
    y = apply_torch(x, "gaussian_noise", torch.tensor([0.0, 5.0, 10.0, 20.0]), generator=gen,
                    normalise="none")
    assert y.shape == x.shape
    stds = y.flatten(1).std(dim=1)
    assert torch.allclose(stds, torch.tensor([0.0, 5.0, 10.0, 20.0]), rtol=0.03, atol=1e-4)
    blob = apply_torch(torch.zeros(2, 40, 60), "illumination", 500.0, generator=gen,
                       normalise="none")
    assert blob.amax(dim=(1, 2)).min() > 499.0
    norm = apply_torch(torch.rand(2, 16, 16) * 50, "illumination", 300.0, generator=gen)
    assert float(norm.amin()) == 0.0 and float(norm.amax()) == pytest.approx(255.0)


def test_torch_path_matches_numpy_statistics():
    rng = np.random.default_rng(0)
    x = (50 + rng.random((8, 64, 64)) * 150).astype(np.float32)
    for name in OPS:
        from cellrobust.artefacts import get

        value = get(name).ladder[3]
        ref, _, _ = apply_batch(x, name, value, rng=1, normalise="none")
        got = apply_torch(torch.from_numpy(x), name, value,
                          generator=torch.Generator().manual_seed(1), normalise="none").numpy()
        err_ref, err_got = np.abs(ref - x).mean(), np.abs(got - x).mean()
        assert err_got == pytest.approx(err_ref, rel=0.15, abs=0.05), name


def test_torch_identity_defocus_mass_and_bad_input():
    x = torch.rand(3, 32, 32) * 255
    same = apply_torch(x, "poisson", float("inf"), normalise="none")
    assert torch.equal(same, x)
    blurred = apply_torch(x, "defocus", torch.tensor([0.5, 1.0, 3.0]), normalise="none")
    assert torch.allclose(blurred.mean(dim=(1, 2)), x.mean(dim=(1, 2)), rtol=0.02)
    with pytest.raises(ValueError, match="jpeg.*valid values"):
        apply_torch(x, "jpeg", 50.0)
    with pytest.raises(ValueError, match="must lie in"):
        apply_torch(x, "gaussian_noise", -1.0)
    with pytest.raises(ValueError, match="expected shape"):
        apply_torch(torch.rand(2, 3, 8, 8), "speckle", 0.1)
