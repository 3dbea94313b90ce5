"""Run an evaluation end to end: read the data set, get predictions, score, write the outputs.

Predictions come either from a folder of label images (matched to frames by file name) or from
a :class:`~cellrobust.segmenters.Segmenter` (baseline name or checkpoint), on whole frames or on
random crops of them (``patches``: the PSC studies' protocol). Outputs are written
atomically into one folder together with the resolved settings (``config.json``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cellrobust._io import IMAGE_SUFFIXES, read_image, write_json
from cellrobust._validation import DataError, collect_errors
from cellrobust.metrics.evaluate import EvaluateConfig, evaluate_pairs, summary_table

_FRAME_PREFIXES = ("man_seg", "mask_", "mask", "seg_", "seg", "t")


def _frame_keys(sample) -> list[str]:
    """Names a prediction file of this sample may have (without suffix)."""
    from cellrobust.stages.predict import flat_name  # how `cellrobust predict` names files

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


def _triples(samples, pred, segmenter, log):
    if pred is not None:
        index = _pred_index(Path(pred))
        missing = [s.name for s in samples if _pred_loader(index, s) is None]
        if missing:
            raise DataError(f"{pred}: no prediction for {len(missing)} frame(s), e.g. "
                            f"{missing[0]!r}; name each file like its frame's image or mask")
        return [(s.name, s.labels, (lambda s=s: _crop_to(_pred_loader(index, s)(), s)))
                for s in samples]
    if log:
        log(f"segmenting {len(samples)} frame(s) with {segmenter.name}")
    return [(s.name, s.labels,
             (lambda s=s: segmenter.segment(np.asarray(s.image, np.float32)[None])[0]))
            for s in samples]


@dataclass(frozen=True)
class EvaluateStageConfig:
    """One ``cellrobust evaluate`` run (validated; every invalid field reported at once).

    Attributes
    ----------
    out : path
        Output folder (refused when it is the data set or holds files cellrobust did not
        write, unless ``overwrite``).
    model : str, optional
        A segmenter spec (:mod:`cellrobust.segmenters.spec`); exclusive with ``pred``.
    pred : path, optional
        Folder of predicted label images, matched to frames by file name.
    data : path, optional
        Annotated data set (None: the simulated validation set).
    split : str, optional
    frames : int, optional
        Evenly spaced subset of this many frames (:func:`cellrobust.stages._data.subset`).
    patches : int, optional
        Score ``patches`` seeded ``patch_size`` px crops per frame (the PSC studies' protocol;
        the same crops as the sweep's and study's with the same seed) instead of whole frames.
    patch_size : int
    seed : int
    metrics : EvaluateConfig
    overwrite, allow_code : bool
        Permissions of whoever starts the run.
    """

    out: str | Path
    model: str | None = None
    pred: str | Path | None = None
    data: str | Path | None = None
    split: str | None = None
    frames: int | None = None
    patches: int | None = None
    patch_size: int = 256
    seed: int = 0
    metrics: EvaluateConfig = field(default_factory=EvaluateConfig)
    overwrite: bool = False
    allow_code: bool = False

    def __post_init__(self) -> None:
        errors = []
        if (self.pred is None) == (self.model is None):
            errors.append("model/pred: give exactly one of a segmenter or a prediction folder")
        for name in ("frames", "patches"):
            value = getattr(self, name)
            if value is not None and not (_is_int(value) and value >= 1):
                errors.append(f"{name}: expected a positive integer, got {value!r}")
        if not (_is_int(self.patch_size) and self.patch_size >= 1):
            errors.append(f"patch_size: expected a positive integer, got {self.patch_size!r}")
        collect_errors(errors, "evaluation")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _samples(config: EvaluateStageConfig) -> list:
    from cellrobust.stages._data import eval_patches, open_frames

    frames = open_frames(config.data, split=config.split, n_frames=config.frames,
                         seed=config.seed, default_split="validation")
    if config.patches is None:
        return frames
    return eval_patches(frames, n=config.patches, size=config.patch_size, seed=config.seed)


def run(config: EvaluateStageConfig, *, log: Callable[[str], None] | None = None) -> str:
    """Score the predictions, write the outputs to ``config.out``; return the printed table."""
    from cellrobust.stages._outputs import guarded_output

    with guarded_output(config.out, owner="evaluate", inputs=(config.data, config.pred),
                        overwrite=config.overwrite) as out:
        samples = _samples(config)
        segmenter = None
        if config.model is not None:
            from cellrobust.segmenters import build_segmenter
            from cellrobust.segmenters.registry import MEASUREMENT_DEFAULTS

            segmenter = build_segmenter(config.model, allow_code=config.allow_code,
                                        defaults=MEASUREMENT_DEFAULTS)
        rows, summary = evaluate_pairs(_triples(samples, config.pred, segmenter, log),
                                       config.metrics,
                                       progress=(lambda n: log(f"scored {n}")) if log else None)
        label = segmenter.name if segmenter is not None else Path(config.pred).name
        _write(out, rows, summary, config, label=label, segmenter=segmenter, samples=samples)
    return format_summary(summary, label=label, out=out)


def _write(out: Path, rows, summary, config, *, label, segmenter, samples) -> None:
    import pandas as pd

    from cellrobust._io import atomic_write
    from cellrobust.stages._record import provenance, save_figure

    for name, frame in (("metrics_per_image.csv", pd.DataFrame(rows)),
                        ("metrics.csv", pd.DataFrame(summary_table(summary)))):
        with atomic_write(out / name, "w") as handle:
            frame.to_csv(handle, index=False)
    write_json(out / "metrics.json", summary)
    save_figure(_ap_figure(summary, label=label), out / "ap_vs_iou.png")
    record = provenance("evaluate", config, segmenters=[segmenter] if segmenter else [],
                        images=[s.name for s in samples])
    write_json(out / "config.json", record)


def format_summary(summary: dict, *, label: str = "", out: Path | None = None) -> str:
    """Human-readable table of a summary (what ``cellrobust evaluate`` prints)."""
    avg = summary["average"]
    px = summary["pixel"][avg]
    c = summary["counts"]
    other = "macro" if avg == "micro" else "micro"
    words = {"micro": "pooled over images", "macro": "mean of per-image scores"}
    lines = [
        f"{label}: {summary['n_images']} image(s), {avg} average ({words[avg]})",
        f"pixel  jaccard {px['jaccard']:.3f}  dice {px['dice']:.3f}  accuracy {px['accuracy']:.3f}"
        f" (background-only {px['background_accuracy']:.3f})  precision {px['precision']:.3f}"
        f"  recall {px['recall']:.3f}",
        f"       jaccard {summary['pixel'][other]['jaccard']:.3f} {other} ({words[other]}, as "
        f"{'the studies report' if other == 'macro' else 'pooled counts'})",
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


def _ap_figure(summary: dict, *, label: str = ""):
    """AP (TP/(TP+FP+FN), DSB 2018 convention) against the matching threshold."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 3.4), dpi=150)
    ax = fig.subplots()
    for avg, style in (("micro", "-o"), ("macro", "--s")):
        rows = summary["matching"][avg]
        ax.plot([r["threshold"] for r in rows], [r["ap"] for r in rows], style, ms=3,
                label=f"{label} ({avg})".strip())
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel("AP = TP / (TP + FP + FN)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(f"{summary['n_images']} images", fontsize=9)
    fig.tight_layout()
    return fig
