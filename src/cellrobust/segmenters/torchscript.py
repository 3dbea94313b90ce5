"""``torchscript:model.torchscript.pt``: a TorchScript network (``torch.jit.load``).

Loaded with ``torch.jit.load`` only - compiled TorchScript, never a pickle. The network takes
(N, 1, H, W) float32 and returns one channel of the same size: probabilities, logits or labels.
A cellrobust export records its input normalisation, size multiple, halo and output kind in the
extra file ``cellrobust.json``; any other file is described by options (``normalisation=``,
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

__all__ = ["KIND", "OPTIONS", "load_torchscript"]

EXTRA_FILE = "cellrobust.json"  # = f"{cellrobust.models.export.METADATA_KEY}.json"


def _load(spec, path: Path, device: str):
    import torch

    from cellrobust.segmenters.unet import is_torchscript_archive

    if not is_torchscript_archive(path):
        raise DataError(f"segmenter {spec}: {path} is not a TorchScript archive (no compiled "
                        "code inside); give a cellrobust checkpoint without a prefix (or as "
                        "unet:PATH)")
    extra = {EXTRA_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except (RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"segmenter {spec}: cannot load TorchScript {path} ({reason}); give "
                        "a file written by torch.jit.save") from None
    raw = extra[EXTRA_FILE]
    metadata = json.loads(raw.decode() if isinstance(raw, bytes) else raw) if raw else None
    return module.eval(), metadata


def _runner(spec, module, device: str):
    import torch

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            try:
                out = module(torch.from_numpy(batch).to(device))
            except RuntimeError as exc:
                reason = str(exc).strip().splitlines()[-1]
                raise DataError(f"segmenter {spec}: the network cannot run a {batch.shape} "
                                f"input ({reason}); if it needs sides that are multiples of "
                                "some size, give multiple=N") from None
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.float().cpu().numpy()

    return run


def load_torchscript(spec) -> ExportedSegmenter:
    """Build the segmenter of a ``torchscript:`` spec (see the module docstring)."""
    import torch

    path = Path(spec.target)
    if not path.is_file():
        raise InputError(f"segmenter {spec}: TorchScript file {path} not found; give an "
                         "existing file written by torch.jit.save")
    device = str(spec.options.get("device", "auto"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    module, metadata = _load(spec, path, device)
    contract = resolve_contract(spec, metadata)
    return ExportedSegmenter(name=spec.name, run=_runner(spec, module, device),
                             contract=contract, kind="torchscript", target=str(path),
                             sha256=file_sha256(path), options=dict(spec.options),
                             metadata=metadata, versions=library_versions("cellrobust", "torch"))


def _detect(path: Path) -> bool:
    from cellrobust.segmenters.unet import is_torchscript_archive

    return path.is_file() and is_torchscript_archive(path)


def _kind():
    from cellrobust.segmenters.kind import Kind

    return Kind(name="torchscript", summary="a TorchScript network (e.g. cellrobust export's "
                "model.torchscript.pt)", target="a TorchScript file (torch.jit.save)",
                options=OPTIONS, requires=("torch",), extra=None,
                example="ts=torchscript:export/model.torchscript.pt", build=load_torchscript,
                detect=_detect)


KIND = _kind()
