"""Models: the DeepImageJ U-Net (:mod:`.unet`), checkpoints, tiled inference, export.

``torch`` is imported by the submodules, so import them explicitly
(``from cellrobust.models.unet import UNetConfig, build_unet``) or use the lazy names below.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "UNetConfig": "cellrobust.models.unet",
    "build_unet": "cellrobust.models.unet",
    "normalise": "cellrobust.models.unet",
    "load_checkpoint": "cellrobust.models.checkpoint",
    "save_checkpoint": "cellrobust.models.checkpoint",
    "predict_tiled": "cellrobust.models.inference",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cellrobust.models' has no attribute {name!r}")
