"""Exports and the onnx:/torchscript:/bioimageio: adapters: same labels as the checkpoint.

One micro U-Net (width 4, depth 3: size multiple 8, halo 47 -> 48) is exported once; every
adapter then segments the same PSC frame (576 x 720) and a 500 x 700 crop of it.
Tolerances, measured and asserted: the checkpoint, ONNX and TorchScript give identical labels
at both sizes; bioimage.io (through bioimageio.core, whole frame and tiled) gives identical
labels on 576 x 720 (a multiple of the step) and, on 500 x 700, identical foreground except
within 48 px of the bottom/right edges (the runtime reflects the frame *after* the adapter's
pad to a valid size), >= 99.9 % of pixels overall.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cellrobust import DataError, InputError
from cellrobust.models.checkpoint import save_checkpoint
from cellrobust.models.unet import UNetConfig, build_unet
from cellrobust.segmenters import build_segmenter, detect_kind, file_sha256
from cellrobust.stages.export import ExportConfig, run

torch.set_num_threads(1)
PSC = Path(__file__).resolve().parents[2] / "shared" / "data" / "psc" / "validation" / "input"
HALO = 48


def _frame() -> np.ndarray:
    import tifffile

    files = sorted(PSC.glob("*.tif"))
    if not files:
        pytest.skip("shared PSC data not present")
    return tifffile.imread(files[0]).astype(np.float32)


def _net(bias: float = 0.3):
    with torch.random.fork_rng():
        torch.manual_seed(3)
        net = build_unet(UNetConfig(width=4, depth=3, normalisation="minmax")).eval()
    with torch.no_grad():
        net.head.bias.fill_(bias)  # some foreground on the test image
    return net


def _results_dir(folder: Path) -> Path:
    from matplotlib.figure import Figure

    (folder / "figures").mkdir(parents=True)
    (folder / "summary.md").write_text("# Study\n\n## Findings\n\n- trusted up to sigma 8\n")
    (folder / "scores.csv").write_text("segmenter,artefact,clean\nmine,gaussian_noise,0.8\n")
    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1])
    fig.savefig(folder / "figures" / "curves.png")
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    ckpt = save_checkpoint(root / "best.pt", _net(), _net().config, meta={"epoch": 1})
    written = run(ExportConfig(ckpt, root / "out", test_image=_frame()[:256, :256],
                               name="micro psc unet", robustness=_results_dir(root / "study")))
    folder = root / "package"
    with zipfile.ZipFile(written["bioimageio"]) as archive:
        archive.extractall(folder)
    return {"checkpoint": ckpt, **written, "folder": folder}


@pytest.fixture(scope="module")
def images():
    frame = _frame()
    return {"576x720": frame[None], "500x700": frame[None, :500, :700]}


@pytest.fixture(scope="module")
def reference(exported, images):
    # the exported graphs run each frame as one pass with the full halo of context; the
    # checkpoint's own whole-frame pass uses no reflected context unless told otherwise
    seg = build_segmenter(f"{exported['checkpoint']},whole_halo={HALO}")
    return {k: seg.segment(x) for k, x in images.items()}


def test_exports_carry_their_contract(exported):
    import onnx

    props = {p.key: p.value for p in onnx.load(str(exported["onnx"])).metadata_props}
    meta = json.loads(props["cellrobust"])
    assert (meta["input"], meta["normalisation"], meta["multiple"], meta["halo"]) == \
        ("raw", "minmax", 8, HALO)
    extra = {"cellrobust.json": ""}
    torch.jit.load(str(exported["torchscript"]), _extra_files=extra)
    assert json.loads(extra["cellrobust.json"]) == meta


@pytest.mark.parametrize("size", ["576x720", "500x700"])
@pytest.mark.parametrize("kind", ["onnx", "torchscript"])
def test_exported_graphs_give_identical_labels(exported, images, reference, kind, size):
    seg = build_segmenter(f"{kind}:{exported[kind]}")
    labels = seg.segment(images[size])
    assert labels.shape == images[size].shape and labels.dtype == np.int32
    assert reference[size].max() > 5  # the comparison is about real objects
    np.testing.assert_array_equal(labels, reference[size])


def test_kinds_are_detected_from_the_files(exported):
    assert detect_kind(str(exported["checkpoint"])) == "unet"
    assert detect_kind(str(exported["onnx"])) == "onnx"
    assert detect_kind(str(exported["torchscript"])) == "torchscript"
    assert detect_kind(str(exported["bioimageio"])) == "bioimageio"
    assert detect_kind(str(exported["folder"])) == "bioimageio"


def test_provenance_names_file_hash_and_versions(exported):
    prov = build_segmenter(f"onnx:{exported['onnx']}").provenance()
    assert prov["kind"] == "onnx" and prov["sha256"] == file_sha256(exported["onnx"])
    assert "onnxruntime" in prov["versions"] and prov["contract"]["halo"] == HALO


def test_options_describe_a_file_without_metadata(exported, tmp_path, images, reference):
    from cellrobust.models.checkpoint import load_checkpoint
    from cellrobust.models.unet import NormalisedUNet

    net = load_checkpoint(exported["checkpoint"])[0]
    x = torch.zeros(1, 1, 64, 64)
    axes = {0: "b", 2: "h", 3: "w"}
    torch.onnx.export(NormalisedUNet(net).eval(), (x,), str(tmp_path / "plain.onnx"),
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": axes, "y": axes},
                      opset_version=17, dynamo=False)
    bare = build_segmenter(f"onnx:{tmp_path / 'plain.onnx'}")
    assert bare.provenance()["metadata"] is None
    seg = build_segmenter(f"onnx:{tmp_path / 'plain.onnx'},multiple=8,halo=47")
    np.testing.assert_array_equal(seg.segment(images["500x700"]), reference["500x700"])


@pytest.mark.parametrize("kind, name", [("onnx", "weights.onnx"),
                                        ("torchscript", "weights_torchscript.pt")])
def test_package_weights_get_the_normalisation_their_metadata_names(exported, images,
                                                                     reference, kind, name):
    # the package's graphs take normalised input ("input": "normalised", "minmax"): the
    # adapter applies the metadata's normalisation, as for a checkpoint (an export of a
    # percentile checkpoint has only these as its ONNX: its whole-graph export fails)
    path = exported["folder"] / name
    seg = build_segmenter(f"{kind}:{path}")
    assert seg.metadata["input"] == "normalised" and seg.contract.normalisation == "minmax"
    assert not seg.contract.raw_input
    np.testing.assert_array_equal(seg.segment(images["576x720"]), reference["576x720"])
    raw = build_segmenter(f"{kind}:{path},normalisation=none")  # an option still wins
    assert raw.contract.normalisation == "none"
    assert not np.array_equal(raw.segment(images["576x720"]), reference["576x720"])


@pytest.mark.parametrize("where", ["bioimageio", "folder"])
def test_bioimageio_adapter_matches_the_checkpoint(exported, images, reference, where):
    seg = build_segmenter(f"bioimageio:{exported[where]}")
    np.testing.assert_array_equal(seg.segment(images["576x720"]), reference["576x720"])
    fg, ref = seg.segment(images["500x700"]) > 0, reference["500x700"] > 0
    np.testing.assert_array_equal(fg[:, :-HALO, :-HALO], ref[:, :-HALO, :-HALO])
    assert (fg == ref).mean() >= 0.999


@pytest.mark.parametrize("options", [",weights=onnx", ",weights=pytorch_state_dict",
                                     ",blocksize=10"])
def test_bioimageio_weights_and_tiling_by_the_runtime(exported, images, reference, options):
    seg = build_segmenter(f"bioimageio:{exported['bioimageio']}{options}")
    np.testing.assert_array_equal(seg.segment(images["576x720"]), reference["576x720"])


def test_package_passes_the_runtime_model_test(exported):
    from bioimageio.core import test_model

    summary = test_model(str(exported["bioimageio"]))
    failed = [d.name for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed


def test_runtime_predict_whole_frame_and_tiled_equals_cellrobust(exported, images):
    from bioimageio.core import predict

    frame = images["576x720"][0]
    expected = build_segmenter(str(exported["checkpoint"])).predict_proba(frame[None])[0] > 0.5
    whole = predict(model=str(exported["bioimageio"]), inputs=frame[None, None])
    tiled = predict(model=str(exported["bioimageio"]), inputs=frame[None, None],
                    blocksize_parameter=10)
    for sample in (whole, tiled):
        mask = sample.members["mask"].data.values[0, 0].astype(bool)
        assert mask.shape == frame.shape
        inner = (slice(HALO, -HALO),) * 2
        np.testing.assert_array_equal(mask[inner], expected[inner])


def test_package_declares_all_weights_halo_and_robustness_card(exported):
    import yaml

    with zipfile.ZipFile(exported["bioimageio"]) as archive:
        names = set(archive.namelist())
        rdf = yaml.safe_load(archive.read("rdf.yaml"))
        readme = archive.read("README.md").decode()
    assert set(rdf["weights"]) == {"torchscript", "onnx", "pytorch_state_dict"}
    assert [a.get("halo") for a in rdf["outputs"][0]["axes"][2:]] == [HALO, HALO]
    assert rdf["inputs"][0]["axes"][2]["size"] == {"min": 104, "step": 8}
    assert {"summary.md", "scores.csv", "curves.png"} <= names
    assert {a["source"] for a in rdf["attachments"]} >= {"summary.md", "curves.png"}
    assert "## Robustness" in readme and "trusted up to sigma 8" in readme


def test_all_background_model_is_refused_and_leaves_no_zip(tmp_path):
    ckpt = save_checkpoint(tmp_path / "bg.pt", _net(bias=-50.0), _net().config)
    with pytest.raises(DataError, match="only background.*test image with cells"):
        run(ExportConfig(ckpt, tmp_path / "out", formats=("bioimageio",),
                         test_image=_frame()[:128, :128], name="background model"))
    assert not list((tmp_path / "out").glob("*.zip"))


def test_invalid_description_gives_the_validator_reason_and_no_zip(tmp_path):
    ckpt = save_checkpoint(tmp_path / "m.pt", _net(), _net().config)
    with pytest.raises(DataError) as info:
        run(ExportConfig(ckpt, tmp_path / "out", formats=("bioimageio",),
                         test_image=_frame()[:128, :128], name="x" * 200))
    message = str(info.value)
    assert "invalid: name:" in message and "\n" not in message
    assert not list((tmp_path / "out").glob("*.zip"))


class _Halve(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x, 2)


def _bad_inputs(tmp_path: Path, exported) -> dict[str, tuple[str, type, str]]:
    (tmp_path / "broken.onnx").write_bytes(b"this is not a protobuf" * 10)
    bad = tmp_path / "bad.bioimageio.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("rdf.yaml", "type: model\nformat_version: 0.5.3\nname: bad\n")
    torch.jit.trace(_Halve(), torch.zeros(1, 1, 8, 8)).save(str(tmp_path / "halve.pt"))
    shutil.copy(exported["torchscript"], tmp_path / "ts.pt")
    return {
        "missing file": (f"onnx:{tmp_path / 'nope.onnx'}", InputError, "not found"),
        "missing package": (f"bioimageio:{tmp_path / 'nope'}", InputError, "not found"),
        "corrupted onnx": (f"onnx:{tmp_path / 'broken.onnx'}", DataError,
                           "not a readable ONNX model"),
        "invalid rdf zip": (f"bioimageio:{bad}", DataError, "not a valid bioimage.io package: "),
        "shape mismatch": (f"torchscript:{tmp_path / 'halve.pt'}", DataError,
                           "does not match its input"),
        "torchscript as checkpoint": (f"unet:{tmp_path / 'ts.pt'}", DataError,
                                      "TorchScript archive"),
        "checkpoint as torchscript": (f"torchscript:{exported['checkpoint']}", DataError,
                                      "not a TorchScript archive"),
        "normalising twice": (f"onnx:{exported['onnx']},normalisation=max", InputError,
                              "normalises its input itself"),
    }


def test_bad_inputs_give_one_line_each(tmp_path, exported, images):
    for case, (spec, error, text) in _bad_inputs(tmp_path, exported).items():
        with pytest.raises(error) as info:
            build_segmenter(spec).segment(images["500x700"][:, :64, :64])
        message = str(info.value)
        assert text in message, (case, message)
        assert "\n" not in message and "weights_only" not in message, (case, message)
        if case == "invalid rdf zip":  # the validator's reason follows, not cut
            assert len(message.split("package: ", 1)[1]) > 10, message


def test_percentile_checkpoint_exports_with_dynamic_size(tmp_path, images):
    # a percentile model's stand-alone graphs take normalised input (percentiles of a padded
    # canvas are not the frame's): the adapter normalises the frame as the checkpoint does
    with torch.random.fork_rng():
        torch.manual_seed(5)
        net = build_unet(UNetConfig(width=4, depth=3, normalisation="percentile")).eval()
    with torch.no_grad():
        net.head.bias.fill_(0.3)
    ckpt = save_checkpoint(tmp_path / "pct.pt", net, net.config, meta={"epoch": 1})
    written = run(ExportConfig(ckpt, tmp_path / "out", formats=("onnx", "torchscript"),
                               test_image=_frame()[:256, :256]))
    plain = build_segmenter(f"{ckpt},whole_halo={HALO}")  # the graphs' full-halo pass
    for size, x in images.items():
        expected = plain.segment(x)
        assert expected.max() > 5, size
        for kind in ("onnx", "torchscript"):
            seg = build_segmenter(f"{kind}:{written[kind]}")
            assert seg.metadata["input"] == "normalised" and not seg.contract.raw_input
            assert seg.contract.normalisation == "percentile"
            np.testing.assert_array_equal(seg.segment(x), expected, err_msg=f"{kind} {size}")


@pytest.mark.parametrize("shape", [(2, 1, 37, 53), (1, 1, 576, 720), (3, 1, 5, 5)])
def test_traceable_percentiles_equal_torch_quantile(shape):
    # the in-graph percentile normalisation (sort + gather, no torch.quantile: no ONNX operator,
    # and it refuses inputs above 2**24 elements) interpolates as torch.quantile does
    from cellrobust.models.unet import PERCENTILES, _quantiles_torch

    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 1000
    flat = x.flatten(-2)
    qs = [p / 100 for p in PERCENTILES]
    got = torch.stack([q[..., 0] for q in _quantiles_torch(flat, qs)])
    torch.testing.assert_close(got, torch.quantile(flat, torch.tensor(qs), dim=-1),
                               rtol=0, atol=1e-4)
    traced = torch.jit.trace(lambda t: _quantiles_torch(t, qs)[1], flat[:1, :1, :20])
    torch.testing.assert_close(traced(flat), _quantiles_torch(flat, qs)[1])
