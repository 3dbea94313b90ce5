"""``bioimageio:PATH``: a bioimage.io model package run by ``bioimageio.core``.

PATH is a local ``rdf.yaml`` / ``*.bioimageio.yaml``, a folder holding one, or a package zip.
The official runtime does everything the package declares: pre- and post-processing, axes,
halo (padding the frame as the input's ``pad`` says) and, with ``blocksize=N``, tiling into
blocks of ``min + N * step`` px per axis; every weight format it runs here (TorchScript, ONNX,
PyTorch state dict; TensorFlow when installed) can be chosen with ``weights=``. The adapter only
arranges each (H, W) frame on the input's axes, reflect-pads its bottom/right to a valid input
size (``min + n * step``) (cropped back afterwards), and turns the output
into labels: float outputs are probabilities (threshold + connected components), a 0/1 mask
(``binarize`` or nominal values {0, 1}) gives its connected components, other integer outputs
are instance labels used as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cellrobust._validation import DataError, InputError, check_ndim
from cellrobust.segmenters.protocol import file_sha256, library_versions

__all__ = ["KIND", "OPTIONS", "BioimageioSegmenter", "find_rdf"]

RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
OUTPUTS = ("probability", "mask", "labels")

OPTIONS: dict[str, str] = {
    "weights": "weight format to run: torchscript, onnx, pytorch_state_dict, ... (default: "
               "the runtime's choice among the package's)",
    "blocksize": "tile with the runtime's block-size parameter N (blocks of min + N * step px "
                 "per axis; default: whole frames)",
    "output": "probability, mask or labels (default: from the output's description)",
    "threshold": "foreground probability threshold for probability outputs (default 0.5)",
    "fill_holes": "fill holes in objects (default false)",
    "min_size": "drop objects smaller than this many px (default 0)",
    "watershed": "split touching objects by a distance-transform watershed (default false)",
    "connectivity": "8 or 4 (default 8)",
    "device": "cpu or cuda (default: the runtime's choice)",
}


def _is_rdf(path: Path) -> bool:
    return path.name in RDF_NAMES or path.name.endswith(".bioimageio.yaml")


def find_rdf(path: Path) -> Path | None:
    """The package source a path stands for: the rdf file itself, the rdf inside a folder,
    or a zip holding an rdf at its root; None when there is none."""
    import zipfile

    if path.is_file() and _is_rdf(path):
        return path
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and _is_rdf(p))
        return found[0] if found else None
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return path if any(_is_rdf(Path(n)) and "/" not in n
                               for n in archive.namelist()) else None
    return None


def _detect(path: Path) -> bool:
    return find_rdf(path) is not None


def _output_kind(descr) -> str:
    """probability | mask | labels, from the output's data description and postprocessing."""
    out = descr.outputs[0]
    data = out.data[0] if isinstance(out.data, (list, tuple)) else out.data
    ops = [getattr(op, "id", "") for op in getattr(out, "postprocessing", [])]
    dtype = str(getattr(data, "type", "float32"))
    values = getattr(data, "values", None)
    if "binarize" in ops or (values is not None and sorted(values) == [0, 1]):
        return "mask"
    return "probability" if dtype.startswith("float") else "labels"


def _valid(size: int, axis) -> int:
    """Smallest input side >= ``size`` that the axis accepts (``min + n * step``)."""
    from bioimageio.spec.model import v0_5

    spec = axis.size
    if isinstance(spec, v0_5.ParameterizedSize):
        return spec.min + max(0, -(-(size - spec.min) // spec.step)) * spec.step
    if isinstance(spec, int) and size > spec:
        raise DataError(f"model input axis {axis.id} has a fixed size of {spec} px, smaller "
                        f"than this frame ({size} px); give blocksize=N to tile")
    return spec if isinstance(spec, int) else size


class BioimageioSegmenter:
    """A bioimage.io model as a :class:`~cellrobust.segmenters.Segmenter`."""

    def __init__(self, spec, source: Path, descr, pipeline) -> None:
        self.name = spec.name
        self.spec, self.source, self.descr, self.pipeline = spec, source, descr, pipeline
        self.options = dict(spec.options)
        self.output = str(self.options.get("output", _output_kind(descr)))
        if self.output not in OUTPUTS:
            raise InputError(f"segmenter {spec}: output must be one of {', '.join(OUTPUTS)}, "
                             f"got {self.output!r}")
        self.input, self.output_id = descr.inputs[0], descr.outputs[0].id

    def _array(self, frame: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The frame on the input's axes (batch and channel of size 1)."""
        shape, dims = [], []
        for axis in self.input.axes:
            kind, axis_id = axis.type, str(axis.id)
            if kind in ("batch", "channel", "index"):
                shape.append(1)
            elif kind == "space" and axis_id in ("y", "x"):
                size = frame.shape[0] if axis_id == "y" else frame.shape[1]
                shape.append(_valid(size, axis))
            else:
                raise DataError(f"segmenter {self.spec}: input axis {axis_id} ({kind}) is not "
                                "supported; cellrobust feeds 2-D gray frames (y, x)")
            dims.append("y" if axis_id == "y" else "x" if axis_id == "x" else axis_id)
        h, w = (shape[dims.index(a)] for a in ("y", "x"))
        padded = np.pad(frame, ((0, h - frame.shape[0]), (0, w - frame.shape[1])),
                        mode="reflect" if min(frame.shape) > 1 else "edge")
        return padded.reshape(shape), dims

    def _frame(self, frame: np.ndarray) -> np.ndarray:
        from bioimageio.core.digest_spec import create_sample_for_model

        array, _ = self._array(np.asarray(frame, dtype=np.float32))
        sample = create_sample_for_model(self.descr, inputs={self.input.id: array},
                                         sample_id="frame")
        blocksize = self.options.get("blocksize")
        if blocksize is None:
            result = self.pipeline.predict_sample_without_blocking(sample)
        else:
            result = self.pipeline.predict_sample_with_blocking(sample, ns=int(blocksize))
        data = result.members[self.output_id].data
        extra = [d for d in data.dims if d not in ("y", "x")]
        if any(data.sizes[d] != 1 for d in extra):
            raise DataError(f"segmenter {self.spec}: output {self.output_id} has axes "
                            f"{dict(data.sizes)}; expected one channel of (y, x)")
        out = data.squeeze(extra).transpose("y", "x").values
        h, w = frame.shape
        if out.shape[0] < h or out.shape[1] < w:
            raise DataError(f"segmenter {self.spec}: output shape {out.shape} does not match "
                            f"the input ({h}, {w}); expected an output the size of its input")
        return out[:h, :w]

    def _outputs(self, images: np.ndarray) -> np.ndarray:
        arr = np.asarray(images)
        check_ndim("images", arr, (3,), what="(N, H, W) gray levels")
        return np.stack([self._frame(img) for img in arr])

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) gray levels -> (N, H, W) float32 probabilities (masks and labels: 0/1)."""
        out = self._outputs(images)
        if self.output == "probability":
            return np.clip(out, 0.0, 1.0).astype(np.float32)
        return (out > 0).astype(np.float32)

    def segment(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) gray levels -> (N, H, W) int32 instance labels."""
        from cellrobust.models.postprocess import probabilities_to_labels, relabel_sequential

        if self.output == "labels":
            return np.stack([relabel_sequential(np.rint(o).astype(np.int64))
                             for o in self._outputs(images)]).astype(np.int32)
        post = {k: self.options[k] for k in ("threshold", "fill_holes", "min_size",
                                             "watershed", "connectivity") if k in self.options}
        if self.output == "mask":
            post["threshold"] = 0.5
        return probabilities_to_labels(self.predict_proba(images), **post).astype(np.int32)

    def provenance(self) -> dict[str, Any]:
        """Kind, package path and SHA-256, options, model name and weights, versions."""
        return {"kind": "bioimageio", "target": str(self.source),
                "sha256": file_sha256(self.source), "options": dict(self.options),
                "model": {"name": self.descr.name, "id": getattr(self.descr, "id", None),
                          "weights": sorted(k for k, v in self.descr.weights if v is not None),
                          "output": self.output},
                "versions": library_versions("cellrobust", "bioimageio.core",
                                             "bioimageio.spec", "torch", "onnxruntime")}


def _load(spec, source: Path):
    from bioimageio.spec import InvalidDescr, load_description
    from bioimageio.spec.model import v0_4, v0_5

    from cellrobust.models.bioimageio import validation_reason

    descr = load_description(str(source), perform_io_checks=False)
    if isinstance(descr, InvalidDescr):
        raise DataError(f"segmenter {spec}: {source} is not a valid bioimage.io package: "
                        f"{validation_reason(descr.validation_summary)}")
    if not isinstance(descr, (v0_4.ModelDescr, v0_5.ModelDescr)):
        raise DataError(f"segmenter {spec}: {source} describes a {descr.type}, not a model")
    if len(descr.inputs) != 1 or len(descr.outputs) < 1:
        raise DataError(f"segmenter {spec}: the model has {len(descr.inputs)} inputs; "
                        "expected one gray-level input")
    if isinstance(descr, v0_4.ModelDescr):
        raise DataError(f"segmenter {spec}: {source} uses bioimage.io format "
                        f"{descr.format_version}; convert it to 0.5 (bioimageio update-format)")
    return descr


def _build(spec) -> BioimageioSegmenter:
    from bioimageio.core import create_prediction_pipeline

    path = Path(spec.target)
    if not path.exists():
        raise InputError(f"segmenter {spec}: {path} not found; give a bioimage.io rdf.yaml, "
                         "a folder holding one, or a package zip")
    source = find_rdf(path)
    if source is None:
        raise DataError(f"segmenter {spec}: {path} holds no rdf.yaml or *.bioimageio.yaml; "
                        "give a bioimage.io model package")
    descr = _load(spec, source)
    weights = spec.options.get("weights")
    available = [k for k, v in descr.weights if v is not None]
    if weights is not None and weights not in available:
        raise InputError(f"segmenter {spec}: the package has no {weights!r} weights; it has "
                         f"{', '.join(available)}")
    device = spec.options.get("device")
    pipeline = create_prediction_pipeline(descr, weights_format=weights,
                                          devices=None if device is None else [str(device)])
    return BioimageioSegmenter(spec, source, descr, pipeline)


def _kind():
    from cellrobust.segmenters.kind import Kind

    return Kind(name="bioimageio", summary="a bioimage.io model package, run by "
                "bioimageio.core", target="an rdf.yaml, a folder holding one, or a zip",
                options=OPTIONS, requires=("bioimageio.core",), extra="bioimageio",
                example="zoo=bioimageio:models/psc.bioimageio.zip,blocksize=4", build=_build,
                detect=_detect)


KIND = _kind()
