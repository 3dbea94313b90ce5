"""The :class:`Segmenter` protocol and the provenance every adapter reports.

A segmenter takes gray-level images as read or corrupted, applies its model's own input
contract (normalisation, axes, size multiple, halo) itself, and returns instance labels
(``segment``); probability models also return foreground probabilities (``predict_proba``), so
every table and figure treats a cellrobust checkpoint, an external model and a classical
pipeline alike.
"""

from __future__ import annotations

import hashlib
import os
from importlib import metadata
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Segmenter", "file_sha256", "library_versions", "provenance_of", "segment_each"]


@runtime_checkable
class Segmenter(Protocol):
    """What every segmenter provides.

    Attributes
    ----------
    name : str
        Display name (the results table's ``segmenter`` column).
    """

    name: str

    def segment(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) gray levels -> (N, H, W) int32 instance labels (0 = background)."""


def file_sha256(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, or of every file under a folder (sorted relative paths
    and contents), so a model folder has one digest."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(chunk), b""):
                digest.update(block)
    return digest.hexdigest()


def library_versions(*distributions: str) -> dict[str, str]:
    """Installed versions of the named distributions (absent ones are left out)."""
    out = {}
    for name in distributions:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def provenance_of(segmenter) -> dict:
    """The segmenter's own ``provenance()`` when it has one, else its class (a user object)."""
    if callable(getattr(segmenter, "provenance", None)):
        return dict(segmenter.provenance())
    cls = type(segmenter)
    return {"kind": "object", "target": f"{cls.__module__}.{cls.__qualname__}"}


def segment_each(images, one) -> np.ndarray:
    """Labels of an (N, H, W) stack from ``one(image (H, W)) -> labels (H, W)``, for adapters
    whose library segments one image at a time.

    Raises
    ------
    InputError
        ``images`` is not (N, H, W).
    """
    from cellrobust._validation import check_ndim

    arr = np.asarray(images)
    check_ndim("images", arr, (3,), what="(N, H, W) gray levels")
    out = np.zeros(arr.shape, dtype=np.int32)
    for i, image in enumerate(arr):
        out[i] = np.asarray(one(image)).reshape(image.shape)
    return out
