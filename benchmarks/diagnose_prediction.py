"""Predicted vs measured Jaccard on held-out corrupted PSC frames (issue #16, part 5).

Protocol (nothing is fitted or chosen on the held-out frames):

1. **Study** (the curves): a sweep (:func:`cellrobust.sweep.run_sweep`) of the segmenters
   ``psc-original``, ``psc-robust`` and ``dog_otsu`` on the first ``--n-study`` PSC
   validation frames (t235-t242), ``--study-patches`` seeded 256 px crops per frame (the
   studies' crop protocol, ``cellrobust.stages._data.eval_patches``), artefacts
   ``gaussian_noise`` and ``illumination`` at the grid values of :data:`STUDY_GRID` (noise
   sigma 0-200, illumination amplitude 0-4000 gray levels; ``--grid-step k``: every k-th
   grid value instead).
2. **Held-out images**: the last ``--n-test`` validation frames (t243-t250, disjoint),
   ``--test-patches`` crops per frame cut with the same protocol; each crop is corrupted once
   with every artefact at a severity drawn uniformly over that artefact's study range with
   ``numpy.random.default_rng(seed)``, using the sweep's stream
   ``artefacts.stream(seed, crop name, artefact, severity)`` (default normalisation: min-max),
   so ``cellrobust corrupt`` reproduces every image.
3. For each held-out image: ``diagnose_images`` (both estimators; references = the clean study
   frames), ``predict`` (each model's Jaccard with its 95 % interval, from the study table)
   and the **measured** pixel Jaccard of the model on that crop against its mask - scored
   exactly as the sweep scores its rows (one 256 px crop, ``pixel_counts``).

The main figure uses the prediction from the curve of the artefact that was applied, at its
estimated severity. Also recorded: ``predicted_at_true`` (the curve at the true severity: the
part of the error that is not the estimator's), ``binding_*`` (the lowest prediction over both
diagnosed artefacts, what ``recommend`` uses) and ``pi_*``: ``diagnose.predict``'s per-image
prediction interval (the study crops' 2.5-97.5 % quantiles over the estimate's interval),
derived from the study frames only.

Writes ``diagnose_prediction.csv`` (one row per image x model), ``diagnose_prediction_summary.csv``,
``diagnose_prediction.json`` (configuration) and ``diagnose_prediction.png``; prints the summary.

Run: ``python -m benchmarks.diagnose_prediction [--data DIR] [--out DIR] [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

SEGMENTERS = ("psc-original", "psc-robust", "dog_otsu")
ARTEFACTS = ("gaussian_noise", "illumination")
#: The issue's bounds on held-out images.
MAE_BOUND = 0.05
COVERAGE_BOUND = 0.85
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "psc" / "validation"


#: The study's severities: values of each artefact's curve grid, denser at low severities
#: (a subset of ``artefacts.get(name).grid``; the identity gives the level-0 rows).
STUDY_GRID = {
    "gaussian_noise": (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 70.0, 100.0, 150.0, 200.0),
    "illumination": (0.0, 100.0, 200.0, 300.0, 500.0, 700.0, 1000.0, 1500.0, 2000.0, 3000.0,
                     4000.0),
}


def grid(name: str, step: int = 0) -> tuple[float, ...]:
    """The study's severities of one artefact: :data:`STUDY_GRID` (``step`` 0), or every
    ``step``-th value of the artefact's curve grid (its last value kept)."""
    from cellrobust import artefacts

    values = tuple(float(v) for v in artefacts.get(name).grid)
    if not step:
        missing = sorted(set(STUDY_GRID[name]) - set(values))
        if missing:
            raise ValueError(f"{name}: {missing} are not on the artefact's grid")
        return STUDY_GRID[name]
    picked = values[::step]
    return picked if picked[-1] == values[-1] else (*picked, values[-1])


def draw_severities(n: int, ranges: dict[str, tuple[float, float]], *, seed: int) -> dict:
    """``n`` severities per artefact, uniform over its range, from one seeded Generator
    (rounded to 0.1: the value ``cellrobust corrupt --severity`` takes)."""
    gen = np.random.default_rng(seed)
    return {name: np.round(gen.uniform(lo, hi, n), 1) for name, (lo, hi) in ranges.items()}


def held_out_images(patches, severities: dict, *, seed: int) -> list[dict]:
    """Every patch corrupted by every artefact at its drawn severity, with the sweep's streams."""
    from cellrobust import artefacts

    out = []
    for name, values in severities.items():
        for patch, value in zip(patches, values):
            image, _ = artefacts.apply(patch, name, float(value), rng=artefacts.stream(
                seed, patch.name, name, float(value)))
            out.append({"image": f"{patch.name}/{name}", "frame": patch.name.rsplit("/", 1)[0],
                        "patch": patch.name, "artefact": name, "true_severity": float(value),
                        "pixels": np.asarray(image.image, dtype=np.float32),
                        "labels": patch.labels})
    return out


def measure(images: list[dict], segmenters: dict, *, batch_size: int = 4) -> pd.DataFrame:
    """Measured pixel Jaccard of every segmenter on every image (the sweep's pixel counts)."""
    from cellrobust.metrics.pixel import pixel_counts

    rows = []
    for seg, model in segmenters.items():
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            pred = np.asarray(model.segment(np.stack([b["pixels"] for b in batch])))
            for item, p in zip(batch, pred):
                px = pixel_counts(item["labels"], p)
                den = px["tp"] + px["fp"] + px["fn"]
                rows.append({"image": item["image"], "segmenter": seg,
                             "measured": px["tp"] / den if den else 1.0,
                             "tp_px": px["tp"], "fp_px": px["fp"], "fn_px": px["fn"]})
    return pd.DataFrame(rows)


def compare(images: list[dict], diagnosis: pd.DataFrame, predictions: pd.DataFrame,
            measured: pd.DataFrame, curves: dict) -> pd.DataFrame:
    """One row per image x segmenter: true/estimated severity, prediction, measured, error."""
    meta = pd.DataFrame([{k: v for k, v in i.items() if k not in ("pixels", "labels")}
                         for i in images])
    est = diagnosis.rename(columns={"artefact": "diag_artefact", "estimate": "estimated_severity",
                                    "ci_low": "est_ci_low", "ci_high": "est_ci_high"})
    est = est[["image", "diag_artefact", "estimated_severity", "est_ci_low", "est_ci_high",
               "detected"]]
    rows = meta.merge(est, left_on=["image", "artefact"], right_on=["image", "diag_artefact"])
    pred = predictions[["image", "artefact", "segmenter", "predicted", "ci_low", "ci_high",
                        "pi_low", "pi_high", "outside_trusted", "beyond_grid"]]
    rows = rows.merge(pred, on=["image", "artefact"]).drop(columns="diag_artefact")
    finite = predictions[np.isfinite(predictions["predicted"].to_numpy(float))]
    binding = finite.loc[finite.groupby(["image", "segmenter"])["predicted"].idxmin(),
                         ["image", "segmenter", "predicted", "artefact"]]
    rows = rows.merge(binding.rename(columns={"predicted": "binding_predicted",
                                              "artefact": "binding_artefact"}),
                      on=["image", "segmenter"], how="left")
    rows = rows.merge(measured[["image", "segmenter", "measured"]], on=["image", "segmenter"])
    rows["predicted_at_true"] = [_at(curves[(s, a)], a, t) for s, a, t in
                                 zip(rows["segmenter"], rows["artefact"], rows["true_severity"])]
    return score(rows)


def _at(curve: dict, art: str, severity: float) -> float:
    from cellrobust.diagnose.predict import severity_axis

    return float(np.interp(severity_axis(art, severity), curve["x"], curve["value"]))


def score(rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``abs_error``, ``covered`` (and their ``_at_true`` / ``pi_`` counterparts)."""
    rows = rows.copy()
    rows["abs_error"] = (rows["predicted"] - rows["measured"]).abs()
    rows["covered"] = (rows["ci_low"] <= rows["measured"]) & (rows["measured"] <= rows["ci_high"])
    if "predicted_at_true" in rows:
        rows["abs_error_at_true"] = (rows["predicted_at_true"] - rows["measured"]).abs()
    if "pi_low" in rows:
        rows["pi_covered"] = (rows["pi_low"] <= rows["measured"]) & \
            (rows["measured"] <= rows["pi_high"])
    return rows


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per segmenter x artefact (and ``all``): n, MAE, bias, CI coverage, CI width, targets.

    ``n`` counts every image; ``n_undefined`` those whose estimate (hence prediction) is NaN.
    MAE, bias, coverage and width are over the defined predictions only.
    """
    parts = [rows, rows.assign(artefact="all")]
    data = pd.concat(parts, ignore_index=True)
    undefined = ~np.isfinite(data["predicted"].to_numpy(float))
    data = data.assign(bias=data["predicted"] - data["measured"],
                       width=data["ci_high"] - data["ci_low"], undefined=undefined)
    for col in ("covered", "pi_covered"):
        if col in data:
            data[col] = data[col].astype(float).where(~undefined)
    aggs = dict(n=("abs_error", "size"), n_undefined=("undefined", "sum"),
                mae=("abs_error", "mean"),
                median_ae=("abs_error", "median"), max_ae=("abs_error", "max"),
                bias=("bias", "mean"), coverage=("covered", "mean"),
                mean_ci_width=("width", "mean"))
    if "abs_error_at_true" in data:
        aggs["mae_at_true"] = ("abs_error_at_true", "mean")
    if "pi_covered" in data:
        aggs["pi_coverage"] = ("pi_covered", "mean")
    out = data.groupby(["segmenter", "artefact"], sort=True).agg(**aggs).reset_index()
    out["mae_met"] = out["mae"] <= MAE_BOUND
    out["coverage_met"] = out["coverage"] >= COVERAGE_BOUND
    return out


def figure(rows: pd.DataFrame, path: Path) -> Path:
    """Predicted (with 95 % CI) vs measured, one panel per artefact."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arts = sorted(rows["artefact"].unique())
    fig, axes = plt.subplots(1, len(arts), figsize=(4.2 * len(arts), 4), squeeze=False)
    for ax, art in zip(axes[0], arts):
        part = rows[rows["artefact"] == art]
        for seg, g in part.groupby("segmenter"):
            ax.errorbar(g["measured"], g["predicted"], yerr=[g["predicted"] - g["ci_low"],
                        g["ci_high"] - g["predicted"]], fmt="o", ms=3, lw=0.8, label=seg)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="measured Jaccard", ylabel="predicted Jaccard",
               title=art)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    from cellrobust._io import write_text
    from cellrobust.data import open_dataset
    from cellrobust.diagnose import diagnose_images, predict, reference_stats, study_curves
    from cellrobust.stages._data import eval_patches
    from cellrobust.sweep import SweepConfig, build_segmenters, run_sweep

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--out", default="benchmarks/results/diagnose_prediction")
    p.add_argument("--study-dir", default=None, help="sweep folder (default OUT/study; reused)")
    p.add_argument("--n-study", type=int, default=8)
    p.add_argument("--n-test", type=int, default=8)
    p.add_argument("--study-patches", type=int, default=3)
    p.add_argument("--test-patches", type=int, default=3)
    p.add_argument("--grid-step", type=int, default=0,
                   help="0: STUDY_GRID; k: every k-th value of the artefact grids")
    p.add_argument("--segmenters", default=",".join(SEGMENTERS))
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    frames = list(open_dataset(args.data))
    if args.n_study + args.n_test > len(frames):
        raise SystemExit(f"{args.data}: {len(frames)} frames, need {args.n_study + args.n_test}")
    study_frames = frames[:args.n_study]
    test_frames = frames[len(frames) - args.n_test:]
    out = Path(args.out)
    study_dir = Path(args.study_dir) if args.study_dir else out / "study"
    severities = {a: grid(a, args.grid_step) for a in ARTEFACTS}
    config = SweepConfig(segmenters=tuple(args.segmenters.split(",")), artefacts=ARTEFACTS,
                         severities=severities, seed=args.seed)
    study_patches = eval_patches(study_frames, n=args.study_patches, size=256, seed=args.seed)
    table = run_sweep(config, study_patches, study_dir)

    test_patches = eval_patches(test_frames, n=args.test_patches, size=256, seed=args.seed)
    ranges = {a: (min(v), max(v)) for a, v in severities.items()}
    drawn = draw_severities(len(test_patches), ranges, seed=args.seed)
    images = held_out_images(test_patches, drawn, seed=args.seed)
    reference = reference_stats([f.image for f in study_frames], rng=args.seed)
    diagnosis = diagnose_images({i["image"]: i["pixels"] for i in images}, reference=reference,
                                artefacts=ARTEFACTS, rng=args.seed, n_boot=200)
    # the held-out crops are corrupted with the default min-max rescale, as the study's were:
    # their clean point is the study's level 0, not the raw reference
    predictions = predict(diagnosis, table, n_boot=args.n_boot, seed=args.seed, clean="level0")
    measured = measure(images, build_segmenters(config))
    curves = study_curves(table, n_boot=args.n_boot, seed=args.seed, clean="level0")
    rows = compare(images, diagnosis, predictions, measured, curves)
    summ = summary(rows)

    write_text(out / "diagnose_prediction.csv", rows.to_csv(index=False))
    write_text(out / "diagnose_prediction_summary.csv", summ.to_csv(index=False))
    write_text(out / "diagnose_prediction.json", json.dumps({
        "data": str(args.data), "study_frames": [f.name for f in study_frames],
        "test_frames": [f.name for f in test_frames], "study_dir": str(study_dir),
        "study_patches_per_frame": args.study_patches, "test_patches_per_frame":
        args.test_patches, "severities": {k: list(v) for k, v in severities.items()},
        "ranges": ranges, "segmenters": [s.name for s in config.segmenters],
        "n_boot": args.n_boot, "seed": args.seed, "scoring": "pixel Jaccard per 256 px crop "
        "(the sweep's rows)"}, indent=2))
    figure(rows, out / "diagnose_prediction.png")
    print(f"study: {len(study_frames)} frames x {args.study_patches} crops; held out: "
          f"{len(test_frames)} frames x {args.test_patches} crops x {len(ARTEFACTS)} artefacts "
          f"= {len(images)} corrupted images")
    print(summ.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    allm = summ[summ["artefact"] == "all"]
    for _, r in allm.iterrows():
        print(f"{r['segmenter']}: MAE {r['mae']:.3f} (bound {MAE_BOUND}: "
              f"{'met' if r['mae_met'] else 'NOT met'}), coverage {r['coverage']:.0%} (bound "
              f"{COVERAGE_BOUND:.0%}: {'met' if r['coverage_met'] else 'NOT met'}), n {r['n']} "
              f"({r['n_undefined']} without an estimate)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
