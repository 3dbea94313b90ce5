"""TorchScript / ONNX exports equal PyTorch; the bioimage.io 0.5 package is complete."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
import yaml

from cellrobust import DataError
from cellrobust.models.checkpoint import save_checkpoint
from cellrobust.models.export import TOLERANCE, to_onnx, to_torchscript
from cellrobust.models.unet import NormalisedUNet, UNetConfig, build_unet
from cellrobust.stages.export import export_all


def _net(normalisation: str = "max"):
    with torch.random.fork_rng():
        torch.manual_seed(1)
        net = build_unet(UNetConfig(normalisation=normalisation, width=4)).eval()
    return net


def _image(h=112, w=128, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w)).astype(np.float32)


def test_torchscript_equals_pytorch_on_another_size(tmp_path):
    # the in-graph percentile normalisation (raw-input graph) keeps the image size dynamic
    net = _net("percentile")
    diff = to_torchscript(net, tmp_path / "m.pt", test_image=_image(), wrapper=NormalisedUNet)
    assert diff <= TOLERANCE
    other = torch.from_numpy(_image(64, 72, seed=5))[None, None]
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    with torch.no_grad():
        assert torch.allclose(loaded(other), NormalisedUNet(net)(other), atol=TOLERANCE)


def test_onnx_equals_pytorch_with_dynamic_sizes(tmp_path):
    import onnxruntime

    net = _net("max")
    assert to_onnx(net, tmp_path / "m.onnx", test_image=_image()) <= TOLERANCE
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"),
                                           providers=["CPUExecutionProvider"])
    x = _image(48, 80, seed=2)[None, None].repeat(2, axis=0)
    got = session.run(None, {"raw": x})[0]
    with torch.no_grad():
        expected = NormalisedUNet(net)(torch.from_numpy(x)).numpy()
    assert got.shape == (2, 1, 48, 80)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE)


def test_export_check_catches_a_wrong_export(tmp_path, monkeypatch):
    import cellrobust.models.export as export

    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # no export can be that exact
    with pytest.raises(DataError, match="differs from PyTorch"):
        export.to_torchscript(_net(), tmp_path / "m.pt", test_image=_image())


@pytest.mark.parametrize("normalisation", ["max", "minmax"])
def test_bioimageio_package(tmp_path, normalisation):
    net = _net(normalisation)
    with torch.no_grad():  # make sure the test output holds foreground (spec requirement)
        net.head.bias.fill_(0.3)
    ckpt = save_checkpoint(tmp_path / "best.pt", net, net.config,
                           meta={"epoch": 4, "metrics": {"val_jaccard": 0.81}})
    written = export_all(ckpt, tmp_path / "out", formats=("bioimageio",), test_image=_image(),
                         name="psc unet test")
    package = written["bioimageio"]
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        test_out = np.load(archive.open("test_output.npy"))
    assert names == {"rdf.yaml", "weights_torchscript.pt", "weights.onnx", "weights_state_dict.pt",
                     "test_input.npy", "test_output.npy", "cover.png", "README.md"}
    assert rdf["format_version"].startswith("0.5") and rdf["type"] == "model"
    pre = [op["id"] for op in rdf["inputs"][0]["preprocessing"]]
    # minmax: the runtime's scale_range, then back to float32 for the network
    assert pre == (["ensure_dtype"] if normalisation == "max" else ["ensure_dtype",
                                                                    "scale_range",
                                                                    "ensure_dtype"])
    post = rdf["outputs"][0]["postprocessing"][0]
    assert post == {"id": "binarize", "kwargs": {"threshold": 0.5}}
    assert [a.get("halo") for a in rdf["outputs"][0]["axes"][2:]] == [48, 48]  # on the grid
    assert any("10.1038/s41592-021-01262-9" == c.get("doi") for c in rdf["cite"])
    assert test_out.shape == (1, 1, 112, 128) and set(np.unique(test_out)) <= {0, 1}
    assert test_out.any()


def test_export_all_writes_every_format(tmp_path):
    net = _net()
    with torch.no_grad():
        net.head.bias.fill_(0.3)
    ckpt = save_checkpoint(tmp_path / "m.pt", net, net.config)
    written = export_all(ckpt, tmp_path / "out", formats=("torchscript", "onnx"),
                         test_image=_image())
    assert sorted(written) == ["onnx", "torchscript"]
    assert all(p.is_file() and p.stat().st_size > 10_000 for p in written.values())
