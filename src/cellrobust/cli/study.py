"""``cellrobust study``: flags -> :class:`~cellrobust.stages.study.StudyConfig` -> run."""

from __future__ import annotations

from cellrobust.cli._common import SEGMENTER_HELP, add_overwrite, add_sweep_options, csv_list
from cellrobust.cli._progress import Progress


def register(subparsers) -> None:
    _register_study(subparsers)


def _register_study(subparsers) -> None:
    p = subparsers.add_parser(
        "study", help="the whole robustness study: train, sweep, score, report",
        description="Train the recipes (or take --model), degrade the evaluation images with "
        "each artefact, segment with every model and baseline, and write scores, figures and "
        "a single-file HTML report. Presets: quick (simulated data, <= 10 min on 2 cores), "
        "paper (PhC-C2DL-PSC protocol, needs --data), nma (speckle, Neuromatch), full (every "
        "artefact).")
    from cellrobust.stages.study import PRESETS, RECIPES

    p.add_argument("--preset", help=f"one of {', '.join(PRESETS)} (default quick, or the "
                   "--config file's)")
    p.add_argument("--config", metavar="FILE",
                   help="study file: a run's study.json (reproduces that run) or a YAML/JSON "
                   "mapping of study fields; flags override it")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="assign",
                   help="override any study field (YAML value; dotted keys reach nested "
                   "ones): --set n_val_frames=2 --set train.lr=5e-4 --set "
                   "recipe_train.artefact.epochs=3 --set figure_formats=[png]; repeatable")
    p.add_argument("--data", metavar="PATH",
                   help="data set that trains (and validates) the recipes; also judged when "
                   "--eval-data is not given (default: embedded simulator)")
    p.add_argument("--eval-data", metavar="PATH",
                   help="data set the models are judged on (all its annotated frames unless "
                   "--eval-frames), e.g. another sequence or lab's images")
    p.add_argument("--out", metavar="DIR", help="results folder (default results/<preset>)")
    p.add_argument("--model", action="append", default=None, metavar="SPEC",
                   help="judge this model too: " + SEGMENTER_HELP)
    p.add_argument("--recipes", type=csv_list, metavar="R,R",
                   help=f"training recipes ({','.join(RECIPES)}); 'none' = no training")
    p.add_argument("--baselines", type=csv_list, metavar="B,B", help="classical baselines")
    p.add_argument("--train-frames", type=int, help="training frames (default: preset)")
    p.add_argument("--eval-frames", type=int, help="evaluation frames (default: preset)")
    p.add_argument("--patches", type=int, help="evaluation patches per frame")
    p.add_argument("--patch-size", type=int, help="evaluation patch side in px")
    p.add_argument("--epochs", type=int, help="training epochs (overrides the preset)")
    p.add_argument("--n-boot", type=int, help="bootstrap replicates for confidence intervals")
    p.add_argument("--metric", help="scored metric (default jaccard)")
    p.add_argument("--reference", help="reference segmenter of CE (default dog_otsu)")
    p.add_argument("--polarity", choices=("auto", "bright", "dark"),
                   help="are cells brighter or darker than the background, for the classical "
                   "baselines (default auto: decided from the training masks, else the judged "
                   "images' statistics; recorded in study.json)")
    p.add_argument("--dog-sigma", type=float, metavar="PX",
                   help="DoG sigma_low in px (default: calibrated from the training masks' "
                   "median cell diameter, else 3.5)")
    add_sweep_options(p)
    add_overwrite(p, "an earlier run's results in --out")
    p.set_defaults(func=_study, seed=None)  # None: the --config file's seed, else 0


def _assignment(text: str) -> dict:
    """``"a.b=VALUE"`` -> ``{"a": {"b": value}}`` (VALUE by the one KEY=VALUE rule,
    :func:`cellrobust._validation.parse_scalar`: 5e-4 is a number, [png] a list)."""
    from cellrobust._validation import InputError, parse_assignment

    key, value = parse_assignment(text, owner="--set")
    if any(not k for k in key.split(".")):
        raise InputError(f"--set: expected KEY=VALUE with a dotted key such as train.lr=5e-4, "
                         f"got {text!r}")
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def study_config(args):
    """The :class:`~cellrobust.stages.study.StudyConfig` of parsed ``study`` flags: preset, then the
    ``--config`` file, then ``--set`` assignments, then the named flags."""
    from cellrobust.stages.study import deep_merge, load_study_file, resolve_study

    preset, overrides = (None, {}) if args.config is None else load_study_file(args.config)
    for text in args.assign:
        overrides = deep_merge(overrides, _assignment(text))
    recipes = args.recipes
    if recipes == ("none",) or recipes is None and args.model:
        recipes = ()
    flags = dict(
        data=args.data, eval_data=args.eval_data, models=tuple(args.model or ()) or None,
        recipes=recipes,
        baselines=args.baselines, artefacts=args.artefacts, severities=args.severities,
        thresholds=args.thresholds, n_train_frames=args.train_frames,
        n_eval_frames=args.eval_frames, patches_per_frame=args.patches,
        patch_size=args.patch_size, n_boot=args.n_boot, metric=args.metric,
        reference=args.reference, polarity=args.polarity, dog_sigma=args.dog_sigma,
        workers=args.workers,
        scheduler=args.scheduler, batch_size=args.batch_size, seed=args.seed,
        train={"epochs": args.epochs} if args.epochs else None)
    overrides = deep_merge(overrides, {k: v for k, v in flags.items() if v is not None})
    return resolve_study(args.preset or preset or "quick", **overrides)


def _study(args) -> int:
    from pathlib import Path

    from cellrobust.stages.study import run_study

    config = study_config(args)
    out = Path(args.out or Path("results") / config.preset)
    with Progress(args.quiet, "study") as bar:
        report = run_study(config, out, progress=bar.update, set_total=bar.set_total,
                           overwrite=args.overwrite, allow_code=args.allow_code)
    print(f"report: {report.resolve()}")
    print(f"summary: {(out / 'summary.md').resolve()}")
    return 0
