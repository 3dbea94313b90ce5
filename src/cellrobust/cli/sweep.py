"""``cellrobust sweep``: segmenters x artefacts x severities x images -> a results table."""

from __future__ import annotations

from cellrobust.cli._common import SEGMENTER_HELP, add_overwrite, add_sweep_options
from cellrobust.cli._progress import Progress


def register(subparsers) -> None:
    _register_sweep(subparsers)


def _register_sweep(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="segmenters x artefacts x severities x images -> results table",
        description="Run (or resume) a sweep into a results folder: one tidy table "
        "(results.parquet, results.csv), one row per segmenter x artefact x severity x image.")
    p.add_argument("--data", metavar="PATH", help="data set (default: simulator test split)")
    p.add_argument("--split", help="split of --data to evaluate (e.g. validation)")
    p.add_argument("--segmenter", action="append", required=True, metavar="SPEC",
                   help=SEGMENTER_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="results folder")
    p.add_argument("--frames", type=int, help="evenly spaced frames to use (default all)")
    p.add_argument("--patches", type=int, default=6,
                   help="seeded patches per frame (6; the crops 'evaluate --patches' scores)")
    p.add_argument("--patch-size", type=int, default=256, help="patch side in px (256)")
    add_overwrite(p, "results of a different sweep in --out")
    add_sweep_options(p)
    p.set_defaults(func=_sweep)


def _sweep(args) -> int:
    from cellrobust.stages.sweep import SweepStageConfig, run
    from cellrobust.sweep import AUTO, Execution, SweepConfig, cell_list
    from cellrobust.table import DEFAULT_THRESHOLDS

    if not args.artefacts:
        from cellrobust._validation import InputError

        raise InputError("--artefacts: empty selection; name at least one artefact "
                         "('cellrobust artefacts list')")
    sweep = SweepConfig(segmenters=tuple(args.segmenter), artefacts=args.artefacts,
                        severities=args.severities or "ladder",
                        thresholds=args.thresholds or DEFAULT_THRESHOLDS, seed=args.seed,
                        batch_size=args.batch_size or 4, patch_size=args.patch_size)
    execution = Execution(workers=args.workers or AUTO, scheduler=args.scheduler,
                          overwrite=args.overwrite, allow_code=args.allow_code)
    config = SweepStageConfig(out=args.out, sweep=sweep, data=args.data, split=args.split,
                              frames=args.frames, patches=args.patches,
                              patch_size=args.patch_size, execution=execution)
    with Progress(args.quiet, "sweep") as bar:
        bar.set_total(len(cell_list(sweep)))
        table = run(config, progress=lambda cells: bar.update(len(cells), "cells"))
    print(f"results: {len(table)} rows in {args.out}/results.parquet (and .csv)")
    return 0
