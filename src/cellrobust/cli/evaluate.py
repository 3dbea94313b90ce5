"""``cellrobust evaluate``: score predicted label images or a segmenter on an annotated data set.

``cellrobust evaluate --data DIR --pred DIR`` scores label TIFFs (matched to the data set's
frames by file name); ``cellrobust evaluate --data DIR --model CKPT|dog_otsu|nlm_otsu|otsu``
segments every frame first. Prints the metrics table and writes, under ``--out``:
``metrics.csv`` and ``metrics.json`` (summary), ``metrics_per_image.csv`` (counts per image),
``ap_vs_iou.png`` and ``config.json`` (the resolved settings).
"""

from __future__ import annotations

import argparse
import sys

from cellrobust.cli._common import (
    SEGMENTER_HELP,
    add_allow_code,
    add_overwrite,
    parse_thresholds,
    with_options,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` stage."""
    p = subparsers.add_parser(
        "evaluate", help="score predictions or a model/baseline on an annotated data set",
        description="Pixel scores, cell counts, AP (TP/(TP+FP+FN), DSB 2018 convention, not "
        "COCO AP) against IoU threshold and CTC SEG of predicted label images or of a "
        "segmenter on an annotated data set.")
    p.add_argument("--data", metavar="DIR", default=None,
                   help="annotated data set (any layout 'cellrobust data formats' lists; "
                   "default: the simulated validation set)")
    p.add_argument("--split", default=None, help="split to read (train, validation, test)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--pred", metavar="DIR", help="folder of predicted label images "
                      "(TIFF/PNG/NPY, one per frame, named like the frame's image or mask)")
    what.add_argument("--model", metavar="SPEC", help=SEGMENTER_HELP.replace(", repeatable", ""))
    p.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="segmenter option appended to --model's spec, repeatable (e.g. "
                   "sigma_low=4.7 for a baseline; tile=1024, tta=true for a checkpoint)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default results/evaluate/<model or pred name>)")
    p.add_argument("--thresholds", default="0.5:0.05:0.95", metavar="LIST",
                   help="IoU thresholds: start:step:stop or comma list (default 0.5:0.05:0.95)")
    p.add_argument("--criterion", default="iou", choices=["iou", "iot", "iop"],
                   help="matching score (default iou)")
    p.add_argument("--average", default="micro", choices=["micro", "macro"],
                   help="headline averaging: micro pools counts, macro averages images")
    p.add_argument("--connectivity", type=int, default=8, choices=[8, 4],
                   help="connectivity of cell counts (default 8)")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="evaluate N evenly spaced frames (default all)")
    p.add_argument("--patches", type=int, default=None, metavar="N",
                   help="score N seeded crops per frame instead of whole frames (the PSC "
                   "studies' test protocol: 6; the same crops as sweep/study with --seed)")
    p.add_argument("--patch-size", type=int, default=256, metavar="PX",
                   help="side of the --patches crops (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the crop positions (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_overwrite(p)
    add_allow_code(p)
    p.set_defaults(func=handler)


def _default_name(args: argparse.Namespace) -> str:
    """``dog_otsu``; ``runs/robust/best.pt`` -> ``robust``; ``--pred out/unet`` -> ``unet``."""
    from pathlib import Path

    from cellrobust.segmenters import parse_spec

    if args.pred:
        return Path(args.pred).resolve().name
    return parse_spec(args.model).name


def handler(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cellrobust.metrics.evaluate import EvaluateConfig
    from cellrobust.stages.evaluate import EvaluateStageConfig, run

    metrics = EvaluateConfig(thresholds=parse_thresholds(args.thresholds),
                             criterion=args.criterion, average=args.average,
                             connectivity=args.connectivity)
    model = with_options(args.model, args.options) if args.model else None
    if args.options and not args.model:
        from cellrobust._validation import InputError

        raise InputError("--set: segmenter options apply to --model, not to --pred")
    out = Path(args.out) if args.out else Path("results") / "evaluate" / _default_name(args)
    config = EvaluateStageConfig(out=out, model=model, pred=args.pred, data=args.data,
                                 split=args.split, frames=args.frames, patches=args.patches,
                                 patch_size=args.patch_size, seed=args.seed, metrics=metrics,
                                 overwrite=args.overwrite, allow_code=args.allow_code)
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    print(run(config, log=log))
    return 0
