"""``cellrobust export``: a checkpoint to TorchScript, ONNX and a bioimage.io package."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` stage."""
    _register_export(subparsers)


def _register_export(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a checkpoint to TorchScript, ONNX and a bioimage.io package",
        description="Write model.torchscript.pt (TorchScript), model.onnx and a bioimage.io "
                    "0.5 model package (<name>.bioimageio.zip), each checked against PyTorch on "
                    "a test image; --robustness puts a study's scores and figures into the "
                    "package (its robustness card).")
    p.add_argument("checkpoint", metavar="CHECKPOINT.pt")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--format", action="append", choices=("torchscript", "onnx", "bioimageio"),
                   help="formats to write (repeatable; default all)")
    p.add_argument("--test-image", metavar="FILE",
                   help="image for the test tensors (default: a 256x256 crop of a simulated "
                        "frame)")
    p.add_argument("--name", help="model name in the bioimage.io package")
    p.add_argument("--robustness", metavar="RESULTS_DIR",
                   help="a study's results folder whose summary, scores and figures go into the "
                   "package as its robustness card")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an --out folder holding files cellrobust did not write")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from cellrobust.stages.export import FORMATS, ExportConfig, run

    config = ExportConfig(args.checkpoint, args.out, formats=tuple(args.format or FORMATS),
                          test_image=args.test_image, name=args.name,
                          robustness=args.robustness, overwrite=args.overwrite)
    written = run(config)
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 0
