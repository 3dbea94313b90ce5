"""Contract tests of cellrobust.artefacts, parametrised over the whole registry."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from cellrobust import artefacts
from cellrobust._validation import InputError
from cellrobust.artefacts.normalise import minmax
from cellrobust.data import Sample

NAMES = artefacts.names()
INTENSITY = [n for n in NAMES if artefacts.get(n).kind == "intensity"]
GEOMETRIC = [n for n in NAMES if artefacts.get(n).kind == "geometric"]
# (row, col, radius) of the synthetic cells; label i + 1
CELLS = [(20, 24, 6), (22, 70, 5), (48, 48, 7), (70, 20, 5), (74, 76, 6), (50, 86, 4)]


def synthetic(dtype=np.uint8, shape=(96, 104)) -> Sample:
    """Smooth textured background with bright gaussian-profile cells at known positions."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    image = 90 + 20 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + 0.3 * xx
    labels = np.zeros(shape, np.int32)
    for i, (cy, cx, r) in enumerate(CELLS):
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        image += 110 * np.exp(-d2 / (2 * (0.6 * r) ** 2))
        labels[d2 <= r**2] = i + 1
    if np.issubdtype(dtype, np.integer):
        scale = 1 if dtype == np.uint8 else 200
        image = np.clip(np.rint(image * scale), 0, np.iinfo(dtype).max)
    return Sample(image.astype(dtype), labels, "synthetic", {})


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation: the PSNR after the best affine gray-level fit is monotone in it,
    so it measures degradation independently of the (min-max) output scaling."""
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / np.sqrt((a @ a) * (b @ b) + 1e-12))


@pytest.mark.parametrize("name", NAMES)
def test_metadata_is_consistent(name):
    art = artefacts.get(name)
    assert art.ladder[0] == art.identity == art.grid[0]
    assert len(art.ladder) == 6 and len(set(art.ladder)) == 6
    steps = np.diff(np.asarray(art.ladder, dtype=float))
    assert np.all(steps > 0) or np.all(steps < 0), "ladder must be monotone"
    json.dumps(art.summary(), default=str)
    assert art.unit and art.reference and art.description


@pytest.mark.parametrize("name", NAMES)
def test_identity_at_level_zero(name):
    sample = synthetic()
    gen = np.random.default_rng(1)
    state = gen.bit_generator.state
    out, params = artefacts.apply_level(sample, name, 0, rng=gen, normalise="clip")
    assert gen.bit_generator.state == state  # nothing drawn
    assert out.image.dtype == np.float32
    np.testing.assert_array_equal(out.image, sample.image.astype(np.float32))
    np.testing.assert_array_equal(out.labels, sample.labels)
    assert params["identity"] is True and params["level"] == 0
    default, params = artefacts.apply_level(sample, name, 0, rng=1)  # default normalisation
    expected = sample.image.astype(np.float32)
    if artefacts.get(name).default_normalise == "minmax":
        expected = minmax(expected[None])[0]
    np.testing.assert_array_equal(default.image, expected)
    assert params["normalise"] == artefacts.get(name).default_normalise


@pytest.mark.parametrize("name", INTENSITY)
def test_degradation_is_monotone(name):
    sample = synthetic(shape=(256, 256))
    scores = [corr(artefacts.apply_level(sample, name, lv, rng=5)[0].image, sample.image)
              for lv in range(6)]
    assert scores[0] == pytest.approx(1.0)
    assert all(b <= a + 2e-3 for a, b in zip(scores[1:], scores[2:])), scores
    assert scores[5] < scores[1] < 1.0, scores


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_dtype_shape_and_label_rule(name, dtype):
    sample = synthetic(dtype)
    out, params = artefacts.apply_level(sample, name, 3, rng=2)
    assert out.image.dtype == np.float32 and out.image.shape == sample.shape
    assert np.isfinite(out.image).all()
    assert out.name == sample.name and out.meta["artefact"] == params
    json.dumps(params)
    if artefacts.get(name).kind == "intensity":
        assert out.labels is sample.labels
    else:
        assert out.labels.dtype == np.int32 and out.labels.shape == sample.shape
        assert set(np.unique(out.labels)) <= set(np.unique(sample.labels))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output_and_batch_streams(name):
    sample = synthetic()
    a, pa = artefacts.apply_level(sample, name, 4, rng=11)
    b, pb = artefacts.apply_level(sample, name, 4, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(a.image, b.image)
    assert pa == pb
    stack = np.stack([sample.image, sample.image[::-1].copy()])
    value = artefacts.get(name).ladder[4]
    out, _, params = artefacts.apply_batch(stack, name, value, rng=[11, 12],
                                           labels=np.stack([sample.labels] * 2))
    np.testing.assert_array_equal(out[0], a.image)
    assert params[0] == {k: v for k, v in pa.items() if k != "level"}


def _digest(seed: int) -> dict[str, str]:
    sample = synthetic()
    result = {}
    for name in artefacts.names():
        out, params = artefacts.apply_level(sample, name, 3, rng=artefacts.stream(
            seed, sample.name, name, artefacts.get(name).ladder[3]))
        h = hashlib.sha256(out.image.tobytes())
        h.update(json.dumps(params, sort_keys=True).encode())
        result[name] = h.hexdigest()
    return result


def test_bit_identical_across_processes():
    code = ("import json, sys; sys.path.insert(0, 'tests'); "
            "from test_artefacts import _digest; print(json.dumps(_digest(42)))")
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=60, check=True)
    other = json.loads(proc.stdout.strip().splitlines()[-1])
    assert other == _digest(42)
    assert _digest(43) != other


@pytest.mark.parametrize("name", GEOMETRIC)
@pytest.mark.parametrize("zoom", [0.7, 1.6, 2.5])
def test_geometric_moves_image_and_labels_together(name, zoom):
    sample = synthetic(shape=(97, 97))
    out, _ = artefacts.apply(sample, name, zoom, rng=0, normalise="none")
    centre = 48.0
    checked = 0
    for i, (cy, cx, radius) in enumerate(CELLS):
        ey, ex = centre + zoom * (cy - centre), centre + zoom * (cx - centre)
        ids = out.labels == i + 1
        reach = zoom * radius + 1
        if min(ey, ex) - reach < 0 or max(ey, ex) + reach > 96:
            continue
        checked += 1
        ys, xs = np.nonzero(ids)
        assert abs(ys.mean() - ey) < 1.0 and abs(xs.mean() - ex) < 1.0
        r = int(np.ceil(zoom * 2))
        win = out.image[int(ey) - r:int(ey) + r + 2, int(ex) - r:int(ex) + r + 2]
        py, px = np.unravel_index(np.argmax(win), win.shape)
        assert abs(int(ey) - r + py - ey) <= 1.5 and abs(int(ex) - r + px - ex) <= 1.5
        assert ids.sum() == pytest.approx(np.pi * (zoom * radius) ** 2, rel=0.3)
    assert checked >= 1


def test_bad_inputs_raise_input_error():
    sample = synthetic()
    with pytest.raises(InputError, match="did you mean 'gaussian_noise'"):
        artefacts.get("gausian_noise")
    with pytest.raises(InputError, match="valid values are: illumination"):
        artefacts.apply(sample, "blurr", 1.0, rng=0)
    with pytest.raises(InputError,
                       match=r"sigma must be a finite number in \[0, 1e\+12\] gray levels, got -1"):
        artefacts.apply(sample, "gaussian_noise", -1.0, rng=0)
    with pytest.raises(InputError, match=r"quality must be a finite number in \[1, 100\]"):
        artefacts.apply(sample, "jpeg", 101, rng=0)
    with pytest.raises(InputError, match="must be a number"):
        artefacts.apply(sample, "defocus", "big", rng=0)
    with pytest.raises(InputError, match="must be a finite number"):
        artefacts.apply(sample, "defocus", float("nan"), rng=0)
    with pytest.raises(InputError, match="level must be an integer 0..5, got 6"):
        artefacts.apply_level(sample, "defocus", 6, rng=0)
    with pytest.raises(InputError, match="level must be an integer"):
        artefacts.apply_level(sample, "defocus", 1.5, rng=0)
    with pytest.raises(InputError, match=r"expected a 2-D array"):
        artefacts.apply(Sample(np.zeros((2, 8, 8)), None, "x"), "defocus", 1.0, rng=0)
    with pytest.raises(InputError, match=r"expected a 3-D array"):
        artefacts.apply_batch(np.zeros((8, 8)), "defocus", 1.0, rng=0)
    with pytest.raises(InputError, match="unknown option.*psff.*valid options are: psf"):
        artefacts.apply(sample, "defocus", 1.0, rng=0, psff="disk")
    with pytest.raises(InputError, match="psf: unknown value 'disc'.*did you mean 'disk'"):
        artefacts.apply(sample, "defocus", 1.0, rng=0, psf="disc")
    with pytest.raises(InputError, match="normalise: unknown value"):
        artefacts.apply(sample, "defocus", 1.0, rng=0, normalise="max")
    with pytest.raises(InputError, match="one generator per image"):
        artefacts.apply_batch(sample.image[None], "speckle", 0.1, rng=[1, 2])
    with pytest.raises(InputError, match="labels: expected shape"):
        artefacts.apply_batch(sample.image[None], "zoom", 2.0, rng=0, labels=sample.labels)
    with pytest.raises(InputError, match="real numeric"):
        artefacts.apply_batch(np.zeros((1, 4, 4), bool), "speckle", 0.1, rng=0)
    with pytest.raises(InputError, match="pass cell_diameter"):
        artefacts.apply(Sample(sample.image, None, "x"), "defocus", 0.2, rng=0,
                        relative_to="diameter")
