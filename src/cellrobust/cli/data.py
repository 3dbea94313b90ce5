"""``cellrobust data``: fetch public data sets and describe data sets.

``cellrobust data fetch psc [--dest DIR] (--sha256 HEX | --allow-unverified)`` downloads,
verifies and extracts PhC-C2DL-PSC and prints the folder to use (no digest is published for
it yet: without ``--sha256`` an unverified download must be allowed explicitly, and its digest
is printed to pin); ``cellrobust data info [PATH]`` prints the statistics of a data set
(without PATH: the simulated default data set); ``cellrobust data formats`` lists the readers.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` stage and its ``fetch``/``info``/``formats`` sub-commands."""
    parser = subparsers.add_parser("data", help="fetch and describe data sets",
                                   description="Fetch public data sets and describe data sets.")
    sub = parser.add_subparsers(dest="data_command", metavar="COMMAND",
                                parser_class=type(parser))
    _register_fetch(sub)
    _register_info(sub)
    formats = sub.add_parser("formats", help="list the data set layouts that can be read")
    formats.set_defaults(func=_formats)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _register_fetch(sub) -> None:
    p = sub.add_parser("fetch", help="download, verify and extract a public data set",
                       description="Download a public data set archive (resumable, SHA-256 "
                       "verified, safely extracted) and print the folder to use.")
    p.add_argument("name", choices=["psc"], help="data set: psc = PhC-C2DL-PSC (Cell Tracking "
                   "Challenge training archive)")
    p.add_argument("--dest", metavar="DIR", default=None,
                   help="where to put it (default $CELLROBUST_DATA or ~/.cache/cellrobust)")
    p.add_argument("--url", default=None, help="download from this mirror instead (http:// or "
                   "https://; needs --sha256 or --allow-unverified)")
    p.add_argument("--sha256", default=None, metavar="HEX",
                   help="expected SHA-256 of the archive, 64 hex digits (overrides the built-in "
                   "value)")
    p.add_argument("--allow-unverified", action="store_true",
                   help="download although no SHA-256 is known; the digest is printed so it "
                   "can be pinned with --sha256 next time")
    p.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_fetch)


def _register_info(sub) -> None:
    p = sub.add_parser("info", help="describe a data set (default: the simulated one)",
                       description="Print format, frames, annotated frames, image shape/dtype, "
                       "objects per frame, foreground fraction and object-area percentiles.")
    p.add_argument("path", nargs="?", default=None,
                   help="data set folder or file (default: the simulated default data set)")
    p.add_argument("--format", default=None, help="force a reader (see 'cellrobust data formats')")
    p.add_argument("--split", default=None, help="split to read (train, validation, test)")
    p.add_argument("--masks", default="gt", help="CTC masks: gt, st or gt+st (default gt)")
    p.add_argument("--sequences", nargs="+", default=None, metavar="NN",
                   help="CTC sequences to read, e.g. 01 02 (default all)")
    p.add_argument("--channel", type=int, default=None, help="channel of multi-channel images")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow npz files holding pickled objects (Neuromatch format)")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="simulated data set: number of frames; real data: describe only N frames")
    p.add_argument("--seed", type=int, default=0, help="simulated data set: seed (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_info)


def _fetch(args: argparse.Namespace) -> int:
    import dataclasses
    import warnings

    from cellrobust.data.fetch import SOURCES, check_sha256, check_url, fetch

    source = SOURCES[args.name]
    sha256 = check_sha256(args.sha256)  # usage errors at once, before any network access
    if args.url is not None:  # a mirror: the built-in digest may not describe its file
        source = dataclasses.replace(source, url=check_url(args.url), sha256=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = fetch(source, dest=args.dest, sha256=sha256,
                     allow_unverified=args.allow_unverified, progress=not args.quiet,
                     keep_archive=args.keep_archive)
    for warning in caught:
        print(f"cellrobust: warning: {warning.message}", file=sys.stderr)
    print(path)
    return 0


def _info(args: argparse.Namespace) -> int:
    import json

    from cellrobust.data import describe

    if args.path is None:
        from cellrobust.data import load_default_dataset

        dataset = load_default_dataset(args.split or "train", n_frames=args.frames, seed=args.seed)
        info = describe(dataset)
    else:
        info = describe(args.path, max_frames=args.frames, format=args.format, split=args.split,
                        masks=args.masks, sequences=args.sequences, channel=args.channel,
                        trust_pickle=args.trust_pickle)
    print(json.dumps(info.to_dict(), indent=2) if args.json else info.to_text())
    return 0


def _formats(args: argparse.Namespace) -> int:
    from cellrobust.data import formats

    for name, description in formats().items():
        print(f"{name:16s} {description}")
    return 0
