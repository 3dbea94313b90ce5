"""Tests of the shared helpers: validation wording, random streams, atomic writes, the CLI shell."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cellrobust import _io, _rng, _validation
from cellrobust.cli import main
from cellrobust.data import Sample


def test_check_choice_lists_and_suggests():
    with pytest.raises(_validation.InputError) as err:
        _validation.check_choice("artefact", "gausian_noise", ["gaussian_noise", "speckle"])
    text = str(err.value)
    assert "did you mean 'gaussian_noise'" in text and "speckle" in text and "artefact" in text


def test_check_range_rejects_nan_and_outside():
    assert _validation.check_range("sigma", 2, low=0) == 2.0
    for bad in (-1, float("nan"), "x"):
        with pytest.raises(_validation.InputError, match="sigma"):
            _validation.check_range("sigma", bad, low=0)


def test_derive_rng_is_stable_across_processes():
    here = _rng.derive_rng(7, "psc/t150", "gaussian_noise", 3).integers(0, 2**31, 4).tolist()
    code = (
        "from cellrobust._rng import derive_rng;"
        "print(derive_rng(7, 'psc/t150', 'gaussian_noise', 3).integers(0, 2**31, 4).tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(here)
    other = _rng.derive_rng(7, "psc/t151", "gaussian_noise", 3).integers(0, 2**31, 4).tolist()
    assert other != here


def test_as_rng_passthrough_and_type_error():
    gen = np.random.default_rng(1)
    assert _rng.as_rng(gen) is gen
    with pytest.raises(TypeError, match="rng"):
        _rng.as_rng("seed")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "result.txt"
    _io.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with _io.atomic_write(target, "w") as handle:
            handle.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_tiff_roundtrip_and_truncated_file(tmp_path):
    data = np.arange(64, dtype=np.uint16).reshape(8, 8)
    path = _io.write_tiff(tmp_path / "a.tif", data)
    np.testing.assert_array_equal(_io.read_image(path), data)
    broken = tmp_path / "broken.tif"
    broken.write_bytes(path.read_bytes()[:40])
    with pytest.raises(_validation.DataError, match="broken.tif"):
        _io.read_image(broken)
    with pytest.raises(_validation.DataError, match="not found"):
        _io.read_image(tmp_path / "missing.tif")


def test_sample_rejects_shape_mismatch():
    with pytest.raises(_validation.DataError, match="shape"):
        Sample(np.zeros((4, 4)), np.zeros((4, 5), np.int32), "x")


def test_cli_usage_error_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["no-such-stage"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice" in err[0]


def test_atomic_files_get_ordinary_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        path = _io.write_text(tmp_path / "shared.txt", "x")
        tiff = _io.write_tiff(tmp_path / "shared.tif", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
    assert tiff.stat().st_mode & 0o777 == 0o644


def test_remove_stale_temporaries_only_touches_temp_files(tmp_path):
    _io.write_text(tmp_path / "keep.txt", "x")
    (tmp_path / ".hidden-user-file").write_text("mine")
    stale = tmp_path / f"{_io.TEMP_PREFIX}best.pt.abc123.tmp"
    stale.write_bytes(b"half")
    assert _io.remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden-user-file", "keep.txt"]
