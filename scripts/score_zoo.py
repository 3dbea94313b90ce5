"""Score segmenters on PhC-C2DL-PSC validation under the issue-#19 protocol (zoo README table).

The studies' protocol: the 16 validation frames (sequence 02, t235-t250), 6 seeded 256 px crops
per frame (the one crop stream of every stage, seed 0), pixel Jaccard pooled over the crops,
95 % CI from the report's bootstrap over frames. Conditions: the raw clean reference, the
studies' min-max level 0, gaussian noise sigma 50 / 100 and illumination 500 / 1000 gray levels,
patch zoom 0.5 / 2 / 2.5.

Run: ``python scripts/score_zoo.py --out /tmp/zoo-scores [--segmenter SPEC ...]``; writes the
sweep and its report into ``--out`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

SEVERITIES = {"gaussian_noise": (0.0, 50.0, 100.0), "illumination": (0.0, 500.0, 1000.0),
              "zoom": (1.0, 0.5, 2.0, 2.5)}
DEFAULT = ("psc-robust", "psc-original", "dog_otsu")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "psc"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--segmenter", action="append", default=None)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    from cellrobust.report import ReportOptions, build_report
    from cellrobust.segmenters.spec import parse_spec
    from cellrobust.stages import sweep as stage
    from cellrobust.sweep import Execution, SweepConfig

    segs = tuple(args.segmenter or DEFAULT)
    sweep = SweepConfig(segmenters=segs, artefacts=tuple(SEVERITIES), severities=SEVERITIES,
                        seed=0, patch_size=256)
    stage.run(stage.SweepStageConfig(out=args.out, sweep=sweep, data=args.data,
                                     split="validation", patches=6, patch_size=256,
                                     execution=Execution(overwrite=args.overwrite)))
    build_report(args.out, ReportOptions(n_boot=args.n_boot))
    print(table(args.out, [parse_spec(s).name for s in segs]))


def table(folder: Path, segmenters) -> str:
    """Markdown: one row per condition, one column per segmenter, value [95 % CI]."""
    curves = pd.read_csv(folder / "curves.csv")
    scores = pd.read_csv(folder / "scores.csv")
    clean = scores.groupby("segmenter")[["clean", "clean_lo", "clean_hi"]].first()
    rows = [("clean (raw images)", {s: tuple(clean.loc[s]) for s in segmenters})]
    for art, values in SEVERITIES.items():
        for i, value in enumerate(values):
            if art == "zoom" and i == 0:
                continue
            label = ("min-max rescaled (the studies' level 0)" if i == 0 and art == "gaussian_noise"
                     else None if i == 0 else f"{art} {value:g}")
            if label is None:
                continue
            cell = curves[(curves["artefact"] == art) & (curves["severity_index"] == i)]
            rows.append((label, {r.segmenter: (r.value, r.lo, r.hi) for r in cell.itertuples()}))
    lines = ["| condition | " + " | ".join(segmenters) + " |", "|---" * (len(segmenters) + 1) + "|"]
    for label, cells in rows:
        lines.append(f"| {label} | " + " | ".join(
            f"{cells[s][0]:.3f} [{cells[s][1]:.3f}, {cells[s][2]:.3f}]" for s in segmenters) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
