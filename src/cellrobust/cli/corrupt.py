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


def _list(args: argparse.Namespace) -> int:
    import json

    from cellrobust import artefacts

    infos = [artefacts.get(n).summary() for n in artefacts.names()]
    if args.json:
        print(json.dumps(infos, indent=2, default=str))
        return 0
    for info in infos:
        ladder = ", ".join(f"{v:g}" for v in info["ladder"])
        print(f"{info['name']:<15} {info['kind']:<10} {info['parameter']} [{info['unit']}]")
        print(f"{'':<15} ladder 0-5: {ladder}   (normalise: {info['default_normalise']})")
        grids = {"grid": info["grid"], **info["presets"]}
        for key, grid in grids.items():
            text = ", ".join(f"{v:g}" for v in grid)
            if not args.grids and len(grid) > 8:
                text = f"{grid[0]:g} ... {grid[-1]:g} ({len(grid)} values)"
            print(f"{'':<15} {key}: {text}")
        print(f"{'':<15} {info['description']}")
    return 0


def _load_sample(args):
    from pathlib import Path

    from cellrobust.data import Sample

    if args.data is None:
        from cellrobust.data import load_default_dataset

        return load_default_dataset("validation", n_frames=1, seed=args.seed)[0]
    path = Path(args.data)
    if path.is_file():
        from cellrobust._io import read_image

        return Sample(read_image(path), None, path.stem, {"source": str(path)})
    from cellrobust.data import open_dataset

    dataset = open_dataset(path)
    return dataset[args.index]


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
