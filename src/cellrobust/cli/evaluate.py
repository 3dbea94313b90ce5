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
    what.add_argument("--model", metavar="SPEC",
                      help="checkpoint (.pt) or baseline: dog_otsu, nlm_otsu, otsu")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="segmenter option, repeatable (e.g. sigma_low=4.7, method=skimage, "
                   "min_size=20 for baselines; tile=512, tta=true for checkpoints)")
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
                   help="evaluate only the first N frames")
    p.add_argument("--patches", type=int, default=None, metavar="N",
                   help="score N random crops per frame instead of whole frames (the PSC "
                   "studies' test protocol: 6)")
    p.add_argument("--patch-size", type=int, default=256, metavar="PX",
                   help="side of the --patches crops (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the crop positions (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=handler)


def parse_thresholds(text: str) -> tuple[float, ...]:
    """``"0.5:0.05:0.95"`` or ``"0.5,0.75"`` -> thresholds rounded to 1e-6."""
    from cellrobust._validation import InputError

    try:
        if ":" in text:
            start, step, stop = (float(x) for x in text.split(":"))
            n = int(round((stop - start) / step)) + 1
            values = [start + i * step for i in range(n)]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"thresholds: expected start:step:stop or a comma list, got {text!r}")
    return tuple(round(v, 6) for v in values)


def parse_options(items: list[str]) -> dict:
    """``["sigma_low=4.7", "method=skimage"]`` -> ``{"sigma_low": 4.7, "method": "skimage"}``."""
    import json

    from cellrobust._validation import InputError

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"options: expected KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


def _default_name(args: argparse.Namespace) -> str:
    """``dog_otsu``; ``runs/robust/best.pt`` -> ``robust-best``; ``--pred out/unet`` -> ``unet``."""
    from pathlib import Path

    if args.pred:
        return Path(args.pred).resolve().name
    path = Path(args.model)
    return f"{path.parent.name}-{path.stem}" if path.suffix and path.parent.name else path.stem


def handler(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cellrobust.metrics.evaluate import EvaluateConfig
    from cellrobust.metrics.evaluate_run import run_evaluation

    config = EvaluateConfig(thresholds=parse_thresholds(args.thresholds),
                            criterion=args.criterion, average=args.average,
                            connectivity=args.connectivity)
    out = Path(args.out) if args.out else Path("results") / "evaluate" / _default_name(args)
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    text = run_evaluation(config, data=args.data, split=args.split, pred=args.pred,
                          model=args.model, out=out, frames=args.frames, log=log,
                          options=parse_options(args.options), patches=args.patches,
                          patch_size=args.patch_size, seed=args.seed)
    print(text)
    return 0
