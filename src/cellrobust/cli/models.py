"""``cellrobust models``: list the segmenter kinds, their options and what each needs."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` stage."""
    p = subparsers.add_parser(
        "models", help="list the segmenter kinds (baseline, unet, onnx, bioimageio, cellpose, "
        "...), their options and what each needs installed",
        description="Every command that takes a segmenter (evaluate --model, sweep "
        "--segmenter, study --model, predict MODEL) reads the same spec grammar; this lists "
        "the kinds it knows.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--brief", action="store_true", help="leave the option lists out")
    p.set_defaults(func=_models)


def _models(args: argparse.Namespace) -> int:
    from cellrobust.stages.models import describe_kinds, format_kinds

    records = describe_kinds()
    if args.json:
        import json

        print(json.dumps(records, indent=2))
    else:
        print(format_kinds(records, options=not args.brief))
    return 0
