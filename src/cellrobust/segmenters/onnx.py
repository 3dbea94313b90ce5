"""``onnx:model.onnx``: an ONNX network run by onnxruntime.

The network takes (N, 1, H, W) (or (N, H, W)) float32 and returns one channel of the same size:
probabilities, logits or labels. A cellrobust export (``cellrobust export``) records its input
normalisation, size multiple, halo and output kind in ``metadata_props`` (key ``cellrobust``),
so it needs no options; any other file is described by options (``normalisation=``,
``multiple=``, ``halo=``, ``output=``). Frames of any size are reflect-padded to the multiple,
run whole and cropped back (:mod:`cellrobust.segmenters._exported`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cellrobust._validation import DataError, InputError
from cellrobust.segmenters._exported import OPTIONS, ExportedSegmenter, resolve_contract
from cellrobust.segmenters.protocol import file_sha256, library_versions

__all__ = ["KIND", "OPTIONS", "load_onnx"]

METADATA_KEY = "cellrobust"  # = cellrobust.models.export.METADATA_KEY (no torch import here)


def _providers(device: str) -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device in ("cuda", "auto") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device.startswith("cuda") and device != "auto":
        raise InputError(f"device {device!r}: onnxruntime here has no CUDA provider "
                         f"(available: {', '.join(available)}); use device=cpu")
    return ["CPUExecutionProvider"]


def _session(spec, path: Path, device: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(path), sess_options=options,
                                            providers=_providers(device))
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"segmenter {spec}: {path} is not a readable ONNX model ({reason}); "
                        "give a file written by an ONNX exporter") from None


def _runner(spec, session):
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) not in (3, 4):
        shapes = [i.shape for i in inputs]
        raise DataError(f"segmenter {spec}: expected a network with one (N, 1, H, W) or "
                        f"(N, H, W) input, found inputs of shapes {shapes}")
    name, rank = inputs[0].name, len(inputs[0].shape)

    def run(batch: np.ndarray) -> np.ndarray:
        x = batch if rank == 4 else batch[:, 0]
        try:
            return session.run(None, {name: x})[0]
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0]
            raise DataError(f"segmenter {spec}: onnxruntime cannot run a {x.shape} input "
                            f"({reason}); if the network needs sides that are multiples of "
                            "some size, give multiple=N") from None

    return run


def load_onnx(spec) -> ExportedSegmenter:
    """Build the segmenter of an ``onnx:`` spec (see the module docstring)."""
    path = Path(spec.target)
    if not path.is_file():
        raise InputError(f"segmenter {spec}: ONNX file {path} not found; give an existing "
                         ".onnx file")
    session = _session(spec, path, str(spec.options.get("device", "auto")))
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    metadata = json.loads(raw) if raw else None
    contract = resolve_contract(spec, metadata)
    return ExportedSegmenter(name=spec.name, run=_runner(spec, session), contract=contract,
                             kind="onnx", target=str(path), sha256=file_sha256(path),
                             options=dict(spec.options), metadata=metadata,
                             versions=library_versions("cellrobust", "onnxruntime"))


def _is_onnx(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".onnx"


def _kind():
    from cellrobust.segmenters.kind import Kind

    return Kind(name="onnx", summary="an ONNX network (e.g. cellrobust export's model.onnx)",
                target="a .onnx file", options=OPTIONS, requires=("onnxruntime",),
                extra="export", example="mine=onnx:export/model.onnx",
                build=load_onnx, detect=_is_onnx)


KIND = _kind()
