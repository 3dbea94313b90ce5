"""Shared by the ONNX and TorchScript adapters: an exported network's input/output contract.

The contract comes from cellrobust's export metadata in the file when present
(:func:`cellrobust.models.export.export_metadata`), else from the spec's options. Each frame is
normalised (unless the graph does it itself), reflect-padded by the halo - rounded up to the
size multiple - on the top/left and to the next multiple plus the halo on the bottom/right (the
canvas of :func:`cellrobust.models.inference.predict_tiled` for one window), passed through
the network whole, and cropped back, so any frame size works. This is one whole-frame pass,
not tiled: a graph that normalises its input itself must see the whole frame, or each tile
would be scaled by its own statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from cellrobust._validation import DataError, InputError, check_choice, check_ndim

OUTPUTS = ("probability", "logits", "labels")
NORMALISATIONS = ("max", "minmax", "none", "percentile")

#: Options of the ``onnx:`` and ``torchscript:`` kinds.
OPTIONS: dict[str, str] = {
    "normalisation": "input scaling the adapter applies: max, minmax, percentile or none "
                     "(default: the metadata's for a graph exported for normalised input, else "
                     "none; not allowed when the metadata says the graph normalises itself)",
    "multiple": "frame sides are padded to a multiple of this, px (default: metadata, else 1)",
    "halo": "context px reflected onto each side, rounded up to the multiple (default: "
            "metadata, else 0)",
    "output": "probability, logits or labels (default: metadata, else probability)",
    "threshold": "foreground probability threshold (default 0.5)",
    "fill_holes": "fill holes in objects (default false)",
    "min_size": "drop objects smaller than this many px (default 0)",
    "watershed": "split touching objects by a distance-transform watershed (default false)",
    "connectivity": "8 or 4 (default 8)",
    "device": "cpu, cuda or auto (default auto)",
}


@dataclass
class Contract:
    """What the network expects and returns (resolved from metadata and options)."""

    normalisation: str = "none"
    raw_input: bool = False  # True: the graph normalises its own input
    multiple: int = 1
    halo: int = 0
    output: str = "probability"

    @property
    def pad(self) -> int:
        return -(-self.halo // self.multiple) * self.multiple


def resolve_contract(spec, metadata: dict[str, Any] | None) -> Contract:
    """Merge the file's metadata (may be None) with the spec's options (options win, except
    that a self-normalising graph refuses a ``normalisation`` option)."""
    meta = metadata or {}
    opts = spec.options
    raw = meta.get("input") == "raw"
    if raw and "normalisation" in opts:
        raise InputError(f"segmenter {spec}: the file's cellrobust metadata says the graph "
                         f"normalises its input itself ({meta.get('normalisation')}); drop "
                         "the normalisation option")
    # a graph exported for normalised input (the bioimage.io package's weights: "input":
    # "normalised") expects the metadata's normalisation to be applied before it
    default = str(meta.get("normalisation", "none")) if meta.get("input") == "normalised" \
        else "none"
    contract = Contract(normalisation=str(opts.get("normalisation", default)), raw_input=raw,
                        multiple=int(opts.get("multiple", meta.get("multiple", 1))),
                        halo=int(opts.get("halo", meta.get("halo", 0))),
                        output=str(opts.get("output", meta.get("output", "probability"))))
    check_choice("normalisation", contract.normalisation, NORMALISATIONS)
    check_choice("output", contract.output, OUTPUTS)
    if contract.multiple < 1 or contract.halo < 0:
        raise InputError(f"segmenter {spec}: expected multiple >= 1 and halo >= 0, got "
                         f"multiple={contract.multiple}, halo={contract.halo}")
    return contract


def canvas(image: np.ndarray, contract: Contract) -> np.ndarray:
    """(H, W) frame -> reflect-padded canvas, sides multiples of ``contract.multiple``."""
    m, pad = contract.multiple, contract.pad
    h, w = image.shape
    bottom, right = (-(-s // m) * m - s + pad for s in (h, w))
    mode = "reflect" if min(h, w) > 1 else "edge"
    return np.pad(image, ((pad, bottom), (pad, right)), mode=mode)


@dataclass
class ExportedSegmenter:
    """A network behind ``run(batch (B, 1, H', W') float32) -> output`` as a segmenter.

    Subclasses set ``run`` and report their kind; everything else is shared.
    """

    name: str
    run: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    contract: Contract
    kind: str
    target: str
    sha256: str
    options: dict[str, Any]
    metadata: dict[str, Any] | None = None
    versions: dict[str, str] = field(default_factory=dict)

    def _frame(self, image: np.ndarray) -> np.ndarray:
        from cellrobust.models.unet import normalise

        c = self.contract
        x = np.asarray(image, dtype=np.float32)
        if not c.raw_input and c.normalisation != "none":
            x = normalise(x, c.normalisation)
        padded = canvas(x, c)
        out = np.asarray(self.run(np.ascontiguousarray(padded[None, None])))
        if out.ndim == 4 and out.shape[1] == 1:
            out = out[:, 0]
        if out.shape != (1, *padded.shape):
            raise DataError(f"{self.kind} model {self.target}: output shape {out.shape} does "
                            f"not match its input (1, 1, {padded.shape[0]}, {padded.shape[1]}); "
                            "expected one output channel the size of the input")
        h, w = x.shape
        return out[0, c.pad:c.pad + h, c.pad:c.pad + w]

    def _outputs(self, images: np.ndarray) -> np.ndarray:
        arr = np.asarray(images)
        check_ndim("images", arr, (3,), what="(N, H, W) gray levels")
        return np.stack([self._frame(img) for img in arr])

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) gray levels -> (N, H, W) float32 foreground probabilities in [0, 1]
        (label models: their foreground as 0/1)."""
        out = self._outputs(images)
        if self.contract.output == "labels":
            return (out > 0).astype(np.float32)
        if self.contract.output == "logits":
            return (1.0 / (1.0 + np.exp(-out.astype(np.float64)))).astype(np.float32)
        if out.size and (np.nanmin(out) < -1e-4 or np.nanmax(out) > 1 + 1e-4):
            raise DataError(f"{self.kind} model {self.target}: output values span "
                            f"[{np.nanmin(out):.3g}, {np.nanmax(out):.3g}], not probabilities "
                            "in [0, 1]; give output=logits (or output=labels)")
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def segment(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) gray levels -> (N, H, W) int32 instance labels."""
        from cellrobust.models.postprocess import probabilities_to_labels, relabel_sequential

        if self.contract.output == "labels":
            out = self._outputs(images)
            return np.stack([relabel_sequential(np.rint(o).astype(np.int64)) for o in out]
                            ).astype(np.int32)
        post = {k: self.options[k] for k in ("threshold", "fill_holes", "min_size",
                                             "watershed", "connectivity") if k in self.options}
        return probabilities_to_labels(self.predict_proba(images), **post).astype(np.int32)

    def provenance(self) -> dict:
        """Kind, file path and SHA-256, options, export metadata, library versions."""
        return {"kind": self.kind, "target": self.target, "sha256": self.sha256,
                "options": dict(self.options), "contract": vars(self.contract).copy(),
                "metadata": self.metadata, "versions": self.versions}
