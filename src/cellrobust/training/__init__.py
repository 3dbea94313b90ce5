"""Training the U-Net: recipes (:mod:`.config`), joint augmentation (:mod:`.augment`), patch
loading (:mod:`.data`), the loop with checkpoints and an epoch callback (:mod:`.loop`), resume
rules (:mod:`.resume`), DDP (:mod:`.ddp`), robustness-driven hyper-parameter search (:mod:`.tune`).

Names are imported lazily so ``import cellrobust.training`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "TrainConfig": "cellrobust.training.config",
    "ArtefactRange": "cellrobust.training.config",
    "RECIPES": "cellrobust.training.config",
    "recipe_config": "cellrobust.training.config",
    "train": "cellrobust.training.loop",
    "Trainer": "cellrobust.training.loop",
    "load_run_config": "cellrobust.training.loop",
    "StopTraining": "cellrobust.training.loop",
    "load_train_config": "cellrobust.training.config",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cellrobust.training' has no attribute {name!r}")
