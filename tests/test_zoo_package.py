"""The bioimage.io package shipped beside the zoo (``zoo/psc-robust.bioimageio.zip``) holds the
shipped ``psc-robust`` checkpoint's weights, its robustness card, and segments as it does."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

ZIP = Path(__file__).resolve().parents[1] / "zoo" / "psc-robust.bioimageio.zip"
PSC = Path(__file__).resolve().parents[2] / "shared" / "data" / "psc" / "validation" / "input"


def test_package_weights_are_the_shipped_checkpoint():
    from cellrobust.models.checkpoint import load_checkpoint
    from cellrobust.segmenters.zoo import zoo_path

    net = load_checkpoint(zoo_path("psc-robust"))[0]
    with zipfile.ZipFile(ZIP) as archive:
        names = set(archive.namelist())
        state = torch.load(io.BytesIO(archive.read("weights_state_dict.pt")), weights_only=True)
        card = archive.read("README.md").decode()
    assert {"rdf.yaml", "weights.onnx", "weights_torchscript.pt", "summary.md"} <= names
    assert "Robustness" in card and "trusted" in card.lower()
    expected = net.state_dict()
    got = {k.removeprefix("net."): v for k, v in state.items()}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)


def test_package_segments_a_frame_as_the_checkpoint():
    pytest.importorskip("bioimageio.core")
    import tifffile

    from cellrobust.segmenters import build_segmenter

    files = sorted(PSC.glob("*.tif"))
    if not files:
        pytest.skip("shared PSC data not present")
    frame = tifffile.imread(files[0]).astype(np.float32)[None]
    package = build_segmenter(f"bioimageio:{ZIP}").segment(frame) > 0
    # the package's runtime reflect-pads the frame by the 47 px halo its RDF declares and
    # takes the percentiles over that padded sample (docs/models.md): the checkpoint with
    # the same context
    plain = build_segmenter("psc-robust,whole_halo=47").segment(frame) > 0
    assert (package == plain).mean() >= 0.999
