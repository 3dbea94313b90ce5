"""``cellrobust train``: open the training and validation frames, train, record the data.

Every layout trains: a data set with its own ``train``/``validation`` splits (DeepImageJ) uses
them; any other (CTC, Cellpose, plain folders, a single image) is split by the seeded, recorded
default split of :func:`cellrobust.data.default_split` (whole sequences, a contiguous run of
frames, a shuffle, or a spatial cut of a single image), unless ``val_data`` names a validation
set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


__all__ = ["TrainStageConfig", "load_frames", "run"]

#: What a training run folder holds (recorded as cellrobust's before training starts).
RUN_FILES = ("best.pt", "last.pt", "config.yaml", "history.csv", "data.json", "curves.png",
             "resume.json")
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
    overwrite : bool
        Train into an ``out`` that holds an earlier run or other files (never over the data).
    """

    train: object
    out: str | Path
    data: str | Path | None = None
    val_data: str | Path | None = None
    resume: bool = False
    overwrite: bool = False


def load_frames(config: TrainStageConfig, *, seed: int = 0) -> tuple[list, list, dict]:
    """(training frames, validation frames, record of where they came from and how they were
    split: :func:`cellrobust.data.default_split`'s record)."""
    from cellrobust.data import default_split, load_default_dataset, open_dataset

    if config.data is None:
        return (list(load_default_dataset("train", seed=seed)),
                list(load_default_dataset("validation", seed=seed)),
                {"data": None, "method": "simulator train/validation splits", "seed": seed})
    record = {"data": str(Path(config.data).resolve()),
              "val_data": None if config.val_data is None else str(Path(config.val_data).resolve())}
    if config.val_data is not None:
        return list(open_dataset(config.data)), list(open_dataset(config.val_data)), \
            {**record, "method": "given validation set"}
    train, val, split = default_split(open_dataset(config.data), val_fraction=VAL_FRACTION,
                                      seed=seed)
    return list(train), list(val), {**record, **split}


def run(config: TrainStageConfig, *, progress: bool = True,
        on_epoch: Callable[[dict], None] | None = None) -> Path:
    """Train into ``config.out``; return the path of ``best.pt``."""
    from cellrobust.stages._outputs import guarded_output
    from cellrobust.training.loop import init_state_dict, train

    tc = config.train
    train_frames, val_frames, record = load_frames(config, seed=tc.seed)
    if tc.init_weights and not config.resume:
        init_state_dict(tc)  # a wrong checkpoint is refused before the folder is claimed
    with guarded_output(config.out, owner="train", inputs=(config.data, config.val_data),
                        overwrite=config.overwrite, reuse=config.resume,
                        expected=RUN_FILES) as out:
        return train(tc, train_frames, val_frames, run_dir=out, progress=progress,
                     resume=config.resume, on_epoch=on_epoch, data_source=record)
