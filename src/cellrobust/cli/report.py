"""``cellrobust report``: rebuild scores, figures and the HTML report from a results folder."""

from __future__ import annotations

from cellrobust.cli._common import add_seed
from cellrobust.robustness.bootstrap import DEFAULT_N_BOOT


def register(subparsers) -> None:
    _register_report(subparsers)


def _register_report(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="rebuild scores, figures and the HTML report from a results folder",
        description="Recompute summaries from RESULTS_DIR/results.parquet (no segmentation) "
        "and write scores.csv, figures/, report.html and summary.md there.")
    p.add_argument("results_dir", metavar="RESULTS_DIR")
    p.add_argument("--metric", default="jaccard", help="scored metric (default jaccard)")
    p.add_argument("--reference", default="dog_otsu", help="reference segmenter of CE")
    p.add_argument("--average", default="micro", help="micro or macro")
    p.add_argument("--n-boot", type=float, default=DEFAULT_N_BOOT,
                   help=f"bootstrap replicates (default {DEFAULT_N_BOOT})")
    p.add_argument("--tolerance", type=float, default=0.9,
                   help="trusted range: the metric stays >= this fraction of the clean score "
                   "(default 0.9)")
    p.add_argument("--floor", type=float, default=None,
                   help="trusted range: and >= this absolute metric value (default none)")
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
    from cellrobust.stages.study import load_study_file, resolve_study
    from cellrobust.stages.study_steps import robust_pair

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

    from cellrobust._limits import check_count

    n_boot = check_count("n_boot", args.n_boot, "bootstrap")
    table = read_results(args.results_dir)
    check_choice("metric", args.metric, robustness.metric_names(table))
    check_choice("average", args.average, ("micro", "macro"))
    robust, baseline, title = _study_defaults(args.results_dir)
    opts = ReportOptions(metric=args.metric, reference=args.reference, average=args.average,
                         n_boot=n_boot, seed=args.seed, robust=args.robust or robust,
                         tolerance=args.tolerance, floor=args.floor,
                         baseline=args.baseline or baseline, title=title)
    print(f"report: {build_report(args.results_dir, opts).resolve()}")
    return 0
