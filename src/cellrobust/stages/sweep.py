"""``cellrobust sweep``: open the images, cut the seeded patches, run the sweep, record it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cellrobust._validation import collect_errors
from cellrobust.sweep import Execution, SweepConfig

__all__ = ["SWEEP_FILES", "SweepStageConfig", "run"]

#: What a sweep folder holds (recorded as cellrobust's before the sweep starts).
SWEEP_FILES = ("sweep.json", "cells", "results.parquet", "results.csv", "config.json")


@dataclass(frozen=True)
class SweepStageConfig:
    """One ``cellrobust sweep`` run.

    Attributes
    ----------
    out : path
        Results folder (resumable; a different sweep's results are refused unless
        ``execution.overwrite``).
    sweep : SweepConfig
        Segmenters, artefacts, severities, thresholds, seed.
    data : path, optional
        Annotated data set (None: the simulator's test split).
    split : str, optional
    frames : int, optional
        Evenly spaced subset of this many frames.
    patches, patch_size : int
        Seeded crops per frame and their side in px (the crops ``cellrobust evaluate
        --patches`` scores with the same seed).
    execution : Execution
    """

    out: str | Path
    sweep: SweepConfig
    data: str | Path | None = None
    split: str | None = None
    frames: int | None = None
    patches: int = 6
    patch_size: int = 256
    execution: Execution = field(default_factory=Execution)

    def __post_init__(self) -> None:
        errors = []
        if not (isinstance(self.patches, int) and self.patches >= 1):
            errors.append(f"patches: expected a positive integer, got {self.patches!r}")
        if self.patch_size != self.sweep.patch_size:
            errors.append(f"patch_size: {self.patch_size} differs from the sweep's "
                          f"{self.sweep.patch_size}; give one value")
        collect_errors(errors, "sweep run")


def load_samples(config: SweepStageConfig) -> tuple[list, list]:
    """The evaluation patches and the frames they were cut from."""
    from cellrobust.stages._data import eval_patches, open_frames

    frames = open_frames(config.data, split=config.split, n_frames=config.frames,
                         seed=config.sweep.seed)
    return eval_patches(frames, n=config.patches, size=config.patch_size,
                        seed=config.sweep.seed), frames


def run(config: SweepStageConfig, *, progress: Callable[[list], None] | None = None):
    """Run (or resume) the sweep into ``config.out``; return the table."""
    from cellrobust._io import write_json
    from cellrobust.stages._outputs import guarded_output
    from cellrobust.stages._record import provenance
    from cellrobust.sweep import build_segmenters, run_sweep

    with guarded_output(config.out, owner="sweep", inputs=(config.data,),
                        overwrite=config.execution.overwrite, expected=SWEEP_FILES) as out:
        samples, frames = load_samples(config)
        table = run_sweep(config.sweep, samples, out, frames=frames,
                          execution=config.execution, progress=progress)
        # each model's kind, file SHA-256, options and versions (the report's Models table)
        built = build_segmenters(config.sweep, allow_code=config.execution.allow_code)
        write_json(out / "config.json",
                   provenance("sweep", config, segmenters=list(built.values()),
                              images=[s.name for s in samples],
                              worker_processes=table.attrs.get("workers")))
    return table
