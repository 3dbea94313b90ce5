"""``cellrobust predict``: segment images with any segmenter and write label TIFFs."""

from __future__ import annotations

import argparse

from cellrobust.cli._common import SEGMENTER_HELP, add_allow_code, add_overwrite, add_quiet

#: predict's U-Net flags, appended to the spec as options when given.
_UNET_FLAGS = ("tta", "tile", "halo", "batch_size", "threshold", "fill_holes", "min_size",
               "watershed", "device")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` stage."""
    p = subparsers.add_parser(
        "predict", help="segment images with a model and write label TIFFs",
        description="Segment whole frames (tiled with a halo for U-Nets) and write 16-bit "
                    "instance-label TIFFs (Cell Tracking Challenge input: XX_RES/maskTTT.tif), "
                    "keeping the input's pixel size.")
    p.add_argument("model", metavar="MODEL", help=SEGMENTER_HELP.replace(", repeatable", ""))
    p.add_argument("--data", required=True, metavar="PATH",
                   help="image file, folder or data set to segment")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--split", help="DeepImageJ layout split (train, validation, test)")
    g = p.add_argument_group("U-Net options (also KEY=VALUE in MODEL)")
    g.add_argument("--tta", action="store_true", default=None,
                   help="average the 8 dihedral transforms")
    g.add_argument("--tile", type=int, help="window side in px (default 1024: frames up to "
                   "928 px a side run as one pass)")
    g.add_argument("--halo", type=int, help="context px per side (default 47)")
    g.add_argument("--batch-size", type=int, help="windows per forward pass (default 2)")
    g.add_argument("--threshold", type=float, help="probability threshold (default 0.5)")
    g.add_argument("--fill-holes", action="store_true", default=None)
    g.add_argument("--min-size", type=int, help="drop smaller objects (px)")
    g.add_argument("--watershed", action="store_true", default=None,
                   help="split touching cells")
    g.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--probabilities", action="store_true",
                   help="also write float32 probability maps (*_prob.tif)")
    add_quiet(p)
    add_overwrite(p)
    add_allow_code(p)
    p.set_defaults(func=_predict)


def _predict(args: argparse.Namespace) -> int:
    from cellrobust.cli._common import with_options
    from cellrobust.stages.predict import PredictConfig, run

    items = [f"{k}={getattr(args, k)}" for k in _UNET_FLAGS if getattr(args, k) is not None]
    config = PredictConfig(model=with_options(args.model, items), data=args.data, out=args.out,
                           split=args.split, probabilities=args.probabilities,
                           overwrite=args.overwrite, allow_code=args.allow_code)
    written = run(config, progress=not args.quiet)
    print(f"wrote {len(written)} label image(s) to {args.out}")
    return 0
