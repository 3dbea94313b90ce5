"""``cellrobust study``, ``cellrobust sweep`` and ``cellrobust report``: flags -> configs."""

from __future__ import annotations

import argparse
import sys

from cellrobust.cli._common import add_quiet, add_seed

PRESETS = ("quick", "paper", "nma", "full")


def register(subparsers) -> None:
    _register_study(subparsers)
    _register_sweep(subparsers)
    _register_report(subparsers)


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(t) for t in _csv(text))


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artefacts", type=_csv, metavar="A,B",
                   help="artefacts to sweep, comma-separated ('cellrobust artefacts list')")
    p.add_argument("--severities", metavar="MODE",
                   help="'ladder' (levels 0-5), 'grid' (curve grid) or a named artefact preset "
                   "such as 'study'")
    p.add_argument("--thresholds", type=_floats, metavar="T,T",
                   help="IoU thresholds of instance matching (default 0.5,0.6,0.7,0.8,0.9)")
    p.add_argument("--workers", type=int, help="local worker processes for the sweep")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask distributed scheduler address (tcp://host:8786) to run cells on")
    p.add_argument("--batch-size", type=int, help="images per segmenter call")
    add_seed(p, default=0)
    add_quiet(p)


def _register_study(subparsers) -> None:
    p = subparsers.add_parser(
        "study", help="the whole robustness study: train, sweep, score, report",
        description="Train the recipes (or take --model), degrade the evaluation images with "
        "each artefact, segment with every model and baseline, and write scores, figures and "
        "a single-file HTML report. Presets: quick (simulated data, <= 10 min on 2 cores), "
        "paper (PhC-C2DL-PSC protocol, needs --data), nma (speckle, Neuromatch), full (every "
        "artefact).")
    p.add_argument("--preset", help=f"one of {', '.join(PRESETS)} (default quick, or the "
                   "--config file's)")
    p.add_argument("--config", metavar="FILE",
                   help="study file: a run's study.json (reproduces that run) or a YAML/JSON "
                   "mapping of study fields; flags override it")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="assign",
                   help="override any study field (YAML value; dotted keys reach nested "
                   "ones): --set n_val_frames=2 --set train.lr=5e-4 --set "
                   "recipe_train.artefact.epochs=3 --set figure_formats=[png]; repeatable")
    p.add_argument("--data", metavar="PATH", help="data set (default: embedded simulator)")
    p.add_argument("--out", metavar="DIR", help="results folder (default results/<preset>)")
    p.add_argument("--model", action="append", default=None, metavar="[NAME=]CKPT",
                   help="evaluate this checkpoint too (repeatable)")
    p.add_argument("--recipes", type=_csv, metavar="R,R",
                   help="training recipes (original,augmented,artefact,nma); 'none' = no "
                   "training")
    p.add_argument("--baselines", type=_csv, metavar="B,B", help="classical baselines")
    p.add_argument("--train-frames", type=int, help="training frames (default: preset)")
    p.add_argument("--eval-frames", type=int, help="evaluation frames (default: preset)")
    p.add_argument("--patches", type=int, help="evaluation patches per frame")
    p.add_argument("--patch-size", type=int, help="evaluation patch side in px")
    p.add_argument("--epochs", type=int, help="training epochs (overrides the preset)")
    p.add_argument("--n-boot", type=int, help="bootstrap replicates for confidence intervals")
    p.add_argument("--metric", help="scored metric (default jaccard)")
    p.add_argument("--reference", help="reference segmenter of CE (default dog_otsu)")
    _add_run_options(p)
    p.set_defaults(func=_study, seed=None)  # None: the --config file's seed, else 0


def _assignment(text: str) -> dict:
    """``"a.b=VALUE"`` -> ``{"a": {"b": value}}`` (VALUE parsed as YAML; 5e-4 is a number)."""
    import yaml

    from cellrobust._validation import InputError

    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or any(not k for k in key.strip().split(".")):
        raise InputError(f"--set: expected KEY=VALUE (e.g. train.lr=5e-4), got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise InputError(f"--set {key}: cannot parse the value {raw!r} as YAML") from None
    if isinstance(value, str):
        try:
            value = float(value)  # YAML 1.1 reads 5e-4 as a string
        except ValueError:
            pass
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def study_config(args):
    """The :class:`~cellrobust.study.StudyConfig` of parsed ``study`` flags: preset, then the
    ``--config`` file, then ``--set`` assignments, then the named flags."""
    from cellrobust.study import deep_merge, load_study_file, resolve_study

    preset, overrides = (None, {}) if args.config is None else load_study_file(args.config)
    for text in args.assign:
        overrides = deep_merge(overrides, _assignment(text))
    recipes = args.recipes
    if recipes == ("none",) or recipes is None and args.model:
        recipes = ()
    flags = dict(
        data=args.data, models=tuple(args.model or ()) or None, recipes=recipes,
        baselines=args.baselines, artefacts=args.artefacts, severities=args.severities,
        thresholds=args.thresholds, n_train_frames=args.train_frames,
        n_eval_frames=args.eval_frames, patches_per_frame=args.patches,
        patch_size=args.patch_size, n_boot=args.n_boot, metric=args.metric,
        reference=args.reference, workers=args.workers,
        scheduler=args.scheduler, batch_size=args.batch_size, seed=args.seed,
        train={"epochs": args.epochs} if args.epochs else None)
    overrides = deep_merge(overrides, {k: v for k, v in flags.items() if v is not None})
    return resolve_study(args.preset or preset or "quick", **overrides)


def _study(args) -> int:
    from pathlib import Path

    from cellrobust.study import run_study

    config = study_config(args)
    out = Path(args.out or Path("results") / config.preset)
    with _Progress(args.quiet, "study") as bar:
        report = run_study(config, out, progress=bar.update, set_total=bar.set_total)
    print(f"report: {report.resolve()}")
    print(f"summary: {(out / 'summary.md').resolve()}")
    return 0


class _Progress:
    """One overall bar (work units, ETA) across training, sweep and report."""

    def __init__(self, quiet: bool, desc: str) -> None:
        self.quiet, self.desc, self.bar, self.done = quiet, desc, None, 0.0

    def __enter__(self):
        return self

    def set_total(self, total: float) -> None:
        if not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=round(total, 1), desc=self.desc, unit="u", file=sys.stderr,
                            bar_format="{l_bar}{bar}| {percentage:3.0f}% "
                            "[{elapsed}<{remaining}] {postfix}")

    def update(self, units: float, what: str = "") -> None:
        # the exact sum is kept here: rounding each of hundreds of small updates drifted past
        # the total; the bar gets the change of the (clamped) rounded sum
        self.done += units
        if self.bar is not None:
            self.bar.set_postfix_str(what, refresh=False)
            self.bar.update(round(min(self.done, self.bar.total), 1) - self.bar.n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _register_sweep(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="segmenters x artefacts x severities x images -> results table",
        description="Run (or resume) a sweep into a results folder: one tidy table "
        "(results.parquet, results.csv), one row per segmenter x artefact x severity x image.")
    p.add_argument("--data", metavar="PATH", help="data set (default: simulator test split)")
    p.add_argument("--split", help="split of --data to evaluate (e.g. validation)")
    p.add_argument("--segmenter", action="append", required=True, metavar="[NAME=]SPEC",
                   help="baseline name (dog_otsu, nlm_otsu, otsu) or checkpoint; repeatable")
    p.add_argument("--out", required=True, metavar="DIR", help="results folder")
    p.add_argument("--frames", type=int, help="number of frames to use (default all)")
    p.add_argument("--patches", type=int, default=6, help="random patches per frame (6)")
    p.add_argument("--patch-size", type=int, default=256, help="patch side in px (256)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace results of a different sweep in --out")
    _add_run_options(p)
    p.set_defaults(func=_sweep)


def _sweep(args) -> int:
    from cellrobust.study_steps import load_sweep_samples
    from cellrobust.sweep import Execution, SweepConfig, cell_list, run_sweep

    if not args.artefacts:
        from cellrobust._validation import InputError

        raise InputError("artefacts: empty selection; name at least one artefact")
    config = SweepConfig(segmenters=tuple(args.segmenter), artefacts=args.artefacts,
                         severities=args.severities or "ladder",
                         thresholds=args.thresholds or (0.5, 0.6, 0.7, 0.8, 0.9),
                         seed=args.seed, batch_size=args.batch_size or 4,
                         patch_size=args.patch_size)
    samples, frames = load_sweep_samples(args.data, split=args.split, frames=args.frames,
                                 patches=args.patches, size=args.patch_size, seed=args.seed)
    execution = Execution(workers=args.workers or 1, scheduler=args.scheduler,
                          overwrite=args.overwrite)
    with _Progress(args.quiet, "sweep") as bar:
        bar.set_total(len(cell_list(config)))
        table = run_sweep(config, samples, args.out, frames=frames, execution=execution,
                          progress=lambda cells: bar.update(len(cells), "cells"))
    print(f"results: {len(table)} rows in {args.out}/results.parquet (and .csv)")
    return 0


def _register_report(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="rebuild scores, figures and the HTML report from a results folder",
        description="Recompute summaries from RESULTS_DIR/results.parquet (no segmentation) "
        "and write scores.csv, figures/, report.html and summary.md there.")
    p.add_argument("results_dir", metavar="RESULTS_DIR")
    p.add_argument("--metric", default="jaccard", help="scored metric (default jaccard)")
    p.add_argument("--reference", default="dog_otsu", help="reference segmenter of CE")
    p.add_argument("--average", default="micro", help="micro or macro")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates")
    p.add_argument("--robust", help="model compared in paired differences (default: the "
                   "study's robust model from study.json, else artefact)")
    p.add_argument("--baseline", help="its comparison model (default original)")
    add_seed(p, default=0)
    p.set_defaults(func=_report)


def _study_defaults(results_dir) -> tuple[str, str, str]:
    """(robust model, baseline, title) of the study that wrote ``results_dir``, if any."""
    from pathlib import Path

    from cellrobust._validation import InputError
    from cellrobust.report import ReportOptions
    from cellrobust.study import load_study_file, resolve_study
    from cellrobust.study_steps import robust_pair

    defaults = ("artefact", "original", ReportOptions.title)
    path = Path(results_dir) / "study.json"
    if not path.is_file():
        return defaults  # a plain 'cellrobust sweep' folder
    try:
        preset, overrides = load_study_file(path)
        config = resolve_study(preset or "quick", **overrides)
    except InputError:
        return defaults  # written by another version: keep the generic defaults
    return (*robust_pair(config), f"cellrobust robustness study ({config.preset})")


def _report(args) -> int:
    from cellrobust import robustness
    from cellrobust._validation import check_choice
    from cellrobust.report import ReportOptions, build_report, read_results

    table = read_results(args.results_dir)
    check_choice("metric", args.metric, robustness.metric_names(table))
    check_choice("average", args.average, ("micro", "macro"))
    robust, baseline, title = _study_defaults(args.results_dir)
    opts = ReportOptions(metric=args.metric, reference=args.reference, average=args.average,
                         n_boot=args.n_boot, seed=args.seed, robust=args.robust or robust,
                         baseline=args.baseline or baseline, title=title)
    print(f"report: {build_report(args.results_dir, opts).resolve()}")
    return 0
