"""``cellrobust artefacts list|gallery``: the registered artefacts on the CLI."""

from __future__ import annotations

import argparse

from cellrobust.cli._common import add_seed


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``artefacts`` stage."""
    _register_artefacts(subparsers)


def _register_artefacts(subparsers) -> None:
    parser = subparsers.add_parser(
        "artefacts", help="list the microscopy artefacts or draw a severity gallery",
        description="List every artefact with its unit, ladder and grids, or draw an "
                    "artefact x severity gallery on an image.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    lister = sub.add_parser("list", help="print every artefact with its unit and grids")
    lister.add_argument("--json", action="store_true", help="machine-readable output")
    lister.add_argument("--grids", action="store_true", help="also print the full curve grids")
    lister.set_defaults(func=_list)
    gallery = sub.add_parser("gallery", help="draw every artefact at levels 0-5 (PNG)")
    gallery.add_argument("--out", required=True, metavar="FILE.png", help="output PNG")
    gallery.add_argument("--data", metavar="PATH",
                         help="image file or data set folder (default: the built-in simulator)")
    gallery.add_argument("--index", type=int, default=0, help="which sample of --data (default 0)")
    gallery.add_argument("--artefact", action="append", metavar="NAME",
                         help="only these artefacts (repeatable; default all)")
    gallery.add_argument("--size", type=int, default=256, help="patch side in px (default 256)")
    gallery.add_argument("--overwrite", action="store_true",
                         help="replace an existing --out file (never an input)")
    add_seed(gallery)
    gallery.set_defaults(func=_gallery)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


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


def _gallery(args: argparse.Namespace) -> int:
    from cellrobust.stages.artefacts import pick_patch, render_gallery

    sample = pick_patch(_load_sample(args), size=args.size)
    out = render_gallery(sample, args.out, artefacts=args.artefact, seed=args.seed,
                         overwrite=args.overwrite, inputs=[args.data] if args.data else [])
    print(f"wrote {out}")
    return 0
