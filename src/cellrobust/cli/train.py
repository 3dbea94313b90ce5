"""``cellrobust train``: flags -> :class:`~cellrobust.training.TrainConfig` -> the train stage."""

from __future__ import annotations

import argparse
from pathlib import Path

from cellrobust.cli._common import add_quiet, add_seed


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` stage."""
    _register_train(subparsers)


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
    p.add_argument("--data", metavar="PATH", help="training data set, any layout: its own "
                   "train/validation splits when it has them, else a seeded default split "
                   "(recorded in the run folder; default: the built-in simulator)")
    p.add_argument("--val-data", metavar="PATH", help="validation data set (default: the "
                   "'validation' split of --data, or the default split)")
    p.add_argument("--recipe", default="original", choices=sorted(RECIPES),
                   help="training recipe (default original)")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/<recipe>)")
    p.add_argument("--config", metavar="FILE",
                   help="start from a training config file (a run's config.yaml or a tuning "
                   "study's best_config.yaml; data, never code); flags override it")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the interrupted run in RUN_DIR "
                   "with its saved config and data; changed options are refused unless safe "
                   "(more epochs, patience, workers, threads), and recorded")
    p.add_argument("--overwrite", action="store_true",
                   help="train into an --out folder that holds an earlier run or other files")
    p.add_argument("--artefact", action="append", default=[], metavar="NAME:LOW:HIGH[:P]",
                   help="add a training artefact with severity ~ U(LOW, HIGH), applied to a "
                        "share P of the patches (default 1: all; repeatable)")
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


def _overrides(args: argparse.Namespace) -> tuple[dict, dict]:
    """(TrainConfig fields, UNetConfig fields) given explicitly on the command line."""
    fields = {field: getattr(args, dest) for dest, field in _TRAIN_FIELDS.items()
              if getattr(args, dest, None) is not None}
    model = {k: getattr(args, k) for k in _MODEL_FIELDS if getattr(args, k) is not None}
    return fields, model


def _train_config(args: argparse.Namespace, base=None):
    """The recipe (or ``base``: a config file's or a resumed run's) with the flags applied."""
    import dataclasses

    from cellrobust.training.config import ArtefactRange, recipe_config

    fields, model = _overrides(args)
    if base is None:
        return recipe_config(args.recipe, model=model or None, extra_artefacts=args.artefact,
                             **fields)
    if model:
        fields["model"] = dataclasses.replace(base.model, **model)
    if args.artefact:
        fields["artefacts"] = tuple(base.artefacts) + tuple(ArtefactRange.parse(a)
                                                            for a in args.artefact)
    return dataclasses.replace(base, **fields)


def _train(args: argparse.Namespace) -> int:
    from cellrobust.stages.train import TrainStageConfig, run
    from cellrobust.training.config import load_train_config
    from cellrobust.training.loop import load_run_config

    if args.resume:
        config = _train_config(args, load_run_config(args.resume))
        run_dir = Path(args.resume)
        _remembered_data(args, run_dir)
    else:
        base = load_train_config(args.config) if args.config else None
        config = _train_config(args, base)
        run_dir = Path(args.out or Path("runs") / config.recipe)
    stage = TrainStageConfig(train=config, out=run_dir, data=args.data,
                             val_data=args.val_data, resume=bool(args.resume),
                             overwrite=args.overwrite)
    print(run(stage, progress=not args.quiet))
    return 0


def _remembered_data(args: argparse.Namespace, run_dir: Path) -> None:
    """Fill --data/--val-data from the run's data.json when they are not given again."""
    import json

    record = run_dir / "data.json"
    if args.data is None and record.is_file():
        saved = json.loads(record.read_text())
        args.data, args.val_data = saved.get("data"), saved.get("val_data")
