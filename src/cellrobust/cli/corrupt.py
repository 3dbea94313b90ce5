"""``cellrobust corrupt``: write corrupted copies of images (and masks for geometric ones)."""

from __future__ import annotations

import argparse

from cellrobust.cli._common import add_overwrite, add_seed, parse_options


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``corrupt`` stage."""
    _register_corrupt(subparsers)


def _register_corrupt(subparsers) -> None:
    parser = subparsers.add_parser(
        "corrupt", help="write corrupted copies of images (and masks for geometric artefacts)",
        description="Apply one artefact at one severity to image files and write float32 "
                    "TIFFs (plus resampled masks for geometric artefacts and params.json).")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    parser.add_argument("--artefact", required=True, metavar="NAME",
                        help="artefact name (see 'cellrobust artefacts list')")
    level = parser.add_mutually_exclusive_group(required=True)
    level.add_argument("--severity", type=float, metavar="S",
                       help="parameter value in the artefact's unit")
    level.add_argument("--level", type=int, metavar="L", help="ladder level 0-5")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--masks", nargs="+", metavar="MASK",
                        help="mask files paired in order with the inputs (geometric artefacts)")
    parser.add_argument("--normalise", choices=("minmax", "clip", "none"),
                        help="output normalisation (default: the artefact's own)")
    parser.add_argument("--keep-dtype", action="store_true",
                        help="round and clip back to the input dtype instead of float32")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="artefact option, e.g. psf=disk (repeatable)")
    add_seed(parser)
    add_overwrite(parser)
    parser.set_defaults(func=_corrupt)


def _corrupt(args: argparse.Namespace) -> int:
    from cellrobust.stages.corrupt import CorruptJob, corrupt_files

    job = CorruptJob(
        inputs=tuple(args.inputs), artefact=args.artefact, severity=args.severity,
        level=args.level, out=args.out, masks=tuple(args.masks or ()),
        normalise=args.normalise, keep_dtype=args.keep_dtype,
        options=parse_options(args.option, owner="--option"), seed=args.seed,
        overwrite=args.overwrite)
    written = corrupt_files(job)
    print(f"wrote {len(written)} image(s) to {args.out}")
    return 0
