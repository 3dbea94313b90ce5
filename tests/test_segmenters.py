"""Classical baselines, get_segmenter, and the evaluate stage (synthetic and real PSC data)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cellrobust._validation import InputError
from cellrobust.metrics import match, pixel_counts, pixel_scores
from cellrobust.segmenters import (
    BASELINES,
    ClassicalConfig,
    ClassicalSegmenter,
    Segmenter,
    calibrate_dog_sigma,
    estimate_noise_sigma,
    get_segmenter,
    to_uint8,
)


def synthetic_cells(rng, shape=(96, 128), n=12, radius=5, noise=8.0, gradient=0.0):
    """Bright discs on a dark background (+ optional illumination ramp and noise)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    k = 0
    for _ in range(200):
        cy = rng.uniform(radius + 1, shape[0] - radius - 1)
        cx = rng.uniform(radius + 1, shape[1] - radius - 1)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        grown = (yy - cy) ** 2 + (xx - cx) ** 2 <= (radius + 3) ** 2
        if not (labels[grown] > 0).any():
            k += 1
            labels[disc] = k
        if k == n:
            break
    image = 60.0 + 80.0 * (labels > 0) + gradient * xx / shape[1]
    image = image + rng.normal(0, noise, shape)
    return np.clip(image, 0, 255).astype(np.float32), labels


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_find_bright_cells(name, rng):
    image, labels = synthetic_cells(rng)
    seg = get_segmenter(name)
    assert isinstance(seg, Segmenter) and seg.name == name
    prob = seg.predict_proba(image[None])
    assert prob.shape == (1, *image.shape) and prob.dtype == np.float32
    assert set(np.unique(prob)) <= {0.0, 1.0}
    pred = seg.segment(image[None])[0]
    assert pred.dtype == np.int32
    assert pixel_scores(pixel_counts(labels, pred))["jaccard"] > 0.6
    assert match(labels, pred, thresholds=(0.5,)).recall[0] > 0.8


def _otsu_cases():
    """(name, values) on which our Otsu threshold is compared with scikit-image's."""
    rng = np.random.default_rng(11)
    image, _ = synthetic_cells(rng, shape=(120, 160), noise=12.0)
    bimodal = np.concatenate([rng.normal(50, 5, 4000), rng.normal(120, 9, 2500)])
    return [("float32 cells", image), ("float64 cells", image.astype(np.float64)),
            ("integer-valued float64", np.round(image).astype(np.float64)),  # as NLM's
            ("float64 bimodal", bimodal), ("float32 bimodal", bimodal.astype(np.float32)),
            ("two values", np.array([3.0, 3.0, 9.0, 9.0, 9.0])),
            ("offset float32", (1000.0 + bimodal / 10).astype(np.float32)),
            ("uniform", rng.random(10_000))]


@pytest.mark.parametrize("name,values", _otsu_cases(), ids=[c[0] for c in _otsu_cases()])
@pytest.mark.parametrize("nbins", [1024, 256, 7])
def test_otsu_threshold_matches_scikit_image(name, values, nbins):
    """Same threshold as ``skimage.filters.threshold_otsu`` (same bins and tie-breaking): equal
    to float32 rounding, within one bin where rounding moved a value across an edge, and the
    masks agree on all but a few pixels in 10^4; exact on integer-valued data."""
    from skimage.filters import threshold_otsu

    from cellrobust.segmenters.baselines import _otsu_threshold

    ours = _otsu_threshold(values, float(values.min()), float(values.max()), nbins)
    theirs = float(threshold_otsu(values, nbins=nbins))
    width = (float(values.max()) - float(values.min())) / nbins
    assert abs(ours - theirs) <= max(1e-6 * abs(theirs), 1e-3 * width) or (
        abs(ours - theirs) <= width * 1.001)
    assert ((values > ours) == (values > theirs)).mean() >= 0.9999
    if name.startswith("integer") and nbins in (1024, 256):
        assert ours == pytest.approx(theirs, abs=1e-9)


def test_otsu_mask_ignores_non_finite_pixels_and_constant_images():
    from cellrobust.segmenters.baselines import _otsu_mask

    values = np.array([[1.0, 1.0, 5.0, np.nan], [5.0, np.inf, 1.0, -np.inf]])
    assert _otsu_mask(values, 16).tolist() == [[False, False, True, False],
                                                [True, True, False, False]]
    assert not _otsu_mask(np.full((4, 4), 7.0, np.float32), 16).any()
    assert not _otsu_mask(np.full((2, 2), np.nan), 16).any()


@pytest.mark.parametrize("name", BASELINES)
def test_segment_labels_each_mask_as_predict_proba_then_postprocessing(name, rng):
    """The fused per-image path of ``segment`` equals thresholding ``predict_proba`` and
    labelling the stack afterwards, with the configured post-processing."""
    from cellrobust.models.postprocess import probabilities_to_labels

    stack = np.stack([synthetic_cells(rng, n=8 + i, noise=10.0)[0] for i in range(3)])
    seg = get_segmenter(name, connectivity=4, min_size=12, fill_holes=True)
    expected = probabilities_to_labels(seg.predict_proba(stack), threshold=0.5,
                                       connectivity=4, min_size=12, fill_holes=True)
    labels = seg.segment(stack)
    assert labels.dtype == np.int32 and labels.max() > 0
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(seg.segment(stack[1]), expected[1])


def test_dog_removes_illumination_ramp_where_otsu_fails(rng):
    image, labels = synthetic_cells(rng, gradient=200.0, noise=4.0)
    jac = {name: pixel_scores(pixel_counts(labels, get_segmenter(name).segment(image)))["jaccard"]
           for name in ("otsu", "dog_otsu")}
    assert jac["dog_otsu"] > 0.6 > jac["otsu"]


def test_nlm_helps_on_heavy_noise(rng):
    image, labels = synthetic_cells(rng, noise=45.0)
    jac = {name: pixel_scores(pixel_counts(labels, get_segmenter(name).segment(image)))["jaccard"]
           for name in ("otsu", "nlm_otsu")}
    assert jac["nlm_otsu"] > jac["otsu"] + 0.1


def test_skimage_nlm_and_dark_polarity(rng):
    image, labels = synthetic_cells(rng, shape=(48, 64), n=5, noise=20.0)
    seg = get_segmenter("nlm_otsu", method="skimage", h_factor=1.0)
    assert pixel_scores(pixel_counts(labels, seg.segment(image)))["jaccard"] > 0.6
    image, labels = synthetic_cells(rng, noise=4.0)
    dark = get_segmenter("otsu", polarity="dark").segment(255 - image)
    assert pixel_scores(pixel_counts(labels, dark))["jaccard"] > 0.6


def test_float_precision_kept(rng):
    """Tiny float contrasts (that 8-bit truncation would erase) are still segmented."""
    image, labels = synthetic_cells(rng, noise=0.0)
    faint = (image - 60.0) / 80.0 * 1e-3  # cells 0.001 above background
    pred = get_segmenter("dog_otsu").segment(faint)
    assert pixel_scores(pixel_counts(labels, pred))["jaccard"] > 0.6


def test_constant_image_gives_no_cells():
    seg = ClassicalSegmenter("dog_otsu")
    assert seg.segment(np.full((2, 16, 16), 7.0)).max() == 0


def test_calibration_and_noise_estimate(rng):
    _, labels = synthetic_cells(rng, radius=7)
    area = np.bincount(labels.ravel())[1:]
    diameter = 2 * math.sqrt(np.median(area) / math.pi)
    assert calibrate_dog_sigma([labels]) == pytest.approx(diameter / (2 * math.sqrt(2)))
    with pytest.raises(InputError, match="no foreground"):
        calibrate_dog_sigma([np.zeros((4, 4))])
    noise = rng.normal(0, 5.0, (128, 128))
    assert estimate_noise_sigma(noise) == pytest.approx(5.0, rel=0.1)
    assert to_uint8(np.array([[-1.0, 1.0]])).tolist() == [[0, 255]]


def test_get_segmenter_errors(tmp_path):
    with pytest.raises(InputError, match="did you mean 'dog_otsu'"):
        get_segmenter("dog_otsus")
    with pytest.raises(InputError, match="not found"):
        get_segmenter(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="unknown option"):
        get_segmenter("otsu", sigma=3)
    with pytest.raises(InputError) as err:
        ClassicalConfig(sigma_low=-1, template=4, method="cv")
    assert "sigma_low" in str(err.value) and "template" in str(err.value)
    seg = get_segmenter("otsu")
    assert get_segmenter(seg) is seg


# ---------------------------------------------------------------- evaluate stage
def _write_dataset(root, rng, n=2):
    import tifffile

    for sub in ("input", "output"):
        (root / "validation" / sub).mkdir(parents=True)
    for i in range(n):
        image, labels = synthetic_cells(rng)
        tifffile.imwrite(root / "validation" / "input" / f"t{i:03d}.tif", image.astype(np.uint8))
        tifffile.imwrite(root / "validation" / "output" / f"man_seg{i:03d}.tif",
                         labels.astype(np.uint16))
    return root / "validation"


def test_evaluate_cli_model_and_pred(tmp_path, rng, capsys):
    import tifffile

    from cellrobust.cli import main

    data = _write_dataset(tmp_path / "d", rng)
    out = tmp_path / "out"
    assert main(["evaluate", "--data", str(data), "--model", "otsu", "--out", str(out),
                 "--thresholds", "0.5,0.75", "--set", "min_size=3", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "AP = TP/(TP+FP+FN)" in printed and "0.75" in printed
    for name in ("metrics.csv", "metrics.json", "metrics_per_image.csv", "ap_vs_iou.png",
                 "config.json"):
        assert (out / name).is_file()
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["n_images"] == 2 and summary["pixel"]["micro"]["jaccard"] > 0.6
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["metrics"]["thresholds"] == [0.5, 0.75]
    assert config["config"]["model"] == "otsu,min_size=3"
    assert config["segmenters"]["otsu"]["options"]["min_size"] == 3
    # perfect predictions from a folder: every score is 1
    preds = tmp_path / "pred"
    preds.mkdir()
    for k, f in enumerate(sorted((data / "output").iterdir())):
        labels = tifffile.imread(f)  # the second one as a binary mask: split into components
        tifffile.imwrite(preds / f.name, labels if k == 0 else (labels > 0).astype(np.uint8))
    assert main(["evaluate", "--data", str(data), "--pred", str(preds), "--out",
                 str(tmp_path / "o2"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "o2" / "metrics.json").read_text())
    assert all(r["ap"] == 1.0 for r in summary["matching"]["micro"])
    assert summary["seg"] == 1.0
    (preds / "man_seg001.tif").unlink()
    assert main(["evaluate", "--data", str(data), "--pred", str(preds), "--out",
                 str(tmp_path / "o3"), "--quiet"]) == 1
    assert "no prediction for 1 frame" in capsys.readouterr().err


def test_baselines_on_psc_validation_frame(psc_dir):
    """Clean-image pixel Jaccard of the baselines on two real PSC validation frames."""
    from cellrobust.data import open_dataset

    data = open_dataset(psc_dir / "validation")
    samples = [data[0], data[len(data) - 1]]
    for name, floor in (("dog_otsu", 0.45), ("otsu", 0.45)):
        seg = get_segmenter(name)
        counts = [pixel_counts(s.labels, seg.segment(s.image.astype(np.float32))) for s in samples]
        scores = pixel_scores(counts)
        assert scores["jaccard"] > floor
        assert scores["accuracy"] > scores["background_accuracy"]


def test_get_segmenter_loads_a_checkpoint(tmp_path, rng):
    pytest.importorskip("cellrobust.models.inference")
    import torch

    from cellrobust.models.checkpoint import save_checkpoint
    from cellrobust.models.unet import UNetConfig, build_unet

    torch.manual_seed(0)
    config = UNetConfig(width=4, depth=2)
    path = save_checkpoint(tmp_path / "tiny.pt", build_unet(config), config)
    seg = get_segmenter(path)
    assert isinstance(seg, Segmenter)
    image, _ = synthetic_cells(rng, shape=(64, 64), n=3)
    prob = seg.predict_proba(image[None])
    labels = seg.segment(image[None])
    assert prob.shape == labels.shape == (1, 64, 64)
    assert prob.min() >= 0 and prob.max() <= 1 and labels.dtype == np.int32


@pytest.mark.slow
def test_baselines_reproduce_the_study_on_psc_patches(psc_dir):
    """Per-patch Otsu on 96 random 256x256 validation patches: the study's clean-image scores.

    The study reports pixel Jaccard (mean over test patches) DoG+Otsu ~0.59, NLM+Otsu ~0.53.
    """
    from cellrobust.data import open_dataset, random_patches

    frames = list(open_dataset(psc_dir / "validation"))
    patches = [p for i, f in enumerate(frames)
               for p in random_patches(f, n=6, size=256, rng=np.random.default_rng([0, i]))]
    jaccard = {}
    for name in ("dog_otsu", "nlm_otsu"):
        seg = get_segmenter(name)
        counts = [pixel_counts(p.labels, seg.segment(p.image.astype(np.float32)))
                  for p in patches]
        jaccard[name] = pixel_scores(counts, average="macro")["jaccard"]
    assert jaccard["dog_otsu"] == pytest.approx(0.59, abs=0.03)
    assert jaccard["nlm_otsu"] == pytest.approx(0.53, abs=0.03)


def test_evaluate_on_patches_crops_models_and_predictions_alike(tmp_path, rng):
    """--patches scores the same seeded crops for a model and for whole-frame predictions."""
    import pandas as pd
    import tifffile

    from cellrobust.cli import main

    data = _write_dataset(tmp_path / "d", rng)
    preds = tmp_path / "pred"
    preds.mkdir()
    for f in sorted((data / "output").iterdir()):  # perfect whole-frame predictions
        tifffile.imwrite(preds / f.name, tifffile.imread(f))
    common = ["--data", str(data), "--patches", "3", "--patch-size", "48", "--seed", "4",
              "--quiet"]
    assert main(["evaluate", "--model", "otsu", "--out", str(tmp_path / "m"), *common]) == 0
    assert main(["evaluate", "--pred", str(preds), "--out", str(tmp_path / "p"), *common]) == 0
    by_model = json.loads((tmp_path / "m" / "metrics.json").read_text())
    by_pred = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert by_model["n_images"] == by_pred["n_images"] == 6
    # cropped perfect predictions stay perfect: crops of frame and prediction line up
    assert by_pred["pixel"]["micro"]["jaccard"] == 1.0
    assert all(r["ap"] == 1.0 for r in by_pred["matching"]["micro"])
    assert 0.5 < by_model["pixel"]["micro"]["jaccard"] < 1.0
    names_m = pd.read_csv(tmp_path / "m" / "metrics_per_image.csv").iloc[:, 0].tolist()
    names_p = pd.read_csv(tmp_path / "p" / "metrics_per_image.csv").iloc[:, 0].tolist()
    assert names_m == names_p and names_m[0].endswith("/p0")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert (config["config"]["patches"], config["config"]["patch_size"],
            config["config"]["seed"]) == (3, 48, 4)
    # another seed gives other crops
    assert main(["evaluate", "--model", "otsu", "--out", str(tmp_path / "s"), "--data",
                 str(data), "--patches", "3", "--patch-size", "48", "--seed", "5",
                 "--quiet"]) == 0
    other = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert other["pixel"]["micro"] != by_model["pixel"]["micro"]
    assert main(["evaluate", "--model", "otsu", "--out", str(tmp_path / "x"), "--data",
                 str(data), "--patches", "2", "--patch-size", "4096", "--quiet"]) == 2


def test_evaluate_reads_the_files_cellrobust_predict_writes(tmp_path, rng):
    """`evaluate --pred` finds predictions under the names `predict` gives them."""
    import tifffile

    from cellrobust.cli import main
    from cellrobust.data import open_dataset
    from cellrobust.stages.predict import output_path

    data = _write_dataset(tmp_path / "d", rng)
    preds = tmp_path / "pred"
    for sample in open_dataset(data):
        path = output_path(sample, preds)
        assert "__" in path.name  # e.g. validation__t000.tif
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, sample.labels.astype(np.uint16))
    for extra in ([], ["--patches", "2", "--patch-size", "48"]):
        out = tmp_path / f"out{len(extra)}"
        assert main(["evaluate", "--data", str(data), "--pred", str(preds), "--out", str(out),
                     "--quiet", *extra]) == 0
        assert json.loads((out / "metrics.json").read_text())["pixel"]["micro"]["jaccard"] == 1.0


@pytest.mark.parametrize(("spec", "precision"), [("psc-original", "fp32"),
                                                 ("psc-original,precision=auto", "auto"),
                                                 ("psc-original,precision=bf16", "bf16")])
def test_sweeps_measure_in_fp32_unless_the_spec_says_otherwise(spec, precision):
    from cellrobust.sweep import SweepConfig, build_segmenters

    built = build_segmenters(SweepConfig(segmenters=(spec, "dog_otsu"),
                                         artefacts=("gaussian_noise",)))
    unet = next(s for name, s in built.items() if name != "dog_otsu")
    assert unet.precision == precision
    from cellrobust.segmenters import build_segmenter
    assert build_segmenter("psc-original").precision == "auto"  # predict keeps the fast path
