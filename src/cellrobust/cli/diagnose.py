"""``cellrobust diagnose``: estimate artefact severities of unlabelled images; with a study,
predict each model's metric there and recommend one."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``diagnose`` stage."""
    p = subparsers.add_parser(
        "diagnose", help="estimate noise, illumination, blur, cell size... of unlabelled images",
        description="Estimate, per image, the severity of every artefact with an estimator "
        "(gaussian noise sigma, Poisson photons, illumination amplitude, defocus sigma, "
        "cell-size factor, JPEG quality, stripes, hot pixels) in the units of the artefact "
        "grids, with 95 % intervals; with --study, predict each model's metric at those "
        "severities, flag images outside a model's trusted range and recommend a model.")
    p.add_argument("images", nargs="+", metavar="IMAGES", help="image files or folders")
    p.add_argument("--study", metavar="RESULTS_DIR", default=None,
                   help="folder holding a study's results.parquet")
    p.add_argument("--reference", metavar="IMAGES", action="append", default=[],
                   help="clean images of the study (folder or files, repeatable; at most 16 "
                   "are read): sets the gray-level scale, intrinsic noise and cell size")
    p.add_argument("--artefacts", default=None, metavar="LIST",
                   help="comma list of artefacts to estimate (default: all with an estimator)")
    p.add_argument("--metric", default="jaccard", choices=["jaccard", "dice"],
                   help="metric predicted from the study (default jaccard)")
    p.add_argument("--tolerance", type=float, default=0.9,
                   help="trusted range: fraction of the clean score kept (default 0.9)")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstraps (default 0)")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an output folder that holds other files")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    """Run the stage and print where the page is."""
    from cellrobust.stages.diagnose import DiagnoseConfig, run

    arts = None if args.artefacts is None else tuple(
        a.strip() for a in args.artefacts.split(",") if a.strip())
    config = DiagnoseConfig(images=tuple(args.images), out=args.out, study=args.study,
                            reference=tuple(args.reference), artefacts=arts,
                            metric=args.metric, tolerance=args.tolerance, n_boot=args.n_boot,
                            seed=args.seed, overwrite=args.overwrite)
    page = run(config)
    print(f"diagnosis written to {page}")
    return 0
