"""Cellpose and StarDist adapters on real library classes and models built here, offline.

The models are made in a temporary folder: a StarDist2D from a small Config2D (weights saved
untrained), a Cellpose network randomly initialised and saved with ``save_model`` (4.x: the
Cellpose-SAM class with its ViT shrunk to one tiny block so it runs in a second; 3.x: the
standard CPnet). The tests skip only where the library is not installed; any network access
fails loudly.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import sys

import numpy as np
import pytest

from cellrobust._validation import DataError, InputError
from cellrobust.segmenters import registry
from cellrobust.segmenters.protocol import file_sha256
from cellrobust.segmenters.registry import build_segmenter


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any download attempt (weights, data) raises instead of reaching the network."""
    def refuse(*args, **kwargs):
        raise RuntimeError("test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _require(module: str, extra: str):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed: pip install 'cellrobust[{extra}]'")
    try:
        return importlib.import_module(module)
    except Exception as exc:  # installed but broken: a failure, not a skip
        pytest.fail(f"{module} is installed but cannot be imported: {type(exc).__name__}: {exc}")


def _blobs(shape=(96, 80), n=6, seed=0) -> np.ndarray:
    """Bright gaussian discs on a dim noisy background, uint16-like gray levels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(100, 5, shape)
    for cy, cx in rng.uniform(12, np.array(shape) - 12, (n, 2)):
        image += 900 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 4.0**2))
    return image.astype(np.float32)


# --------------------------------------------------------------------------- Cellpose


def _tiny_sam(checkpoint=None):
    """segment_anything's SAM with a one-block, 32-wide ViT (the real class, tiny sizes)."""
    return sys.modules["segment_anything.build_sam"]._build_sam(
        32, 1, 2, [0], checkpoint=checkpoint)


@pytest.fixture(scope="module")
def cellpose_file(tmp_path_factory):
    _require("cellpose.models", "cellpose")
    import torch
    from cellpose import models

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cellpose") / "cellpose_tiny"
    with pytest.MonkeyPatch.context() as patch:
        if hasattr(models, "Cellpose"):  # 3.x: the standard residual U-Net
            from cellpose.resnet_torch import CPnet

            CPnet([2, 32, 64, 128, 256], 3, 3).save_model(str(path))
            yield path
        else:  # 4.x: Cellpose-SAM around a tiny ViT
            import segment_anything
            from cellpose import vit

            patch.setitem(segment_anything.sam_model_registry, "vit_l", _tiny_sam)
            vit.CPSAM().save_model(str(path))
            yield path


@pytest.fixture(scope="module")
def cellpose_segmenter(cellpose_file):
    return build_segmenter(f"cp=cellpose:{cellpose_file},cellprob_threshold=-6,"
                           "flow_threshold=0,min_size=-1,gpu=false")


def test_cellpose_loads_and_returns_int32_labels(cellpose_segmenter):
    images = np.stack([_blobs(seed=0), _blobs(seed=1)])
    labels = cellpose_segmenter.segment(images)
    assert cellpose_segmenter.name == "cp"
    assert labels.dtype == np.int32 and labels.shape == images.shape
    assert labels.max() > 0  # an untrained net with every mask kept finds something


def test_cellpose_normalises_inside_the_library(cellpose_segmenter):
    image = _blobs(seed=4)
    direct = cellpose_segmenter.model.eval(image, **{
        k: v for k, v in cellpose_segmenter.eval_kwargs(image).items() if k != "x"})[0]
    labels = cellpose_segmenter.segment(image[None])[0]
    assert np.array_equal(labels, direct)
    kwargs = cellpose_segmenter.eval_kwargs(image)
    assert kwargs["normalize"] is True and kwargs["cellprob_threshold"] == -6


def test_cellpose_options_reach_the_library(cellpose_file):
    image = _blobs(seed=5)[None]
    none = build_segmenter(f"cellpose:{cellpose_file},cellprob_threshold=20,gpu=false")
    assert none.segment(image).max() == 0
    pct = build_segmenter(f"cellpose:{cellpose_file},low=2,high=98,diameter=15,niter=50,"
                          "gpu=false")
    kwargs = pct.eval_kwargs(image[0])
    assert kwargs["normalize"] == {"normalize": True, "percentile": [2.0, 98.0]}
    assert kwargs["diameter"] == 15 and kwargs["niter"] == 50
    shifted = build_segmenter(f"cellpose:{cellpose_file},channel=1,gpu=false")
    if shifted.api >= 4:
        x = shifted.eval_kwargs(image[0])["x"]
        assert x.shape == (96, 80, 3) and np.array_equal(x[..., 1], image[0])
        assert not x[..., 0].any()


def test_cellpose_provenance(cellpose_segmenter, cellpose_file):
    prov = cellpose_segmenter.provenance()
    assert prov["kind"] == "cellpose" and prov["target"] == str(cellpose_file)
    assert prov["sha256"] == file_sha256(cellpose_file)
    assert prov["options"]["cellprob_threshold"] == -6
    assert {"cellpose", "torch"} <= set(prov["versions"])
    json.dumps(prov)


def test_cellpose_sam_with_a_smaller_vit_loads_without_patching(cellpose_file,
                                                               cellpose_segmenter, monkeypatch):
    # cellpose 4 builds every CPSAM around ViT-L; the adapter reads the file's ViT sizes
    # from its tensor shapes and builds that encoder instead (the state of a study's CLI run)
    if hasattr(sys.modules["cellpose.models"], "Cellpose"):
        pytest.skip("cellpose 3.x: no Cellpose-SAM")
    import segment_anything
    from segment_anything.build_sam import build_sam_vit_l

    registry_ = segment_anything.sam_model_registry
    monkeypatch.setitem(registry_, "vit_l", build_sam_vit_l)  # undo the fixture's patch
    seg = build_segmenter(f"cp=cellpose:{cellpose_file},cellprob_threshold=-6,"
                          "flow_threshold=0,min_size=-1,gpu=false")
    assert registry_["vit_l"] is build_sam_vit_l  # restored after loading
    assert seg.provenance()["encoder"] == {"embed_dim": 32, "depth": 1, "num_heads": 2,
                                           "global_attn": [0]}
    assert sum(p.numel() for p in seg.model.net.parameters()) < 2_000_000
    image = _blobs(seed=6)[None]
    np.testing.assert_array_equal(seg.segment(image), cellpose_segmenter.segment(image))


def test_cellpose_detects_only_unambiguous_files(cellpose_file, tmp_path):
    from cellrobust.segmenters.cellpose import is_cellpose_file

    generic = tmp_path / "weights.pth"
    shutil.copy(cellpose_file, generic)
    assert is_cellpose_file(cellpose_file)
    assert not is_cellpose_file(generic)


def test_cellpose_bad_input(cellpose_file, tmp_path):
    _require("cellpose.models", "cellpose")
    cases = [
        (f"cp=cellpose:{tmp_path / 'nope.pt'}", InputError, "no existing weights file"),
        ("cp=cellpose:cyto9", InputError, "no pretrained cellpose"),
        (f"cp=cellpose:{cellpose_file},diameterr=3", InputError, "unknown option"),
        (f"cp=cellpose:{cellpose_file},normalize=false,low=2", InputError, "normalize=true"),
        (f"cp=cellpose:{cellpose_file},channel=7", InputError, "channel"),
    ]
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a torch file")
    cases.append((f"cp=cellpose:{junk}", DataError, "cannot load"))
    for spec, error, words in cases:
        with pytest.raises(error, match=words) as info:
            build_segmenter(spec)
        assert "\n" not in str(info.value) and "cp=cellpose:" in str(info.value)


# --------------------------------------------------------------------------- StarDist


@pytest.fixture(scope="module")
def stardist_folder(tmp_path_factory):
    _require("stardist", "stardist")
    import contextlib
    import io

    from cellrobust.segmenters.stardist import import_torch_first

    import_torch_first()  # as the adapter does: torchvision after TensorFlow can crash
    import tensorflow as tf
    from stardist.models import Config2D, StarDist2D

    tf.random.set_seed(0)
    base = tmp_path_factory.mktemp("stardist")
    config = Config2D(n_rays=8, grid=(2, 2), n_channel_in=1, unet_n_depth=1,
                      unet_n_filter_base=4, train_patch_size=(64, 64), train_batch_size=2)
    with contextlib.redirect_stdout(io.StringIO()):
        model = StarDist2D(config, name="tiny", basedir=str(base))
    model.keras_model.save_weights(str(base / "tiny" / "weights_best.h5"))
    return base / "tiny"


@pytest.fixture(scope="module")
def stardist_segmenter(stardist_folder):
    return build_segmenter(f"sd=stardist:{stardist_folder},prob_thresh=0.05")


def test_stardist_loads_and_returns_int32_labels(stardist_segmenter):
    images = np.stack([_blobs(seed=0), _blobs(seed=1)])
    labels = stardist_segmenter.segment(images)
    assert stardist_segmenter.name == "sd"
    assert labels.dtype == np.int32 and labels.shape == images.shape
    assert labels.max() > 0 and labels.min() == 0


def test_stardist_matches_library_on_normalised_input(stardist_segmenter):
    from csbdeep.utils import normalize

    image = _blobs(seed=2)
    expected, _ = stardist_segmenter.model.predict_instances(
        normalize(image, 1, 99.8, axis=(0, 1)), prob_thresh=0.05)
    assert np.array_equal(stardist_segmenter.segment(image[None])[0], expected)
    # percentile normalisation makes the labels blind to the gain (a power of two: exact)
    brighter = stardist_segmenter.segment((image * 4)[None])[0]
    assert np.array_equal(brighter, expected)
    raw, _ = stardist_segmenter.model.predict_instances(image * 4, prob_thresh=0.05)
    assert not np.array_equal(raw, expected)  # the network itself is not


def test_stardist_options_reach_the_library(stardist_folder):
    image = _blobs(seed=3)[None]
    none = build_segmenter(f"stardist:{stardist_folder},prob_thresh=1.0").segment(image)
    assert none.max() == 0
    sd = build_segmenter(f"stardist:{stardist_folder},p_low=5,p_high=95,n_tiles=2x1,scale=1")
    assert sd.tiles_for((96, 80)) == (2, 1)
    from csbdeep.utils import normalize

    assert np.allclose(sd.prepare(image[0]), normalize(image[0], 5, 95, axis=(0, 1)))
    raw = build_segmenter(f"stardist:{stardist_folder},normalize=false")
    assert np.array_equal(raw.prepare(image[0]), image[0])


def test_stardist_auto_tiles_only_large_images(stardist_segmenter):
    assert stardist_segmenter.tiles_for((576, 720)) is None
    assert stardist_segmenter.tiles_for((2048, 1500)) == (2, 2)


def test_stardist_thresholds_default_to_the_models_json(stardist_folder, tmp_path):
    copy = tmp_path / "tuned"
    shutil.copytree(stardist_folder, copy)
    (copy / "thresholds.json").write_text(json.dumps({"prob": 0.3, "nms": 0.2}))
    prov = build_segmenter(f"stardist:{copy}").provenance()
    assert prov["thresholds"] == {"prob": 0.3, "nms": 0.2}
    assert "thresholds.json" in prov["files"]


def test_stardist_provenance(stardist_segmenter, stardist_folder):
    prov = stardist_segmenter.provenance()
    assert prov["kind"] == "stardist" and prov["target"] == str(stardist_folder)
    assert prov["sha256"] == file_sha256(stardist_folder / "weights_best.h5")
    assert prov["options"]["prob_thresh"] == 0.05 and prov["options"]["p_high"] == 99.8
    assert {"stardist", "csbdeep"} <= set(prov["versions"])
    assert prov["n_rays"] == 8
    json.dumps(prov)  # goes into study.json as is


def test_stardist_detects_only_stardist_folders(stardist_folder, tmp_path):
    from cellrobust.segmenters.stardist import is_stardist_folder

    other = tmp_path / "care"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"n_dim": 2, "unet_n_depth": 2}))
    assert is_stardist_folder(stardist_folder)
    assert not is_stardist_folder(other)
    assert not is_stardist_folder(stardist_folder / "config.json")


@pytest.mark.parametrize("case, error, words", [
    ("missing", InputError, ["not found", "config.json"]),
    ("no_config", InputError, ["no config.json"]),
    ("not_stardist", InputError, ["n_rays", "not a StarDist"]),
    ("no_weights", DataError, ["weights_best.h5", "train the model"]),
    ("bad_weights", DataError, ["cannot load"]),
])
def test_stardist_bad_folders(stardist_folder, tmp_path, case, error, words):
    _require("stardist", "stardist")
    folder = tmp_path / case
    if case != "missing":
        folder.mkdir()
    if case in ("not_stardist",):
        (folder / "config.json").write_text(json.dumps({"unet_n_depth": 2}))
    if case in ("no_weights", "bad_weights"):
        shutil.copy(stardist_folder / "config.json", folder / "config.json")
    if case == "bad_weights":
        (folder / "weights_best.h5").write_bytes(b"not hdf5")
    with pytest.raises(error) as info:
        build_segmenter(f"sd=stardist:{folder}")
    message = str(info.value)
    assert "\n" not in message and "sd=stardist:" in message
    assert all(w in message for w in words), message


def test_stardist_bad_options(stardist_folder):
    for option, word in (("colour=1", "unknown option"), ("prob_thresh=2", "prob_thresh"),
                         ("n_tiles=0", "n_tiles"), ("p_low=99.9", "p_low")):
        with pytest.raises(InputError, match=word):
            build_segmenter(f"stardist:{stardist_folder},{option}")


def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setattr(registry, "missing_requirements", lambda kind: list(kind.requires))
    for kind, extra in (("stardist", "stardist"), ("cellpose", "cellpose")):
        with pytest.raises(InputError, match=rf"pip install 'cellrobust\[{extra}\]'"):
            build_segmenter(f"m={kind}:somewhere")
