"""Score predictions of a data set: per-image count rows and a summary.

Used by ``cellrobust evaluate`` (:mod:`cellrobust.stages.evaluate`). Per image the row holds counts only (pixel confusion counts,
object and cell counts, matched TP/FP/FN and summed IoU per threshold, SEG sums) in the column
names of the results table (``tp_px``, ``tp@0.50``, ...); the summary derives the scores from
them with the averaging stated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from cellrobust._validation import InputError, collect_errors
from cellrobust.metrics.aggregate import AVERAGES
from cellrobust.metrics.dataset import match_dataset
from cellrobust.metrics.instance import CRITERIA, DEFAULT_THRESHOLDS, MatchResult, match
from cellrobust.metrics.pixel import pixel_scores
from cellrobust.metrics.seg import SegCounts, seg_score


@dataclass(frozen=True)
class EvaluateConfig:
    """What to score and how (written next to the results as ``config.json``).

    Attributes
    ----------
    thresholds : tuple of float in (0, 1]
        Matching thresholds (IoU for ``criterion="iou"``).
    criterion : {"iou", "iot", "iop"}
    average : {"micro", "macro"}
        Averaging of the headline scores; both are reported in the JSON summary.
    connectivity : {8, 4}
        Of the cell counts (connected components of the binary masks, as in the PSC paper).
    empty : float
        Score of a 0/0 ratio on an image with no true and no predicted object/foreground.
    """

    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    criterion: str = "iou"
    average: str = "micro"
    connectivity: int = 8
    empty: float = 1.0

    def __post_init__(self) -> None:
        errors = []
        thr = np.asarray(self.thresholds, dtype=float)
        if thr.ndim != 1 or thr.size == 0 or not np.all((thr > 0) & (thr <= 1)):
            errors.append(f"thresholds: expected values in (0, 1], got {self.thresholds!r}")
        if self.criterion not in CRITERIA:
            errors.append(f"criterion: expected one of {', '.join(CRITERIA)}, "
                          f"got {self.criterion!r}")
        if self.average not in AVERAGES:
            errors.append(f"average: expected 'micro' or 'macro', got {self.average!r}")
        if self.connectivity not in (4, 8):
            errors.append(f"connectivity: expected 8 or 4, got {self.connectivity!r}")
        collect_errors(errors, "evaluation settings")


def image_row(name: str, true: np.ndarray, pred: np.ndarray, config: EvaluateConfig,
              runtime_s: float = float("nan"), *,
              instances: bool | None = None) -> tuple[dict, MatchResult]:
    """Counts of one image (the results-table columns of :mod:`cellrobust.table`, plus the SEG
    sums) and its :class:`MatchResult`."""
    from cellrobust.metrics.counts import counts_row

    result = match(true, pred, thresholds=config.thresholds, criterion=config.criterion,
                   empty=config.empty)
    seg = seg_score(true, pred)
    row = {"sample": name, **counts_row(true, pred, thresholds=config.thresholds,
                                         connectivity=config.connectivity, instances=instances,
                                         criterion=config.criterion),
           "seg_sum_jaccard": seg.sum_jaccard, "seg_n_ref": seg.n_ref, "runtime_s": runtime_s}
    return row, result


def evaluate_pairs(
    pairs: Iterable[tuple[str, np.ndarray, Callable[[], np.ndarray] | np.ndarray]],
    config: EvaluateConfig = EvaluateConfig(),
    *,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[dict], dict]:
    """Score ``(name, labels_true, labels_pred or a callable producing them)`` triples.

    Returns
    -------
    rows : list of dict
        One row of counts per image.
    summary : dict
        Scores (see :func:`summarise_rows`).
    """
    rows, results = [], []
    for name, true, pred in pairs:
        start = time.perf_counter()
        labels = pred() if callable(pred) else pred
        runtime = time.perf_counter() - start if callable(pred) else float("nan")
        row, result = image_row(name, np.asarray(true), np.asarray(labels), config, runtime)
        rows.append(row)
        results.append(result)
        if progress:
            progress(name)
    if not rows:
        raise InputError("data: no annotated image to evaluate")
    return rows, summarise_rows(rows, results, config)


def summarise_rows(rows: Sequence[dict], results: Sequence[MatchResult],
                   config: EvaluateConfig) -> dict:
    """Pixel, count, SEG and matching scores, micro and macro, from per-image counts."""
    counts = [{k: r[f"{k}_px"] for k in ("tp", "fp", "fn", "tn")} for r in rows]
    count_err = np.array([r["count_pred"] - r["count_true"] for r in rows], dtype=float)
    seg = SegCounts(sum(r["seg_sum_jaccard"] for r in rows), sum(r["seg_n_ref"] for r in rows))
    matching = {avg: match_dataset(results, average=avg) for avg in AVERAGES}
    return {
        "n_images": len(rows),
        "average": config.average,
        "pixel": {avg: pixel_scores(counts, average=avg, empty=config.empty) for avg in AVERAGES},
        "counts": {"count_true": int(sum(r["count_true"] for r in rows)),
                   "count_pred": int(sum(r["count_pred"] for r in rows)),
                   "mean_error": float(count_err.mean()),
                   "mean_abs_error": float(np.abs(count_err).mean())},
        "seg": seg.seg,
        "matching": {avg: m.as_rows() for avg, m in matching.items()},
    }


def summary_table(summary: dict) -> list[dict]:
    """Rows (one per threshold) of the headline matching scores plus the image-level scores."""
    avg = summary["average"]
    pixel = summary["pixel"][avg]
    out = []
    for row in summary["matching"][avg]:
        out.append({"threshold": row["threshold"], "average": avg, "ap": row["ap"],
                    "precision": row["precision"], "recall": row["recall"], "f1": row["f1"],
                    "mean_iou": row["mean_iou"], "pq": row["pq"], "tp": row["tp"],
                    "fp": row["fp"], "fn": row["fn"], "pixel_jaccard": pixel["jaccard"],
                    "pixel_accuracy": pixel["accuracy"], "seg": summary["seg"]})
    return out
