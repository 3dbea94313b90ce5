"""Run an evaluation end to end: read the data set, get predictions, score, write the outputs.

Predictions come either from a folder of label images (matched to frames by file name) or from
a :class:`~cellrobust.segmenters.Segmenter` (baseline name or checkpoint), on whole frames or on
random crops of them (``patches``: the PSC studies' protocol). Outputs are written
atomically into one folder together with the resolved settings (``config.json``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cellrobust._io import IMAGE_SUFFIXES, read_image, write_json
from cellrobust._validation import DataError, InputError
from cellrobust.metrics.evaluate import (
    EvaluateConfig,
    evaluate_pairs,
    plot_ap_curve,
    summary_table,
)

_FRAME_PREFIXES = ("man_seg", "mask_", "mask", "seg_", "seg", "t")


def _frame_keys(sample) -> list[str]:
    """Names a prediction file of this sample may have (without suffix)."""
    from cellrobust.models.writer import flat_name  # how `cellrobust predict` names files

    keys = []
    for name in (sample.name, sample.meta.get("parent")):  # a crop answers to its frame too
        if name:
            keys += [flat_name(name), name.replace("/", "_"), name.rsplit("/", 1)[-1]]
    for meta_key in ("source", "mask_source"):
        if sample.meta.get(meta_key):
            keys.append(Path(str(sample.meta[meta_key])).stem)
    frame = sample.meta.get("frame")
    if frame is not None:
        keys += [str(frame)] + [f"{p}{int(frame):03d}" for p in _FRAME_PREFIXES]
    return keys


def _pred_index(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: prediction folder not found")
    files = [f for f in sorted(folder.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"{folder}: no label images ({', '.join(IMAGE_SUFFIXES)}) found")
    index = {}
    for f in files:
        index.setdefault(f.stem, f)
        stripped = re.sub(r"_(pred|labels|masks?|seg)$", "", f.stem)
        index.setdefault(stripped, f)
    return index


def _pred_loader(index: dict[str, Path], sample) -> Callable[[], np.ndarray] | None:
    for key in _frame_keys(sample):
        if key in index:
            path = index[key]
            return lambda: _as_labels(read_image(path), path)
    return None


def _as_labels(array: np.ndarray, path: Path) -> np.ndarray:
    """Instance labels of a prediction file; a binary mask becomes its 8-connected components.

    A file with a single non-zero value is read as a binary mask (as the data readers treat
    binary ground truth), so touching cells merge exactly as in the reference masks.
    """
    if array.ndim != 2 or array.dtype.kind not in "iub":
        raise DataError(f"{path}: expected a 2-D integer label image, got shape {array.shape} "
                        f"dtype {array.dtype}; save instance labels (0 = background)")
    values = np.unique(array)
    if values.size == 2 and values[0] == 0:
        from cellrobust.models.postprocess import probabilities_to_labels

        return probabilities_to_labels(array > 0, threshold=0.5, connectivity=8)
    return array


def _open(data, split, frames, patches=None):
    if data is None:
        from cellrobust.data import load_default_dataset

        samples = load_default_dataset(split or "validation", n_frames=frames)
    else:
        from cellrobust.data import open_dataset

        samples = open_dataset(data, split=split)
    count = len(samples) if frames is None else min(frames, len(samples))
    samples = [samples[i] for i in range(count)]
    if not samples:
        raise DataError(f"{data}: no annotated frame to evaluate")
    if patches is not None:
        samples = _patches(samples, **patches)
    return samples


def _patches(samples, *, n: int, size: int, seed: int):
    """``n`` random ``size`` px crops per frame (the PSC studies' test protocol).

    The crops of a frame depend only on (seed, frame name), so a model, a baseline and a
    prediction folder are scored on identical patches.
    """
    from cellrobust._rng import derive_rng
    from cellrobust.data.patches import random_patches

    return [p for s in samples
            for p in random_patches(s, n, size, rng=derive_rng(seed, "evaluate-patches", s.name))]


def _crop_to(labels: np.ndarray, sample) -> np.ndarray:
    """The part of a whole-frame prediction under a patch (``meta["origin"]``), relabelled."""
    if "origin" not in sample.meta:
        return labels
    from cellrobust.data._convert import relabel_sequential

    y, x = sample.meta["origin"]
    h, w = sample.shape
    if labels.shape[0] < y + h or labels.shape[1] < x + w:
        raise DataError(f"{sample.meta.get('parent', sample.name)}: prediction of shape "
                        f"{labels.shape} is smaller than its frame; predict whole frames")
    return relabel_sequential(labels[y:y + h, x:x + w])


def _triples(samples, pred, model, log, options):
    if pred is not None:
        index = _pred_index(Path(pred))
        missing = [s.name for s in samples if _pred_loader(index, s) is None]
        if missing:
            raise DataError(f"{pred}: no prediction for {len(missing)} frame(s), e.g. "
                            f"{missing[0]!r}; name each file like its frame's image or mask")
        return [(s.name, s.labels, (lambda s=s: _crop_to(_pred_loader(index, s)(), s)))
                for s in samples]
    from cellrobust.segmenters import get_segmenter

    segmenter = get_segmenter(model, **options)
    if log:
        log(f"segmenting {len(samples)} frame(s) with {segmenter.name}")
    return [(s.name, s.labels,
             (lambda s=s: segmenter.segment(np.asarray(s.image, np.float32)[None])[0]))
            for s in samples]


def run_evaluation(
    config: EvaluateConfig,
    *,
    data=None,
    split: str | None = None,
    pred=None,
    model=None,
    out,
    frames: int | None = None,
    log: Callable[[str], None] | None = None,
    options: dict | None = None,
    patches: int | None = None,
    patch_size: int = 256,
    seed: int = 0,
) -> str:
    """Score predictions on a data set, write the outputs to ``out``; return the printed table.

    Parameters
    ----------
    config : EvaluateConfig
    data : path-like or None
        Annotated data set (None: the simulated validation set).
    split : str, optional
    pred : path-like, optional
        Folder of predicted label images (exclusive with ``model``).
    model : str or path-like, optional
        Baseline name or checkpoint path.
    out : path-like
        Output folder.
    frames : int, optional
        Evaluate only the first ``frames`` frames.
    log : callable, optional
        Receives progress messages.
    options : dict, optional
        Passed to :func:`cellrobust.segmenters.get_segmenter` with ``model``.
    patches : int, optional
        Score ``patches`` random ``patch_size`` x ``patch_size`` crops per frame instead of
        whole frames (the PSC studies' protocol: 6 crops of 256 px). A model segments each
        crop alone; whole-frame predictions from ``pred`` are cropped. Crops are drawn from
        ``seed`` and the frame name only.
    patch_size : int
        Side of the crops in pixels.
    seed : int
        Seed of the crop positions.
    """
    if (pred is None) == (model is None):
        raise InputError("pred/model: give exactly one of a prediction folder or a model")
    crops = None if patches is None else {"n": patches, "size": patch_size, "seed": seed}
    samples = _open(data, split, frames, crops)
    if options and pred is not None:
        raise InputError("options: segmenter options apply to a model, not to predictions")
    rows, summary = evaluate_pairs(_triples(samples, pred, model, log, options or {}), config,
                                   progress=(lambda n: log(f"scored {n}")) if log else None)
    out = Path(out)
    label = str(model) if model is not None else Path(pred).name
    _write(out, rows, summary, config, data=data, split=split, pred=pred, model=model,
           options=options or {}, frames=frames, patches=crops, label=label)
    return format_summary(summary, label=label, out=out)


def _write(out: Path, rows, summary, config, **settings) -> None:
    import pandas as pd

    from cellrobust import __version__
    from cellrobust._io import atomic_write

    for name, frame in (("metrics_per_image.csv", pd.DataFrame(rows)),
                        ("metrics.csv", pd.DataFrame(summary_table(summary)))):
        with atomic_write(out / name, "w") as handle:
            frame.to_csv(handle, index=False)
    write_json(out / "metrics.json", summary)
    plot_ap_curve(summary, out / "ap_vs_iou.png", label=settings["label"])
    resolved = {"stage": "evaluate", "version": __version__,
                **{k: (str(v) if isinstance(v, Path) else v) for k, v in settings.items()},
                "metrics": dataclasses.asdict(config)}
    write_json(out / "config.json", resolved)


def format_summary(summary: dict, *, label: str = "", out: Path | None = None) -> str:
    """Human-readable table of a summary (what ``cellrobust evaluate`` prints)."""
    avg = summary["average"]
    px = summary["pixel"][avg]
    c = summary["counts"]
    lines = [
        f"{label}: {summary['n_images']} image(s), {avg} average",
        f"pixel  jaccard {px['jaccard']:.3f}  dice {px['dice']:.3f}  accuracy {px['accuracy']:.3f}"
        f" (background-only {px['background_accuracy']:.3f})  precision {px['precision']:.3f}"
        f"  recall {px['recall']:.3f}",
        f"cells  true {c['count_true']}  predicted {c['count_pred']}  mean error "
        f"{c['mean_error']:+.1f}  mean |error| {c['mean_abs_error']:.1f} per image",
        f"SEG    {summary['seg']:.3f}",
        "IoU    AP     prec   recall F1     mIoU   PQ     (AP = TP/(TP+FP+FN), not COCO AP)",
    ]
    for r in summary["matching"][avg]:
        lines.append(f"{r['threshold']:.2f}   {r['ap']:.3f}  {r['precision']:.3f}  "
                     f"{r['recall']:.3f}  {r['f1']:.3f}  {r['mean_iou']:.3f}  {r['pq']:.3f}")
    if out is not None:
        lines.append(f"written: {out}/metrics.csv, metrics.json, metrics_per_image.csv, "
                     "ap_vs_iou.png, config.json")
    return "\n".join(lines)
