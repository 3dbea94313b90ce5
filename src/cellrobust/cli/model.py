"""``cellrobust train``, ``cellrobust predict`` and ``cellrobust export``: the U-Net on the CLI.

These handlers only translate flags into :class:`~cellrobust.training.TrainConfig` /
inference options; the work happens in :mod:`cellrobust.training` and :mod:`cellrobust.models`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cellrobust.cli._common import add_quiet, add_seed


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train``, ``predict`` and ``export`` stages."""
    _register_train(subparsers)
    _register_predict(subparsers)
    _register_export(subparsers)


# -- train -------------------------------------------------------------------------------------
_TRAIN_FIELDS = {  # flag dest -> TrainConfig field (None values are left at the recipe's)
    "epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "optimizer": "optimizer",
    "loss": "loss", "monitor": "monitor", "patience": "patience", "schedule": "schedule",
    "patch_size": "patch_size", "patches_per_frame": "patches_per_frame",
    "patches_per_epoch": "patches_per_epoch", "workers": "workers", "threads": "threads",
    "device": "device", "precision": "precision", "seed": "seed",
    "weight_decay": "weight_decay", "init_weights": "init_weights",
}
_MODEL_FIELDS = ("normalisation", "variant", "width", "depth", "activation", "batchnorm")


def _register_train(subparsers) -> None:
    from cellrobust.training.config import RECIPES

    p = subparsers.add_parser(
        "train", help="train the DeepImageJ U-Net under a recipe",
        description="Train the U-Net on annotated data under a recipe (original, augmented, "
                    "artefact, nma); every recipe value can be overridden. Writes a run folder "
                    "with config.yaml, best.pt, last.pt, history.csv and curves.png.")
    p.add_argument("--data", metavar="PATH", help="training data set (DeepImageJ layout: its "
                   "train split; default: the built-in simulator)")
    p.add_argument("--val-data", metavar="PATH", help="validation data set (default: the "
                   "'validation' split of --data)")
    p.add_argument("--recipe", default="original", choices=sorted(RECIPES),
                   help="training recipe (default original)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/<recipe>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the interrupted run in RUN_DIR "
                   "with its saved config and data paths")
    p.add_argument("--artefact", action="append", default=[], metavar="NAME:LOW:HIGH",
                   help="add a training artefact with severity ~ U(LOW, HIGH) (repeatable)")
    g = p.add_argument_group("overrides (default: the recipe's value)")
    for flag, kind in (("epochs", int), ("batch-size", int), ("lr", float), ("patience", int),
                       ("patch-size", int), ("patches-per-frame", int),
                       ("patches-per-epoch", int), ("workers", int), ("threads", int),
                       ("weight-decay", float)):
        g.add_argument(f"--{flag}", type=kind)
    for flag in ("optimizer", "loss", "monitor", "schedule", "device", "precision"):
        g.add_argument(f"--{flag}")
    g.add_argument("--init-weights", metavar="CHECKPOINT.pt",
                   help="start from these weights (fine-tuning) instead of a random init")
    m = p.add_argument_group("model (default: the DeepImageJ U-Net)")
    m.add_argument("--normalisation", help="max, minmax, none or percentile (default max)")
    m.add_argument("--variant", help="deepimagej or epfl")
    m.add_argument("--width", type=int, help="filters of the first level (default 16)")
    m.add_argument("--depth", type=int, help="encoder levels (default 3)")
    m.add_argument("--activation", help="elu, relu, leaky_relu or gelu")
    m.add_argument("--batchnorm", action="store_true", default=None, help="add batch norm")
    add_seed(p, default=None)
    add_quiet(p)
    p.set_defaults(func=_train)


def _train_config(args: argparse.Namespace):
    from cellrobust.training.config import recipe_config

    overrides = {field: getattr(args, dest) for dest, field in _TRAIN_FIELDS.items()
                 if getattr(args, dest, None) is not None}
    model = {k: getattr(args, k) for k in _MODEL_FIELDS if getattr(args, k) is not None}
    return recipe_config(args.recipe, model=model or None, extra_artefacts=args.artefact,
                         **overrides)


def _load_splits(args: argparse.Namespace):
    from cellrobust.data import load_default_dataset, open_dataset

    if args.data is None:
        return list(load_default_dataset("train")), list(load_default_dataset("validation"))
    if args.val_data is not None:
        return list(open_dataset(args.data)), list(open_dataset(args.val_data))
    return (list(open_dataset(args.data, split="train")),
            list(open_dataset(args.data, split="validation")))


def _train(args: argparse.Namespace) -> int:
    from cellrobust._io import write_json
    from cellrobust.training.loop import load_run_config, train

    if args.resume:
        config, run_dir = load_run_config(args.resume), Path(args.resume)
        _remembered_data(args, run_dir)
    else:
        config = _train_config(args)
        run_dir = Path(args.out or Path("runs") / config.recipe)
    train_samples, val_samples = _load_splits(args)
    if not args.resume:
        data = {k: None if v is None else str(Path(v).resolve())
                for k, v in (("data", args.data), ("val_data", args.val_data))}
        write_json(run_dir / "data.json", data)
    best = train(config, train_samples, val_samples, run_dir=run_dir,
                 progress=not args.quiet, resume=bool(args.resume))
    print(best)
    return 0


def _remembered_data(args: argparse.Namespace, run_dir: Path) -> None:
    """Fill --data/--val-data from the run's data.json when they are not given again."""
    import json

    record = run_dir / "data.json"
    if args.data is None and record.is_file():
        saved = json.loads(record.read_text())
        args.data, args.val_data = saved.get("data"), saved.get("val_data")


# -- predict -----------------------------------------------------------------------------------
def _register_predict(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="segment whole frames with a trained U-Net checkpoint",
        description="Tiled whole-frame inference with a halo; writes 16-bit instance-label "
                    "TIFFs (Cell Tracking Challenge input: XX_RES/maskTTT.tif).")
    p.add_argument("checkpoint", metavar="CHECKPOINT.pt")
    p.add_argument("--data", required=True, metavar="PATH",
                   help="image file, folder or data set to segment")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--split", help="DeepImageJ layout split (train, validation, test)")
    p.add_argument("--tta", action="store_true", help="average the 8 dihedral transforms")
    p.add_argument("--tile", type=int, default=512, help="window side in px (default 512)")
    p.add_argument("--halo", type=int, default=47, help="context px per side (default 47)")
    p.add_argument("--batch-size", type=int, default=2, help="windows per forward pass")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--fill-holes", action="store_true")
    p.add_argument("--min-size", type=int, default=0, help="drop smaller objects (px)")
    p.add_argument("--watershed", action="store_true", help="split touching cells")
    p.add_argument("--probabilities", action="store_true",
                   help="also write float32 probability maps (*_prob.tif)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_quiet(p)
    p.set_defaults(func=_predict)


def _predict(args: argparse.Namespace) -> int:
    from cellrobust.models.inference import UNetSegmenter
    from cellrobust.models.writer import predict_to_files

    seg = UNetSegmenter.from_checkpoint(
        args.checkpoint, device=args.device, threads=args.threads, tile=args.tile,
        halo=args.halo, batch_size=args.batch_size, tta=args.tta, threshold=args.threshold,
        fill_holes=args.fill_holes, min_size=args.min_size, watershed=args.watershed)
    written = predict_to_files(seg, args.data, args.out, split=args.split,
                               probabilities=args.probabilities, progress=not args.quiet)
    print(f"wrote {len(written)} label image(s) to {args.out}")
    return 0


# -- export ------------------------------------------------------------------------------------
def _register_export(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a checkpoint to TorchScript, ONNX and a bioimage.io package",
        description="Write model.pt (TorchScript), model.onnx and a bioimage.io 0.5 model "
                    "package (zip), each checked against PyTorch on a test image.")
    p.add_argument("checkpoint", metavar="CHECKPOINT.pt")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--format", action="append", choices=("torchscript", "onnx", "bioimageio"),
                   help="formats to write (repeatable; default all)")
    p.add_argument("--test-image", metavar="FILE",
                   help="image for the test tensors (default: a 256x256 crop of a simulated "
                        "frame)")
    p.add_argument("--name", help="model name in the bioimage.io package")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from cellrobust.models.export import export_all

    formats = tuple(args.format or ("torchscript", "onnx", "bioimageio"))
    written = export_all(args.checkpoint, args.out, formats=formats,
                         test_image=args.test_image, name=args.name)
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 0
