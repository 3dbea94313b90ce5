"""Tiled whole-frame inference, the Segmenter wrapper and `cellrobust predict`."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellrobust import InputError
from cellrobust.data.sample import Sample
from cellrobust.models.checkpoint import save_checkpoint
from cellrobust.models.inference import predict_tiled
from cellrobust.segmenters.unet import UNetSegmenter
from cellrobust.models.unet import UNetConfig, build_unet, normalise
from cellrobust.stages.predict import output_path, to_uint16

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def net():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_unet(UNetConfig(normalisation="minmax")).eval()


def _whole_canvas(net, image: np.ndarray, pad: int = 48) -> np.ndarray:
    """One pass over the frame reflect-padded by `pad` (top/left) to a multiple of 8."""
    h, w = image.shape
    H, W = -(-(h + pad) // 8) * 8 + pad, -(-(w + pad) // 8) * 8 + pad
    canvas = np.pad(normalise(image, "minmax"), ((pad, H - h - pad), (pad, W - w - pad)),
                    mode="reflect")
    with torch.no_grad():
        prob = torch.sigmoid(net(torch.from_numpy(canvas)[None, None]))[0, 0].numpy()
    return prob[pad:pad + h, pad:pad + w]


@settings(max_examples=4, deadline=None)
@given(h=st.integers(20, 150), w=st.integers(20, 150), tile=st.sampled_from([104, 128, 160]))
def test_tiles_with_47px_halo_equal_one_whole_frame_pass(net, h, w, tile):
    image = np.random.default_rng(h * 1000 + w).integers(0, 256, (h, w)).astype(np.uint8)
    tiled = predict_tiled(net, image, tile=tile, batch_size=3)
    assert tiled.shape == (h, w) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, _whole_canvas(net, image), atol=2e-5)


def test_a_too_small_halo_shows_seams(net):
    image = np.random.default_rng(1).integers(0, 256, (150, 150)).astype(np.uint8)
    exact = predict_tiled(net, image, tile=1024)
    short = predict_tiled(net, image, tile=104, halo=16)
    assert np.abs(short - exact).max() > 1e-3


def test_tta_averages_the_eight_dihedral_transforms(net):
    image = np.random.default_rng(2).integers(0, 256, (64, 64)).astype(np.float32)
    tta = predict_tiled(net, image, tile=1024, tta=True)
    outs = []
    for k in range(4):
        for flip in (False, True):
            view = np.rot90(image, k)
            view = view[:, ::-1] if flip else view
            prob = predict_tiled(net, view.copy(), tile=1024)
            outs.append(np.rot90(prob[:, ::-1] if flip else prob, -k))
    manual = np.mean(outs, axis=0)
    assert np.abs(manual - outs[0]).max() > 1e-4  # the transforms really differ
    np.testing.assert_allclose(tta, manual, atol=1e-5)


def test_invalid_tiling_options(net):
    with pytest.raises(InputError, match="tile"):
        predict_tiled(net, np.zeros((32, 32)), tile=64)  # 64 <= 2 * 48
    with pytest.raises(InputError, match="images"):
        predict_tiled(net, np.zeros((2, 2, 8, 8)))


def test_segmenter_from_checkpoint_follows_the_protocol(net, tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", net, net.config)
    seg = UNetSegmenter.from_checkpoint(path, tile=128, threshold=0.5)
    images = np.random.default_rng(3).integers(0, 256, (2, 40, 56)).astype(np.float32)
    prob = seg.predict_proba(images)
    labels = seg.segment(images)
    assert prob.shape == labels.shape == (2, 40, 56) and labels.dtype == np.int32
    assert prob.min() >= 0 and prob.max() <= 1 and seg.name == "unet:m"
    assert ((labels > 0) == (prob > 0.5)).all()
    with pytest.raises(InputError, match="unknown option"):
        UNetSegmenter.from_checkpoint(path, tiles=3)


def test_output_paths_follow_ctc_and_plain_layouts(tmp_path):
    ctc = Sample(np.zeros((4, 4)), None, "U373/02/t017", {"format": "ctc", "sequence": "02",
                                                        "frame": 17})
    assert output_path(ctc, tmp_path) == tmp_path / "02_RES" / "mask017.tif"
    plain = Sample(np.zeros((4, 4)), None, "validation/t235")
    assert output_path(plain, tmp_path) == tmp_path / "validation__t235.tif"
    with pytest.raises(Exception, match="16-bit"):
        to_uint16(np.array([[70000]]), name="x")


def test_predict_cli_writes_16bit_ctc_masks(net, tmp_path):
    from cellrobust.cli import main

    seq = tmp_path / "data" / "DS" / "02"
    seq.mkdir(parents=True)
    gt = tmp_path / "data" / "DS" / "02_GT" / "SEG"
    gt.mkdir(parents=True)
    rng = np.random.default_rng(4)
    for t in (3, 7):
        tifffile.imwrite(seq / f"t{t:03d}.tif", rng.integers(0, 256, (48, 64)).astype(np.uint8))
        tifffile.imwrite(gt / f"man_seg{t:03d}.tif", np.ones((48, 64), np.uint16))
    ckpt = save_checkpoint(tmp_path / "m.pt", net, net.config)
    out = tmp_path / "res"
    code = main(["predict", str(ckpt), "--data", str(tmp_path / "data" / "DS"), "--out",
                 str(out), "--tile", "128", "--quiet", "--probabilities"])
    assert code == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.tif"))
    assert written == ["02_RES/mask003.tif", "02_RES/mask003_prob.tif", "02_RES/mask007.tif",
                       "02_RES/mask007_prob.tif"]
    labels = tifffile.imread(out / "02_RES" / "mask003.tif")
    assert labels.dtype == np.uint16 and labels.shape == (48, 64)


def test_predict_on_real_psc_frame(psc_dir, tmp_path, net):
    from cellrobust.cli import main

    frame = psc_dir / "validation" / "input" / "t235.tif"
    ckpt = save_checkpoint(tmp_path / "m.pt", net, net.config)
    assert main(["predict", str(ckpt), "--data", str(frame), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    labels = tifffile.imread(tmp_path / "out" / "t235.tif")
    assert labels.shape == (576, 720) and labels.dtype == np.uint16


@pytest.mark.parametrize("shape, passes", [((576, 720), [(1, 1, 608, 752)]),
                                           ((520, 696), [(1, 1, 552, 728)]),
                                           ((1000, 300), [(1, 1, 1024, 400)] * 2)])
def test_default_window_runs_a_whole_psc_frame_as_one_pass(shape, passes):
    # a PSC or U373 frame fits the default 1024 px window: one forward pass of the frame with
    # 16 px of reflected context (its sides rounded up to the pooling grid); a frame taller
    # than 928 px is tiled with the full 48 px halo (two 1024 x 400 windows)
    from cellrobust.models.defaults import DEFAULT_TILE

    with torch.random.fork_rng():
        torch.manual_seed(0)
        small = build_unet(UNetConfig(width=2, depth=3)).eval()
    seen = []
    small.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    image = np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)
    predict_tiled(small, image, whole_halo=16, batch_size=1)
    assert DEFAULT_TILE == 1024 and seen == passes
