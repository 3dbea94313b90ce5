"""Write a bioimage.io model package (format 0.5) for a trained U-Net.

Package contents (zipped as ``<name>.bioimageio.zip``): ``rdf.yaml``, TorchScript weights,
``test_input.npy`` / ``test_output.npy``, ``cover.png`` and ``README.md``. The input
normalisation becomes bioimage.io preprocessing where an operator exists (``minmax``:
``scale_range`` 0-100 %, ``percentile``: ``scale_range`` 1-99.8 %, ``none``: nothing); the
DeepImageJ-training ``max`` normalisation (x / max per image) has no bioimage.io operator, so it
is compiled into the weights and the RDF declares only ``ensure_dtype``. The output is
binarised at 0.5 (``binarize`` postprocessing) and declares the 47 px halo.
"""

from __future__ import annotations

import datetime
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cellrobust import __version__
from cellrobust._io import atomic_path, write_text
from cellrobust.models.export import CITATIONS, SigmoidUNet, to_torchscript
from cellrobust.models.inference import DEFAULT_HALO
from cellrobust.models.unet import PERCENTILES, NormalisedUNet, UNet

FORMAT_VERSION = "0.5.3"
WEIGHTS = "weights_torchscript.pt"


def _preprocessing(method: str) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
    ranges = {"minmax": (0.0, 100.0), "percentile": PERCENTILES}
    if method in ranges:
        lo, hi = ranges[method]
        ops.append({"id": "scale_range", "kwargs": {
            "axes": ["y", "x"], "min_percentile": float(lo), "max_percentile": float(hi),
            "eps": 1e-6}})
    return ops


def _axes(m: int, *, output: bool) -> list[dict[str, Any]]:
    axes: list[dict[str, Any]] = [{"type": "batch"},
                                  {"type": "channel", "channel_names": ["foreground" if output
                                                                        else "gray"]}]
    for axis in ("y", "x"):
        if output:
            axes.append({"type": "space", "id": axis, "size": {"tensor_id": "raw",
                                                              "axis_id": axis},
                         "halo": DEFAULT_HALO})
        else:
            axes.append({"type": "space", "id": axis, "size": {"min": _min_side(m), "step": m}})
    return axes


def _min_side(m: int) -> int:
    """Smallest input side: a multiple of ``m`` leaving output beyond the two halos."""
    return (2 * DEFAULT_HALO // m + 1) * m


def build_rdf(net: UNet, meta: dict[str, Any], *, name: str) -> dict[str, Any]:
    """The ``rdf.yaml`` content (a plain dict) for ``net``."""
    config = net.config
    method = config.normalisation
    note = ("The per-image x / max input scaling used in training is part of the weights."
            if method == "max" else f"Input scaling '{method}' is the preprocessing below.")
    metrics = meta.get("metrics", {})
    return {
        "type": "model", "format_version": FORMAT_VERSION, "name": name,
        "description": "DeepImageJ U-Net for binary cell segmentation of phase-contrast "
                       f"images, trained with cellrobust {__version__}. {note}",
        "authors": [{"name": "cellrobust developers"}],
        "cite": CITATIONS, "license": "BSD-3-Clause",
        "tags": ["unet", "segmentation", "phase-contrast", "cells", "2d", "deepimagej"],
        "documentation": "README.md", "covers": ["cover.png"],
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "inputs": [{"id": "raw", "axes": _axes(config.multiple, output=False),
                    "test_tensor": {"source": "test_input.npy"},
                    "data": {"type": "float32"}, "preprocessing": _preprocessing(method)}],
        "outputs": [{"id": "mask", "axes": _axes(config.multiple, output=True),
                     "test_tensor": {"source": "test_output.npy"},
                     "data": {"type": "uint8", "range": [0, 1]},
                     "postprocessing": [{"id": "binarize", "kwargs": {"threshold": 0.5}},
                                        {"id": "ensure_dtype", "kwargs": {"dtype": "uint8"}}]}],
        "weights": {"torchscript": {"source": WEIGHTS,
                                    "pytorch_version": torch.__version__.split("+")[0]}},
        "config": {"cellrobust": {"model_config": config.to_dict(),
                                  "normalisation": method,
                                  "validation_metrics": _plain(metrics),
                                  "train_recipe": (meta.get("train_config") or {}).get("recipe")}},
    }


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, (float, np.floating)) else v)
            for k, v in values.items()}


def _cover(image: np.ndarray, prob: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2), dpi=160)
    for ax, data, title in zip(fig.subplots(1, 2), (image, prob), ("input", "foreground")):
        ax.imshow(data, cmap="gray")
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _stage(net: UNet, meta: dict[str, Any], folder: Path, test_image: np.ndarray,
           name: str) -> None:
    import yaml

    method = net.config.normalisation
    smallest = _min_side(net.config.multiple)
    if min(test_image.shape) < smallest:
        from cellrobust._validation import DataError

        raise DataError(f"test image: a bioimage.io package needs at least {smallest} px per "
                        f"side (twice the {DEFAULT_HALO} px halo), got {test_image.shape}")
    wrapper = NormalisedUNet if method == "max" else SigmoidUNet
    to_torchscript(net, folder / WEIGHTS, test_image=test_image, wrapper=wrapper)
    raw = np.asarray(test_image, dtype=np.float32)[None, None]
    with torch.no_grad():
        prob = NormalisedUNet(net).eval()(torch.from_numpy(raw)).numpy()
    np.save(folder / "test_input.npy", raw)
    np.save(folder / "test_output.npy", (prob > 0.5).astype(np.uint8))
    _cover(raw[0, 0], prob[0, 0], folder / "cover.png")
    write_text(folder / "README.md", _readme(net, meta, name))
    write_text(folder / "rdf.yaml", yaml.safe_dump(build_rdf(net, meta, name=name),
                                                   sort_keys=False))


def _readme(net: UNet, meta: dict[str, Any], name: str) -> str:
    metrics = meta.get("metrics", {})
    score = (f"Validation Jaccard (foreground IoU, pooled over whole frames): "
             f"{metrics['val_jaccard']:.3f} at epoch {meta.get('epoch')}.\n"
             if "val_jaccard" in metrics else "")
    return (f"# {name}\n\nThe DeepImageJ U-Net (Gomez-de-Mariscal et al., 2021) for binary "
            "segmentation of phase-contrast cells, trained and exported with cellrobust "
            f"{__version__}.\n\nInput: one gray-level channel, sides multiples of "
            f"{net.config.multiple}; input normalisation '{net.config.normalisation}'. Output: "
            "foreground mask (probability > 0.5). Tile with a 47 px halo.\n\n"
            "# Validation\n\n" + (score or "No validation metrics were recorded.\n"))


def write_package(net: UNet, meta: dict[str, Any], out_dir: str | os.PathLike, *,
                  test_image: np.ndarray, name: str, validate: bool = True) -> Path:
    """Write ``<out_dir>/<name>.bioimageio.zip``; validate it when bioimageio.spec is present.

    Raises
    ------
    cellrobust.DataError
        When ``bioimageio.spec`` is installed and reports the package invalid.
    """
    if len(name.strip()) < 5:
        from cellrobust._validation import InputError

        raise InputError(f"name: bioimage.io needs at least 5 characters, got {name!r}")
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip())
    target = Path(out_dir) / f"{slug}.bioimageio.zip"
    with tempfile.TemporaryDirectory(prefix="cellrobust-bioimageio-") as tmp:
        folder = Path(tmp)
        _stage(net, meta, folder, test_image, name)
        with atomic_path(target) as zpath:
            with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for file in sorted(folder.iterdir()):
                    archive.write(file, arcname=file.name)
    if validate:
        validate_package(target)
    return target


def validate_package(path: str | os.PathLike) -> str | None:
    """Validate with ``bioimageio.spec`` (format checks only); None when it is not installed."""
    try:
        from bioimageio.spec import load_description
    except ImportError:
        return None
    from cellrobust._validation import DataError

    descr = load_description(str(path), perform_io_checks=True)
    summary = descr.validation_summary
    if summary.status not in ("passed", "valid-format"):
        raise DataError(f"{path}: bioimage.io validation failed: "
                        f"{summary.format()[:2000] if hasattr(summary, 'format') else summary}")
    return str(summary.status)


__all__ = ["write_package", "build_rdf", "validate_package"]
