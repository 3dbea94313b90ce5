"""``cellrobust train``: open the training and validation frames, train, record the data.

Every layout trains: a data set with its own ``train``/``validation`` splits (DeepImageJ) uses
them; any other (CTC, Cellpose, plain folders) is split by a seeded, recorded default split
(:func:`cellrobust.data.splits.split_dataset`, grouped by sequence when there is one), unless
``val_data`` names a validation set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cellrobust._validation import DataError, InputError

__all__ = ["TrainStageConfig", "load_frames", "run"]

#: Fraction of the frames the default split keeps for validation.
VAL_FRACTION = 0.2


@dataclass(frozen=True)
class TrainStageConfig:
    """One ``cellrobust train`` run.

    Attributes
    ----------
    train : TrainConfig
        The resolved training configuration (recipe + overrides, or a resumed run's).
    out : path
        Run folder.
    data, val_data : path, optional
        Training data set (None: the simulator) and an explicit validation set.
    resume : bool
        Continue the interrupted run in ``out`` (refused when the data or options differ).
    """

    train: object
    out: str | Path
    data: str | Path | None = None
    val_data: str | Path | None = None
    resume: bool = False


def _own_splits(path) -> tuple[list, list] | None:
    from cellrobust.data import open_dataset

    try:
        train = list(open_dataset(path, split="train"))
        val = list(open_dataset(path, split="validation"))
    except (DataError, InputError):
        return None
    return (train, val) if train and val else None


def load_frames(config: TrainStageConfig, *, seed: int = 0) -> tuple[list, list, dict]:
    """(training frames, validation frames, record of where they came from)."""
    from cellrobust.data import load_default_dataset, open_dataset
    from cellrobust.data.splits import split_dataset

    if config.data is None:
        return (list(load_default_dataset("train", seed=seed)),
                list(load_default_dataset("validation", seed=seed)),
                {"data": None, "split": "simulator train/validation"})
    record = {"data": str(Path(config.data).resolve()),
              "val_data": None if config.val_data is None else str(Path(config.val_data).resolve())}
    if config.val_data is not None:
        return list(open_dataset(config.data)), list(open_dataset(config.val_data)), \
            {**record, "split": "given validation set"}
    own = _own_splits(config.data)
    if own is not None:
        return (*own, {**record, "split": "the data set's train/validation splits"})
    dataset = open_dataset(config.data)
    if len(dataset) < 2:
        raise DataError(f"{config.data}: {len(dataset)} annotated frame(s); training needs at "
                        "least 2 (one to validate), or a separate validation set")
    group = "sequence" if len({e.meta.get("sequence") for e in dataset.entries}) > 1 else None
    parts = split_dataset(dataset, {"train": 1 - VAL_FRACTION, "validation": VAL_FRACTION},
                          seed=seed, group=group)
    train, val = list(parts["train"]), list(parts["validation"])
    return train, val, {**record, "split": f"seeded default split (seed {seed}, "
                        f"{VAL_FRACTION:.0%} validation, grouped by {group or 'frame'})",
                        "train_frames": [s.name for s in train],
                        "validation_frames": [s.name for s in val]}


def run(config: TrainStageConfig, *, progress: bool = True,
        on_epoch: Callable[[dict], None] | None = None) -> Path:
    """Train into ``config.out``; return the path of ``best.pt``."""
    from cellrobust.training.loop import train

    tc = config.train
    train_frames, val_frames, record = load_frames(config, seed=tc.seed)
    return train(tc, train_frames, val_frames, run_dir=Path(config.out), progress=progress,
                 resume=config.resume, on_epoch=on_epoch, data_source=record)
