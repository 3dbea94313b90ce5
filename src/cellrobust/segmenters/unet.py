"""cellrobust's own U-Net checkpoints (``.pt``) as segmenters.

The checkpoint carries the network's architecture and its input normalisation, so inference
normalises exactly as training did (:func:`cellrobust.models.inference.predict_tiled`); the
probabilities go through the same threshold + connected components as every probability model
(:func:`cellrobust.models.postprocess.probabilities_to_labels`).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellrobust._validation import DataError, InputError, check_ndim
from cellrobust.models.defaults import DEFAULT_HALO, DEFAULT_TILE
from cellrobust.segmenters.protocol import file_sha256, library_versions

__all__ = ["OPTIONS", "WHOLE_HALO", "UNetSegmenter", "is_torchscript_archive"]

#: Reflected context px of an image that fits one window (a patch, a PSC or U373 frame),
#: instead of the 47 px halo. 0: the bare image, the network's own zero "same" padding, which
#: is how it saw its training patches. Reflected context fabricates neighbours; measured on the
#: PSC validation split with the three shipped models (``scripts/patch_context.py``; docs/
#: training.md), 16 px bring 256² crops no closer to the network's answer with the real
#: neighbours (99.776 % vs 99.789 % of pixels, mean of the models) nor to the annotations
#: (Jaccard 0.8406 vs 0.8404; per model -0.0023, -0.0014, +0.0032) and whole frames neither
#: (0.7438 vs 0.7433), for 1.27x the pixels of a 256² patch and 1.10x of a 576 x 720 frame.
WHOLE_HALO = 0

#: Options of a U-Net checkpoint spec (also of the TorchScript/ONNX exports of one).
OPTIONS: dict[str, str] = {
    "tile": f"window side in px, a multiple of the network's size multiple (default {DEFAULT_TILE})",
    "halo": f"context px discarded on each window side (default {DEFAULT_HALO})",
    "batch_size": "windows per forward pass (default 2)",
    "tta": "average the 8 dihedral transforms (default false; 8x slower)",
    "threshold": "foreground probability threshold (default 0.5)",
    "fill_holes": "fill holes in objects (default false)",
    "min_size": "drop objects smaller than this many px (default 0)",
    "watershed": "split touching objects by a distance-transform watershed (default false)",
    "connectivity": "8 or 4 (default 8)",
    "device": "cpu, cuda, cuda:N or auto (default auto)",
    "backend": "auto, eager, graph (oneDNN fusion) or compile: execution path, probed and "
               "cached (default auto)",
    "precision": "auto, fp32 or bf16 (default auto; backend=eager,precision=fp32 forces the "
                 "reference path)",
    "whole_halo": "reflected context px of an image that fits one window, run as one pass "
                  f"(default {WHOLE_HALO}: the network's zero padding; {DEFAULT_HALO} = the "
                  "full halo)",
    "path_cache": "JSON file of probed inference paths, or off (default: the user cache)",
}


@dataclass
class UNetSegmenter:
    """A trained U-Net as a :class:`~cellrobust.segmenters.Segmenter`.

    Parameters
    ----------
    model : UNet
    name : str
    tile, halo, batch_size, tta : see :func:`cellrobust.models.inference.predict_tiled`
    threshold, fill_holes, min_size, watershed, connectivity :
        Passed to :func:`cellrobust.models.postprocess.probabilities_to_labels`.
    device : str
    whole_halo : int
        See :func:`cellrobust.models.inference.predict_tiled` (default :data:`WHOLE_HALO`).
    backend, precision, path_cache :
        The execution path (:class:`cellrobust.models.fastpath.FastPathConfig`; ``cache``
        is ``path_cache``): probed at first use per window size, recorded in
        :meth:`provenance` (``inference_path``).
    meta : dict
        The checkpoint's metadata (``path``, ``sha256``, training record).
    """

    model: Any
    name: str = "unet"
    tile: int = DEFAULT_TILE
    halo: int = DEFAULT_HALO
    batch_size: int = 2
    tta: bool = False
    threshold: float = 0.5
    fill_holes: bool = False
    min_size: int = 0
    watershed: bool = False
    connectivity: int = 8
    device: str = "cpu"
    whole_halo: int = WHOLE_HALO
    backend: str = "auto"
    precision: str = "auto"
    path_cache: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from cellrobust.models.fastpath import FastPathConfig

        cache = None if self.path_cache in (None, "") else str(self.path_cache)
        self._path = FastPathConfig(backend=str(self.backend), precision=str(self.precision),
                                    cache=cache, threshold=float(self.threshold))
        self._runner = None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, name: str | None = None,
                        device: str = "auto", **options: Any) -> "UNetSegmenter":
        """Load ``path`` (a cellrobust ``.pt``) with the normalisation stored in it.

        Torch threads are not touched here: the application sets them once for the process.
        """
        import torch

        from cellrobust.models.checkpoint import load_checkpoint

        unknown = sorted(set(options) - (set(OPTIONS) - {"device"}))
        if unknown:
            raise InputError(f"UNetSegmenter: unknown option(s) {unknown}; valid: "
                             f"{sorted(set(OPTIONS) - {'device'})}")
        if is_torchscript_archive(path):
            raise DataError(f"{path}: this is a TorchScript archive, not a cellrobust "
                            f"checkpoint; give it as torchscript:{path}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model, _, meta = load_checkpoint(path, device=device)
        model = model.to(memory_format=torch.channels_last)
        meta["sha256"] = file_sha256(path)
        default = os.path.splitext(os.path.basename(str(path)))[0]
        return cls(model=model, name=name or f"unet:{default}", device=device, meta=meta,
                   **options)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) raw gray levels -> (N, H, W) float32 probabilities in [0, 1]."""
        from cellrobust.models.inference import predict_tiled

        arr = np.asarray(images)
        check_ndim("images", arr, (3,), what="(N, H, W) gray levels")
        return predict_tiled(self.model, arr, tile=self.tile, halo=self.halo,
                             batch_size=self.batch_size, tta=self.tta, device=self.device,
                             whole_halo=int(self.whole_halo), runner=self.runner)

    @property
    def runner(self):
        """The :class:`~cellrobust.models.fastpath.InferenceRunner` (made at first use)."""
        if self._runner is None:
            from cellrobust.models.fastpath import InferenceRunner

            self._runner = InferenceRunner(self.model, self._path, device=self.device)
        return self._runner

    def segment(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) raw gray levels -> (N, H, W) int32 instance labels."""
        from cellrobust.models.postprocess import probabilities_to_labels

        return probabilities_to_labels(
            self.predict_proba(images), threshold=self.threshold,
            connectivity=self.connectivity, fill_holes=self.fill_holes,
            min_size=self.min_size, watershed=self.watershed).astype(np.int32)

    def provenance(self) -> dict:
        """Kind, checkpoint path and SHA-256, options, architecture, library versions."""
        options = {k: getattr(self, k) for k in OPTIONS}
        return {"kind": "unet", "target": self.meta.get("path"), "sha256": self.meta.get("sha256"),
                "options": options, "model_config": self.model.config.to_dict(),
                "inference_path": self.runner.describe(),
                "versions": library_versions("cellrobust", "torch")}


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """True for a TorchScript zip (``torch.jit.save``): it holds compiled ``code/``."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in n or n.endswith("constants.pkl") for n in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _is_checkpoint(path: Path) -> bool:
    return path.is_file() and path.suffix in (".pt", ".pth") and not is_torchscript_archive(path)


def _build(spec) -> UNetSegmenter:
    from cellrobust.segmenters.zoo import zoo_path

    path = zoo_path(spec.target) or Path(spec.target)
    if not path.is_file():
        raise InputError(f"segmenter {spec}: checkpoint {path} not found; give an existing .pt "
                         "file written by cellrobust train")
    options = dict(spec.options)
    device = str(options.pop("device", "auto"))
    return UNetSegmenter.from_checkpoint(path, name=spec.name, device=device, **options)


def _kind():
    from cellrobust.segmenters.kind import Kind
    from cellrobust.segmenters.zoo import ZOO

    return Kind(name="unet", summary="a cellrobust U-Net checkpoint (cellrobust train)",
                target=f"a .pt file, or a shipped model: {', '.join(ZOO)}",
                options=OPTIONS, requires=("torch",), extra=None,
                example="mine=runs/a/best.pt,tta=true", build=_build, detect=_is_checkpoint)


KIND = _kind()
