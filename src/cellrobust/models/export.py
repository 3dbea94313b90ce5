"""Export a trained U-Net: TorchScript, ONNX and a bioimage.io (format 0.5) model package.

TorchScript and ONNX files take raw gray levels (N, 1, H, W) float32 and return foreground
probabilities: the checkpoint's input normalisation and the sigmoid are inside the exported
graph (:class:`~cellrobust.models.unet.NormalisedUNet`), so the files need no separate
preprocessing. Each export is checked against PyTorch on a test image (max abs difference
<= 1e-4, else :class:`~cellrobust.DataError`).

The bioimage.io package (``<name>.bioimageio.zip``; Fiji/DeepImageJ, ilastik, QuPath) holds an
``rdf.yaml`` declaring the input normalisation as preprocessing (``scale_range`` for
``minmax``/``percentile``; a per-image ``x / max`` has no bioimage.io operator, so for ``max``
the division is part of the weights and the RDF says so), ``binarize`` (0.5) postprocessing,
the 47 px halo, test input/output tensors, a cover image and the studies' citations. It is
validated with ``bioimageio.spec`` when that package is installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from cellrobust._io import atomic_path, read_image
from cellrobust._validation import DataError
from cellrobust.models.checkpoint import load_checkpoint
from cellrobust.models.unet import NormalisedUNet, UNet, normalise

TOLERANCE = 1e-4
ONNX_OPSET = 17
CITATIONS = [
    {"text": "Gomez-de-Mariscal E. et al. DeepImageJ: A user-friendly environment to run deep "
             "learning models in ImageJ. Nat. Methods 18, 1192-1195 (2021).",
     "doi": "10.1038/s41592-021-01262-9"},
    {"text": "Ronneberger O., Fischer P., Brox T. U-Net: Convolutional networks for biomedical "
             "image segmentation. MICCAI 2015.", "doi": "10.1007/978-3-319-24574-4_28"},
    {"text": "Ulman V. et al. An objective comparison of cell-tracking algorithms. "
             "Nat. Methods 14, 1141-1152 (2017).", "doi": "10.1038/nmeth.4473"},
]


class SigmoidUNet(torch.nn.Module):
    """The bare network plus sigmoid: input already normalised (bioimage.io preprocessing)."""

    def __init__(self, net: UNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


def _as_input(image: np.ndarray) -> np.ndarray:
    """(H, W) gray levels -> (1, 1, H, W) float32."""
    return np.ascontiguousarray(np.asarray(image, dtype=np.float32)[None, None])


def _check(kind: str, got: np.ndarray, expected: np.ndarray) -> float:
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= TOLERANCE:
        raise DataError(f"{kind} export differs from PyTorch by {diff:.2e} (> {TOLERANCE})")
    return diff


def _module_and_input(net: UNet, test_image: np.ndarray,
                      wrapper: type) -> tuple[torch.nn.Module, torch.Tensor]:
    """The module to export and its example input (pre-normalised for ``SigmoidUNet``)."""
    module = wrapper(net.cpu()).eval()
    x = torch.from_numpy(_as_input(test_image))
    if wrapper is SigmoidUNet:
        x = torch.from_numpy(normalise(x, net.config.normalisation).numpy())
    return module, x


def to_torchscript(net: UNet, path: str | os.PathLike, *, test_image: np.ndarray,
                   wrapper: type = NormalisedUNet) -> float:
    """Trace ``wrapper(net)`` to TorchScript at ``path``; return the max abs difference."""
    module, x = _module_and_input(net, test_image, wrapper)
    with torch.no_grad():
        traced = torch.jit.trace(module, x, check_trace=False)
        expected = module(x).numpy()
    with atomic_path(path) as tmp:
        traced.save(str(tmp))
    loaded = torch.jit.load(str(path)).eval()
    with torch.no_grad():
        return _check("TorchScript", loaded(x).numpy(), expected)


def to_onnx(net: UNet, path: str | os.PathLike, *, test_image: np.ndarray,
            wrapper: type = NormalisedUNet) -> float:
    """Export ``wrapper(net)`` to ONNX (dynamic batch/height/width); check with onnxruntime."""
    import onnxruntime

    module, x = _module_and_input(net, test_image, wrapper)
    with torch.no_grad():
        expected = module(x).numpy()
    axes = {0: "batch", 2: "height", 3: "width"}
    with atomic_path(path) as tmp:
        torch.onnx.export(module, (x,), str(tmp), input_names=["raw"],
                          output_names=["probability"], opset_version=ONNX_OPSET,
                          dynamic_axes={"raw": axes, "probability": axes}, dynamo=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"raw": x.numpy()})[0]
    return _check("ONNX", got, expected)


def _default_test_image() -> np.ndarray:
    from cellrobust.data.synthetic import simulate_frame

    frame = simulate_frame(rng=0).image
    return np.asarray(frame[:256, :256])


def _load_test_image(test_image: str | os.PathLike | np.ndarray | None, m: int) -> np.ndarray:
    if test_image is None:
        image = _default_test_image()
    elif isinstance(test_image, np.ndarray):
        image = test_image
    else:
        image = read_image(test_image)
    if image.ndim != 2:
        raise DataError(f"test image: expected a 2-D gray image, got shape {image.shape}")
    h, w = (s - s % m for s in image.shape)
    h, w = min(h, 512), min(w, 512)
    if h < m or w < m:
        raise DataError(f"test image: expected at least {m} x {m} px, got {image.shape}")
    return np.asarray(image[:h, :w], dtype=np.float32)


def export_all(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, *,
               formats: tuple[str, ...] = ("torchscript", "onnx", "bioimageio"),
               test_image: str | os.PathLike | np.ndarray | None = None,
               name: str | None = None) -> dict[str, Path]:
    """Write the requested exports of ``checkpoint`` into ``out_dir``; return their paths."""
    net, config, meta = load_checkpoint(checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image = _load_test_image(test_image, config.multiple)
    written: dict[str, Path] = {}
    if "torchscript" in formats:
        to_torchscript(net, out / "model.torchscript.pt", test_image=image)
        written["torchscript"] = out / "model.torchscript.pt"
    if "onnx" in formats:
        to_onnx(net, out / "model.onnx", test_image=image)
        written["onnx"] = out / "model.onnx"
    if "bioimageio" in formats:
        from cellrobust.models.bioimageio import write_package

        written["bioimageio"] = write_package(net, meta, out, test_image=image,
                                              name=name or f"cellrobust U-Net {Path(checkpoint).stem}")
    return written


__all__ = ["export_all", "to_torchscript", "to_onnx", "SigmoidUNet", "TOLERANCE", "CITATIONS"]
