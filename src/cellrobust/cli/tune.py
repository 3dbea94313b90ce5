"""``cellrobust tune``: flags -> :class:`~cellrobust.stages.tune.TuneConfig` -> the tune stage."""

from __future__ import annotations

import argparse

from cellrobust.cli._common import add_quiet, csv_list


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tune`` stage."""
    p = subparsers.add_parser(
        "tune", help="hyper-parameter search whose objective is robustness (Optuna)",
        description="Search training configs with Optuna (TPE, pruning on intermediate "
                    "validation). Each trial trains a U-Net and is scored on corrupted "
                    "validation crops (default: mPC of pixel Jaccard over illumination and "
                    "gaussian noise, ladder levels 1-5). Resumable; several workers may share "
                    "one --storage. Writes best_config.yaml (for 'cellrobust train --config'), "
                    "trials.csv, tune.png, tune.md and tune.json.")
    p.add_argument("--data", metavar="PATH", help="data set as for 'cellrobust train' "
                   "(default: the built-in simulator)")
    p.add_argument("--val-data", metavar="PATH", help="validation data set")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--recipe", default="artefact", help="base recipe (default artefact)")
    p.add_argument("--config", metavar="FILE", help="base training config file instead of "
                   "--recipe (a run's config.yaml, e.g. a fine-tune with init_weights; data, "
                   "never code); --set overrides it")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="do not queue the base config itself as the first trial (default: "
                   "queued when the space can express it, so the study holds the score to "
                   "beat)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="base training config field (e.g. epochs=20, patch_size=128, width=8); "
                   "repeatable")
    p.add_argument("--space", metavar="FILE.yaml", help="search space file (default: lr, "
                   "optimizer, loss, width, dropout, dihedral, illumination/noise/speckle "
                   "ranges; see docs/tune.md)")
    o = p.add_argument_group("objective")
    o.add_argument("--artefacts", type=csv_list, metavar="A,B",
                   help="artefacts of the objective (default illumination,gaussian_noise)")
    o.add_argument("--levels", type=_int_list, metavar="1,2,...", help="ladder levels (1-5)")
    o.add_argument("--metric", help="jaccard (pixel, default) or ap50 (instance)")
    o.add_argument("--score", help="mpc (default), clean or worst")
    o.add_argument("--val-patches", type=int, default=6,
                   help="seeded crops per validation frame (0: whole frames; default 6)")
    o.add_argument("--val-patch-size", type=int, default=256)
    s = p.add_argument_group("search")
    s.add_argument("--trials", type=int, help="trials this worker runs (default 20 unless "
                   "--total-trials is given)")
    s.add_argument("--total-trials", type=int,
                   help="stop when the study holds this many finished trials (all workers)")
    s.add_argument("--storage", metavar="URL", help="Optuna storage URL (default "
                   "sqlite:///OUT/study.db; postgresql://... for a cluster)")
    s.add_argument("--study-name", default="cellrobust-tune")
    s.add_argument("--worker", type=int, default=0, help="index of this worker (0, 1, ...)")
    s.add_argument("--pruner", default="median", help="median, percentile or none")
    s.add_argument("--percentile", type=float, default=50.0)
    s.add_argument("--startup-trials", type=int, default=10, help="random trials before TPE")
    s.add_argument("--heartbeat", type=int, default=30, help="worker heartbeat in s")
    s.add_argument("--grace", type=int, default=120,
                   help="s without heartbeat after which a trial counts as dead and is retried")
    s.add_argument("--seed", type=int, default=0, help="sampler and corruption seed")
    s.add_argument("--threads", type=int, help="torch CPU threads")
    add_quiet(p)
    p.set_defaults(func=_tune)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in csv_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def _base(args: argparse.Namespace):
    import dataclasses

    from cellrobust.cli._common import parse_options
    from cellrobust.models.unet import UNetConfig
    from cellrobust.training.config import recipe_config

    values = parse_options(args.set, owner="--set")
    model_fields = {f.name for f in dataclasses.fields(UNetConfig)}
    model = {k: values.pop(k) for k in list(values) if k in model_fields}
    if args.threads is not None:
        values.setdefault("threads", args.threads)
    if args.config:
        from cellrobust.training.config import load_train_config, replace_config

        return replace_config(load_train_config(args.config), model=model, **values)
    values.setdefault("monitor", "val_jaccard")
    return recipe_config(args.recipe, model=model or None, **values)


def _tune(args: argparse.Namespace) -> int:
    import optuna

    from cellrobust.stages.tune import TuneConfig, default_storage, run
    from cellrobust.training.tune import ObjectiveConfig, SearchConfig, SearchSpace
    from cellrobust.training.tune.space import DEFAULT_SPACE

    objective = {k: getattr(args, k) for k in ("artefacts", "levels", "metric", "score")
                 if getattr(args, k) is not None}
    n_trials = args.trials if args.trials is not None or args.total_trials else 20
    search = SearchConfig(
        storage=args.storage or default_storage(args.out), n_trials=n_trials,
        total_trials=args.total_trials, study_name=args.study_name, seed=args.seed,
        worker=args.worker, startup_trials=args.startup_trials, pruner=args.pruner,
        percentile=args.percentile, heartbeat_s=args.heartbeat, grace_s=args.grace)
    space = (SearchSpace.from_file(args.space) if args.space
             else SearchSpace.from_mapping(DEFAULT_SPACE))
    config = TuneConfig(out=args.out, search=search, base=_base(args), space=space,
                        objective=ObjectiveConfig(seed=args.seed, **objective),
                        data=args.data, val_data=args.val_data, val_patches=args.val_patches,
                        val_patch_size=args.val_patch_size, baseline=args.baseline,
                        progress=not args.quiet)
    optuna.logging.set_verbosity(optuna.logging.WARNING if args.quiet else optuna.logging.INFO)
    out = run(config)
    print(out / "tune.md")
    return 0
