"""Write a bioimage.io model package (format 0.5) for a trained U-Net.

The description is built with ``bioimageio.spec``'s model classes (so the spec validates every
field as it is built) and zipped by ``bioimageio.spec.save_bioimageio_package`` into
``<name>.bioimageio.zip``: ``rdf.yaml``, TorchScript, ONNX and PyTorch state-dict weights,
``test_input.npy`` / ``test_output.npy``, ``cover.png``, ``README.md`` and any attachments
(e.g. a robustness card: a study's ``summary.md``, ``scores.csv`` and figures).

Contract declared in the package:

* input ``raw`` (batch, channel, y, x) float32; sides ``min + n * step`` with ``step`` the
  network's size multiple; the runtime pads by reflection (``pad: reflect``), as cellrobust does;
* the input normalisation as preprocessing where bioimage.io has an operator (``minmax``:
  ``scale_range`` 0-100 %, ``percentile``: 1-99.8 %, ``none``: nothing); the DeepImageJ
  ``max`` scaling (x / max per image) has none, so it is compiled into the weights and the
  runtime's tiled prediction then scales each block by its own maximum;
* output ``mask`` uint8 0/1 (``binarize`` at 0.5) with a halo of 48 px (the 47 px receptive
  radius rounded up to the size multiple, :func:`cellrobust.models.export.halo_for`), so whole
  frames and tiles both stay on the pooling grid.

The PyTorch state-dict weights name :func:`bioimageio_network` of this module as their
architecture, so they run where cellrobust is installed; TorchScript and ONNX run anywhere.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from cellrobust import __version__
from cellrobust._io import atomic_path, write_text
from cellrobust._validation import DataError, InputError
from cellrobust.models.export import ONNX_OPSET, SigmoidUNet, halo_for, to_onnx, to_torchscript
from cellrobust.models.unet import PERCENTILES, NormalisedUNet, UNet, UNetConfig

__all__ = ["CITATIONS", "bioimageio_network", "build_description", "min_side",
           "validate_package", "validation_reason", "write_package"]

CITATIONS = [
    ("Gomez-de-Mariscal E. et al. DeepImageJ: A user-friendly environment to run deep "
     "learning models in ImageJ. Nat. Methods 18, 1192-1195 (2021).", "10.1038/s41592-021-01262-9"),
    ("Ronneberger O., Fischer P., Brox T. U-Net: Convolutional networks for biomedical image "
     "segmentation. MICCAI 2015.", "10.1007/978-3-319-24574-4_28"),
    ("Ulman V. et al. An objective comparison of cell-tracking algorithms. Nat. Methods 14, "
     "1141-1152 (2017).", "10.1038/nmeth.4473"),
]
FILES = {"torchscript": "weights_torchscript.pt", "onnx": "weights.onnx",
         "pytorch_state_dict": "weights_state_dict.pt"}


def bioimageio_network(*, model_config: dict, raw_input: bool) -> torch.nn.Module:
    """The architecture of the package's PyTorch state-dict weights: the U-Net plus sigmoid,
    with the input normalisation inside when ``raw_input`` (the ``max`` scaling)."""
    net = UNet(UNetConfig.from_dict(model_config))
    return NormalisedUNet(net) if raw_input else SigmoidUNet(net)


def min_side(net: UNet) -> int:
    """Smallest input side (px): a multiple of the size multiple leaving output beyond the two
    halos."""
    m = net.config.multiple
    return (2 * halo_for(net) // m + 1) * m


def _preprocessing(method: str) -> list:
    from bioimageio.spec.model import v0_5 as s

    ops: list = [s.EnsureDtypeDescr(kwargs=s.EnsureDtypeKwargs(dtype="float32"))]
    ranges = {"minmax": (0.0, 100.0), "percentile": PERCENTILES}
    if method in ranges:
        lo, hi = ranges[method]
        ops.append(s.ScaleRangeDescr(kwargs=s.ScaleRangeKwargs(
            axes=[s.AxisId("y"), s.AxisId("x")], min_percentile=float(lo),
            max_percentile=float(hi), eps=1e-6)))
    return ops


def _tensors(net: UNet, folder: Path) -> tuple[list, list]:
    from bioimageio.spec.model import v0_5 as s

    halo, m = halo_for(net), net.config.multiple
    raw = s.TensorId("raw")
    inputs = [s.InputTensorDescr(
        id=raw, description="gray levels as acquired (one channel)",
        axes=[s.BatchAxis(), s.ChannelAxis(channel_names=[s.Identifier("gray")]),
              *(s.SpaceInputAxis(id=s.AxisId(a), size=s.ParameterizedSize(
                  min=min_side(net), step=m)) for a in "yx")],
        test_tensor=s.FileDescr(source=folder / "test_input.npy"),
        data=s.IntervalOrRatioDataDescr(type="float32"), pad=s.ReflectPadding(mode="reflect"),  # explicit: else saved as {}
        preprocessing=_preprocessing(net.config.normalisation))]
    outputs = [s.OutputTensorDescr(
        id=s.TensorId("mask"), description="foreground mask (probability > 0.5)",
        axes=[s.BatchAxis(), s.ChannelAxis(channel_names=[s.Identifier("foreground")]),
              *(s.SpaceOutputAxisWithHalo(id=s.AxisId(a), halo=halo, size=s.SizeReference(
                  tensor_id=raw, axis_id=s.AxisId(a))) for a in "yx")],
        test_tensor=s.FileDescr(source=folder / "test_output.npy"),
        data=s.NominalOrOrdinalDataDescr(values=[0, 1], type="uint8"),
        postprocessing=[s.BinarizeDescr(kwargs=s.BinarizeKwargs(threshold=0.5)),
                        s.EnsureDtypeDescr(kwargs=s.EnsureDtypeKwargs(dtype="uint8"))])]
    return inputs, outputs


def _weights(net: UNet, folder: Path):
    from bioimageio.spec.model import v0_5 as s

    version = s.Version(torch.__version__.split("+")[0])
    arch = s.ArchitectureFromLibraryDescr(
        callable=s.Identifier("bioimageio_network"), import_from=__name__,
        kwargs={"model_config": net.config.to_dict(),
                "raw_input": net.config.normalisation == "max"})
    return s.WeightsDescr(
        torchscript=s.TorchscriptWeightsDescr(source=folder / FILES["torchscript"],
                                              pytorch_version=version),
        onnx=s.OnnxWeightsDescr(source=folder / FILES["onnx"], opset_version=ONNX_OPSET,
                                parent="torchscript"),
        pytorch_state_dict=s.PytorchStateDictWeightsDescr(
            source=folder / FILES["pytorch_state_dict"], architecture=arch,
            pytorch_version=version, parent="torchscript"))


def build_description(net: UNet, meta: dict[str, Any], folder: Path, *, name: str,
                      attachments: Sequence[Path] = ()):
    """The ``bioimageio.spec`` 0.5 ``ModelDescr`` of the files staged in ``folder``.

    Raises
    ------
    DataError
        The spec rejects a field (the validator's reason, on one line).
    """
    from bioimageio.spec.generic.v0_3 import Author, CiteEntry, Doi
    from bioimageio.spec.model import v0_5 as s
    from pydantic import ValidationError

    method = net.config.normalisation
    note = ("The per-image x / max input scaling used in training is part of the weights."
            if method == "max" else f"Input scaling '{method}' is the preprocessing.")
    try:
        inputs, outputs = _tensors(net, folder)
        return s.ModelDescr(
            name=name, description="DeepImageJ U-Net for binary cell segmentation of "
            f"phase-contrast images, trained with cellrobust {__version__}. {note}",
            authors=[Author(name="cellrobust developers")],
            cite=[CiteEntry(text=text, doi=Doi(doi)) for text, doi in CITATIONS],
            license=s.LicenseId("BSD-3-Clause"), documentation=s.FileDescr(source=folder / "README.md"),
            covers=[s.FileDescr(source=folder / "cover.png")],
            tags=["unet", "segmentation", "phase-contrast", "cells", "2d", "deepimagej"],
            timestamp=datetime.datetime.now(datetime.timezone.utc),
            inputs=inputs, outputs=outputs, weights=_weights(net, folder),
            attachments=[s.FileDescr(source=p) for p in attachments],
            config={"cellrobust": _config(net, meta)})
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0].get("loc", ()))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DataError(f"bioimage.io description of {name!r} is invalid: {where}: "
                        f"{' '.join(str(errors[0].get('msg')).split())}{more}") from None


def _config(net: UNet, meta: dict[str, Any]) -> dict[str, Any]:
    metrics = {k: float(v) if isinstance(v, (float, np.floating)) else v
               for k, v in (meta.get("metrics") or {}).items()}
    return {"model_config": net.config.to_dict(), "normalisation": net.config.normalisation,
            "multiple": net.config.multiple, "halo": halo_for(net),
            "validation_metrics": metrics,
            "train_recipe": (meta.get("train_config") or {}).get("recipe")}


def _cover(image: np.ndarray, prob: np.ndarray, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2), dpi=160)
    for ax, data, title in zip(fig.subplots(1, 2), (image, prob), ("input", "foreground")):
        ax.imshow(data, cmap="gray")
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _test_tensors(net: UNet, test_image: np.ndarray, folder: Path) -> np.ndarray:
    """Write test_input.npy / test_output.npy and the cover; return the probabilities."""
    smallest = min_side(net)
    if min(test_image.shape) < smallest:
        raise InputError(f"test image: a bioimage.io package needs at least {smallest} px per "
                         f"side (twice the {halo_for(net)} px halo), got {test_image.shape}")
    raw = np.asarray(test_image, dtype=np.float32)[None, None]
    with torch.no_grad():
        prob = NormalisedUNet(net.cpu()).eval()(torch.from_numpy(raw)).numpy()
    mask = (prob > 0.5).astype(np.uint8)
    if not mask.any():
        raise DataError("test image: the model predicts only background on it, so the "
                        "package's test output would be empty; give a test image with cells")
    np.save(folder / "test_input.npy", raw)
    np.save(folder / "test_output.npy", mask)
    _cover(raw[0, 0], prob[0, 0], folder / "cover.png")
    return prob


def _stage(net: UNet, meta: dict[str, Any], folder: Path, test_image: np.ndarray, name: str,
           robustness: str | None) -> None:
    _test_tensors(net, test_image, folder)
    wrapper = NormalisedUNet if net.config.normalisation == "max" else SigmoidUNet
    to_torchscript(net, folder / FILES["torchscript"], test_image=test_image, wrapper=wrapper)
    to_onnx(net, folder / FILES["onnx"], test_image=test_image, wrapper=wrapper)
    with atomic_path(folder / FILES["pytorch_state_dict"]) as tmp:
        torch.save(wrapper(net).state_dict(), tmp)
    write_text(folder / "README.md", _readme(net, meta, name, robustness))


def _readme(net: UNet, meta: dict[str, Any], name: str, robustness: str | None) -> str:
    metrics = meta.get("metrics", {})
    score = (f"Validation Jaccard (foreground IoU, pooled over whole frames): "
             f"{metrics['val_jaccard']:.3f} at epoch {meta.get('epoch')}.\n"
             if "val_jaccard" in metrics else "No validation metrics were recorded.\n")
    text = (f"# {name}\n\nThe DeepImageJ U-Net (Gomez-de-Mariscal et al., 2021) for binary "
            "segmentation of phase-contrast cells, trained and exported with cellrobust "
            f"{__version__}.\n\nInput: one gray-level channel, sides multiples of "
            f"{net.config.multiple} px; input normalisation '{net.config.normalisation}'. "
            "Output: foreground mask (probability > 0.5). Tile with a "
            f"{halo_for(net)} px halo.\n\n## Validation\n\n{score}")
    return text + (f"\n## Robustness\n\n{robustness.strip()}\n" if robustness else "")


def write_package(net: UNet, meta: dict[str, Any], out_dir: str | os.PathLike, *,
                  test_image: np.ndarray, name: str, attachments: Sequence[Path] = (),
                  robustness: str | None = None) -> Path:
    """Write and validate ``<out_dir>/<slug of name>.bioimageio.zip``; return its path.

    Parameters
    ----------
    net : UNet
    meta : dict
        Checkpoint metadata (``metrics``, ``epoch``, ``train_config``) for the documentation.
    test_image : ndarray, shape (H, W)
        Gray levels with cells; sides multiples of the size multiple, at least
        :func:`min_side` px.
    name : str
        Model name (at least 5 characters).
    attachments : sequence of Path
        Files added to the package as attachments (e.g. a robustness card's figures).
    robustness : str, optional
        Markdown for a "Robustness" section of the documentation.

    Raises
    ------
    InputError
        Name too short or test image too small.
    DataError
        All-background test output, an export check failing, or the package invalid; no zip
        is left at the target then.
    """
    from bioimageio.spec import save_bioimageio_package

    if len(name.strip()) < 5:
        raise InputError(f"name: bioimage.io needs at least 5 characters, got {name!r}")
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip())
    target = Path(out_dir) / f"{slug}.bioimageio.zip"
    with tempfile.TemporaryDirectory(prefix="cellrobust-bioimageio-") as tmp:
        folder = Path(tmp)
        _stage(net, meta, folder, test_image, name, robustness)
        descr = build_description(net, meta, folder, name=name,
                                  attachments=[Path(p).resolve() for p in attachments])
        with atomic_path(target) as zpath:
            zpath.unlink()
            save_bioimageio_package(descr, output_path=zpath)
            validate_package(zpath, name=target.name)
    return target


def validation_reason(summary) -> str:
    """The validator's first error as one line: ``location: message``."""
    for detail in summary.details:
        for error in detail.errors:
            where = ".".join(str(p) for p in error.loc)
            message = " ".join(str(error.msg).split())
            return f"{where}: {message}" if where else message
    return f"status {summary.status}"


def validate_package(path: str | os.PathLike, *, name: str | None = None) -> str:
    """Validate a package with ``bioimageio.spec`` (format and file checks); return the status.

    Raises
    ------
    DataError
        The package is invalid: the validator's reason on one line.
    """
    from bioimageio.spec import load_description

    descr = load_description(str(path), perform_io_checks=True)
    summary = descr.validation_summary
    if summary.status not in ("passed", "valid-format"):
        raise DataError(f"{name or path}: bioimage.io validation failed: "
                        f"{validation_reason(summary)}")
    return str(summary.status)
