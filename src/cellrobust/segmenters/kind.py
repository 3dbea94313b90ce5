"""The :class:`Kind` record every adapter module declares (``KIND = Kind(...)``).

Kept apart from :mod:`cellrobust.segmenters.registry` so an adapter can describe itself
without importing the registry (which imports the adapters).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Kind"]


@dataclass(frozen=True)
class Kind:
    """One kind of segmenter.

    Attributes
    ----------
    name : str
        The spec prefix (``onnx`` in ``onnx:model.onnx``).
    summary : str
        One line for ``cellrobust models``.
    target : str
        What TARGET is (a file, a folder, a pretrained name).
    options : mapping of str to str
        Accepted ``KEY=VALUE`` options and what each means (units, default).
    requires : tuple of str
        Importable modules the kind needs.
    extra : str or None
        The ``pip install 'cellrobust[EXTRA]'`` extra that installs them.
    example : str
        A full spec, as it would be typed.
    build : callable
        ``build(spec: SegmenterSpec) -> Segmenter``.
    detect : callable or None
        ``detect(path: Path) -> bool`` for an existing path: is this file or folder of this kind?
    runs_code : bool
        Building imports and runs user code (the ``py:`` kind): refused unless allowed.
    """

    name: str
    summary: str
    target: str
    options: Mapping[str, str] | None
    requires: tuple[str, ...]
    extra: str | None
    example: str
    build: Callable = field(repr=False)
    detect: Callable[[Path], bool] | None = field(default=None, repr=False)
    runs_code: bool = False
