"""Accuracy of the ``cellrobust.diagnose`` severity estimators on corrupted real PSC frames.

Clean reference: the first ``--n-reference`` PSC validation frames; test frames: the last
``--n-test`` (disjoint). Every test frame is corrupted with
``artefacts.apply(sample, name, value, rng=artefacts.stream(seed, name_of_frame, name, value))``
(the sweep's streams, default normalisation) at known severities; cell size uses the study's
frame-level windows (``zoom_crops``, 256 px). Writes ``diagnose_validation.csv`` (one row per
frame x artefact x value) and prints a per-artefact table of relative errors.

Run: ``python -m benchmarks.diagnose_validation [--data DIR] [--out DIR] [--n-test 4]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

GRIDS = {
    "gaussian_noise": (10.0, 20.0, 30.0, 50.0, 70.0, 100.0),
    "illumination": (100.0, 200.0, 400.0, 800.0, 1200.0, 2000.0, 3000.0, 4000.0),
    "cell_size": (0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 1.8, 2.0),
    "poisson": (3000.0, 1000.0, 300.0, 100.0, 30.0, 10.0),
    "defocus": (0.5, 1.0, 2.0, 3.0, 4.0),
    "stripes": (5.0, 10.0, 20.0, 40.0),
    "hot_pixels": (0.5, 1.0, 5.0, 10.0, 20.0),
    "jpeg": (90.0, 70.0, 50.0, 30.0, 10.0, 5.0),
}
#: The issue's targets: (artefact, low, high, relative bound).
TARGETS = (("gaussian_noise", 10, 100, 0.15), ("illumination", 200, 4000, 0.25),
           ("cell_size", 0.5, 2.0, 0.15))
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "psc" / "validation"


def corrupted(frame, name: str, value: float, seed: int):
    """The corrupted images of one frame (cell size: two study windows)."""
    from cellrobust import artefacts
    from cellrobust.artefacts.geometry import zoom_crops

    if name == "cell_size":
        return [c.image for c in zoom_crops(frame, value, n=2, rng=artefacts.stream(
            seed, frame.name, name, value))]
    out, _ = artefacts.apply(frame, name, value, rng=artefacts.stream(seed, frame.name, name,
                                                                      value))
    return [out.image]


def measure(frames, reference, *, seed: int = 0, grids=GRIDS) -> pd.DataFrame:
    """One row per frame x artefact x value x image: true value, estimate, interval."""
    from cellrobust.diagnose import estimate_image

    rows = []
    for frame in frames:
        for name, values in grids.items():
            for value in values:
                for k, image in enumerate(corrupted(frame, name, value, seed)):
                    est = estimate_image(image, reference=reference, artefacts=[name],
                                         rng=seed, n_boot=100)[0]
                    rows.append({"frame": frame.name, "image": k, "artefact": name,
                                 "true": value, "estimate": est.estimate, "ci_low": est.ci_low,
                                 "ci_high": est.ci_high, "unit": est.unit})
    table = pd.DataFrame(rows)
    table["rel_error"] = (table["estimate"] - table["true"]) / table["true"]
    table["covered"] = (table["ci_low"] <= table["true"]) & (table["true"] <= table["ci_high"])
    return table


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per artefact x value: median and max absolute relative error, CI coverage."""
    g = table.assign(abs_rel=table["rel_error"].abs()).groupby(["artefact", "true"])
    return g.agg(n=("estimate", "size"), mean_estimate=("estimate", "mean"),
                 median_abs_rel=("abs_rel", "median"), max_abs_rel=("abs_rel", "max"),
                 coverage=("covered", "mean")).reset_index()


def targets(table: pd.DataFrame) -> list[str]:
    """One line per issue target: share of estimates within the bound over its range."""
    lines = []
    for name, lo, hi, bound in TARGETS:
        part = table[(table["artefact"] == name) & table["true"].between(lo, hi)]
        share = float((part["rel_error"].abs() <= bound).mean()) if len(part) else float("nan")
        worst = float(part["rel_error"].abs().max()) if len(part) else float("nan")
        lines.append(f"{name} {lo:g}-{hi:g}: {share:.0%} of {len(part)} estimates within "
                     f"{bound:.0%} (worst {worst:.1%})")
    return lines


def main(argv=None) -> int:
    from cellrobust._io import write_text
    from cellrobust.data import open_dataset
    from cellrobust.diagnose import reference_stats

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--out", default="benchmarks/results/diagnose")
    p.add_argument("--n-reference", type=int, default=6)
    p.add_argument("--n-test", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    ds = open_dataset(args.data)
    ref = reference_stats([ds[i].image for i in range(args.n_reference)])
    frames = [ds[i] for i in range(len(ds) - args.n_test, len(ds))]
    table = measure(frames, ref, seed=args.seed)
    out = Path(args.out)
    write_text(out / "diagnose_validation.csv", table.to_csv(index=False))
    summ = summary(table)
    write_text(out / "diagnose_summary.csv", summ.to_csv(index=False))
    print(summ.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print("\n".join(targets(table)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
