"""The sweep: segmenters x artefacts x severities x images -> one tidy results table.

>>> from cellrobust.sweep import SweepConfig, run_sweep
>>> config = SweepConfig(segmenters=("dog_otsu", "unet=runs/a/best.pt"),
...                      artefacts=("gaussian_noise", "illumination"))   # doctest: +SKIP
>>> table = run_sweep(config, samples, "results/")                        # doctest: +SKIP

The table (``results.parquet`` and ``results.csv``) has one row per segmenter x artefact x
severity x image; its columns are listed in ``docs/CONTRACTS.md``. Runs are resumable and can
be spread over local processes or a Dask cluster (:class:`Execution`).
"""

from cellrobust.sweep.engine import (
    CLEAN,
    SegmenterSpec,
    build_segmenters,
    SweepConfig,
    cell_list,
    columns,
    frame_level,
    parse_segmenter,
    resolve_severities,
    run_cell,
)
from cellrobust.sweep.runner import AUTO, Execution, preflight, run_sweep, worker_count
from cellrobust.sweep.store import ResultStore
from cellrobust.table import BASE_COLUMNS

__all__ = [
    "AUTO", "BASE_COLUMNS", "CLEAN", "Execution", "ResultStore", "SegmenterSpec", "SweepConfig",
    "build_segmenters", "cell_list",
    "columns", "frame_level", "parse_segmenter", "preflight", "resolve_severities", "run_cell",
    "run_sweep", "worker_count",
]
