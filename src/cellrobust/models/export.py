"""Export a trained U-Net to TorchScript and ONNX files that describe themselves.

Both files take raw gray levels (N, 1, H, W) float32 and return foreground probabilities
(N, 1, H, W) float32: the checkpoint's input normalisation and the sigmoid are inside the graph
(:class:`~cellrobust.models.unet.NormalisedUNet`), so the files need no separate preprocessing.
Each file also carries cellrobust's export metadata (:func:`export_metadata`: the
normalisation, the size multiple, the halo and the output kind) - ONNX in ``metadata_props``
under the key ``cellrobust``, TorchScript in the extra file ``cellrobust.json`` - which
:mod:`cellrobust.segmenters.onnx` and :mod:`cellrobust.segmenters.torchscript` read.

Each export is checked against PyTorch on a test image (max abs difference <= 1e-4, else
:class:`~cellrobust.DataError`) before it is moved into place, so no unchecked file is left.
The bioimage.io package (:mod:`cellrobust.models.bioimageio`) builds on these functions; this
module does not import it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import torch

from cellrobust import __version__
from cellrobust._io import atomic_path
from cellrobust._validation import DataError
from cellrobust.models.inference import DEFAULT_HALO
from cellrobust.models.unet import NormalisedUNet, UNet, normalise

__all__ = ["METADATA_KEY", "ONNX_OPSET", "SigmoidUNet", "TOLERANCE", "export_metadata",
           "halo_for", "standalone_wrapper", "to_onnx", "to_torchscript"]

TOLERANCE = 1e-4
ONNX_OPSET = 17
#: ONNX ``metadata_props`` key, and TorchScript extra file ``<key>.json``, of the metadata.
METADATA_KEY = "cellrobust"
METADATA_VERSION = 1


class SigmoidUNet(torch.nn.Module):
    """The bare network plus sigmoid: input already normalised (bioimage.io preprocessing)."""

    def __init__(self, net: UNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


def halo_for(net: UNet, halo: int = DEFAULT_HALO) -> int:
    """``halo`` rounded up to the network's size multiple (47 px -> 48 for a multiple of 8 or
    16), so that a frame padded by it on each side stays on the pooling grid."""
    m = net.config.multiple
    return -(-int(halo) // m) * m


def export_metadata(net: UNet, wrapper: type = NormalisedUNet) -> dict[str, Any]:
    """What an exported graph expects and returns, as plain JSON types.

    Keys: ``format`` ("cellrobust-export"), ``version``, ``input`` ("raw": gray levels as read,
    normalised inside the graph; "normalised": already scaled by ``normalisation``),
    ``normalisation`` (the checkpoint's method), ``multiple`` (input sides must be multiples of
    it, px), ``halo`` (context px per side, a multiple of ``multiple``), ``output``
    ("probability"), ``axes`` ("bcyx"), ``model_config``, ``cellrobust_version``.
    """
    return {"format": "cellrobust-export", "version": METADATA_VERSION,
            "input": "raw" if wrapper is NormalisedUNet else "normalised",
            "normalisation": net.config.normalisation, "multiple": net.config.multiple,
            "halo": halo_for(net), "output": "probability", "axes": "bcyx",
            "model_config": net.config.to_dict(), "cellrobust_version": __version__}


def standalone_wrapper(net: UNet) -> type:
    """The graph a stand-alone TorchScript/ONNX export holds for ``net``.

    ``NormalisedUNet`` (raw gray levels in, ``"input": "raw"``) where normalising the padded
    canvas inside the graph gives the frame's values: ``none``, ``max`` and ``minmax``
    (reflection padding keeps the extremes). ``SigmoidUNet`` (``"input": "normalised"``) for
    ``percentile``: the percentiles of a padded or tiled canvas are not the frame's (a raw graph
    agreed with the checkpoint on only ~98 % of pixels of a 576 x 720 PSC frame), so the
    reader normalises each whole frame as the metadata says, as the checkpoint does.
    """
    return SigmoidUNet if net.config.normalisation == "percentile" else NormalisedUNet


def _as_input(image: np.ndarray) -> np.ndarray:
    """(H, W) gray levels -> (1, 1, H, W) float32."""
    return np.ascontiguousarray(np.asarray(image, dtype=np.float32)[None, None])


def _check(kind: str, got: np.ndarray, expected: np.ndarray) -> float:
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= TOLERANCE:
        raise DataError(f"{kind} export differs from PyTorch by {diff:.2e} (> {TOLERANCE}); "
                        "the network uses an operation the exporter does not reproduce")
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
                   wrapper: type | None = None) -> float:
    """Trace ``wrapper(net)`` to TorchScript at ``path`` (with the export metadata as the extra
    file ``cellrobust.json``); return the max abs difference to PyTorch on ``test_image``
    ((H, W) gray levels, sides multiples of the network's multiple). ``wrapper`` None:
    :func:`standalone_wrapper`."""
    wrapper = wrapper or standalone_wrapper(net)
    module, x = _module_and_input(net, test_image, wrapper)
    extra = {f"{METADATA_KEY}.json": json.dumps(export_metadata(net, wrapper))}
    with torch.no_grad():
        traced = torch.jit.trace(module, x, check_trace=False)
        expected = module(x).numpy()
    with atomic_path(path) as tmp:
        traced.save(str(tmp), _extra_files=extra)
        loaded = torch.jit.load(str(tmp)).eval()
        with torch.no_grad():
            diff = _check("TorchScript", loaded(x).numpy(), expected)
    return diff


def to_onnx(net: UNet, path: str | os.PathLike, *, test_image: np.ndarray,
            wrapper: type | None = None) -> float:
    """Export ``wrapper(net)`` to ONNX (dynamic batch/height/width, metadata in
    ``metadata_props``); check it with onnxruntime on ``test_image``; return the difference.
    ``wrapper`` None: :func:`standalone_wrapper`."""
    wrapper = wrapper or standalone_wrapper(net)
    import onnx
    import onnxruntime

    module, x = _module_and_input(net, test_image, wrapper)
    with torch.no_grad():
        expected = module(x).numpy()
    axes = {0: "batch", 2: "height", 3: "width"}
    with atomic_path(path) as tmp:
        torch.onnx.export(module, (x,), str(tmp), input_names=["raw"],
                          output_names=["probability"], opset_version=ONNX_OPSET,
                          dynamic_axes={"raw": axes, "probability": axes}, dynamo=False)
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(export_metadata(
            net, wrapper))})
        onnx.save(proto, str(tmp))
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        diff = _check("ONNX", session.run(None, {"raw": x.numpy()})[0], expected)
    return diff
