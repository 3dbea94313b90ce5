"""``metrics``: AP at 10 IoU thresholds, cellrobust vs StarDist and Cellpose, same label pairs.

Workloads (as in issue 5): 1,000 pairs of 256x256 label images with about 30 objects each and
100 pairs of 576x720 with about 200 objects. Each side computes, for thresholds 0.50:0.05:0.95,
the optimal one-to-one matching counts pooled over the data set: ours with
``cellrobust.metrics.match_dataset``, StarDist with ``stardist.matching.matching_dataset``
(``by_image=False``), Cellpose with ``cellpose.metrics.average_precision`` (per-image counts,
summed). The check compares TP, FP, FN and the pooled TP/(TP+FP+FN) of every side to 1e-9.
A last row times the Cell Tracking Challenge SEG of the large workload read from TIFF files,
ours (``seg_dataset``) vs py-ctcmetrics (``match`` + ``seg``), and checks the SEG values agree.
The label pairs are generated once by the harness and read from .npy files by every side.
"""

from __future__ import annotations

import numpy as np

from ..harness import Comparison, Side

THRESHOLDS = [round(0.5 + 0.05 * i, 2) for i in range(10)]


# ----------------------------------------------------------------------------- the workload
def _paint(shape, centres, radii, rng) -> np.ndarray:
    """Label image of elliptical objects painted in order (later ones occlude earlier ones)."""
    out = np.zeros(shape, np.uint16)
    h, w = shape
    for k, ((cy, cx), r) in enumerate(zip(centres, radii), start=1):
        ry, rx = r * rng.uniform(0.75, 1.25, 2)
        y0, y1 = max(int(cy - ry) - 1, 0), min(int(cy + ry) + 2, h)
        x0, x1 = max(int(cx - rx) - 1, 0), min(int(cx + rx) + 2, w)
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        out[y0:y1, x0:x1][inside] = k
    return out


def _sequential(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    lut = np.zeros(int(ids.max()) + 1, np.uint16)
    lut[ids] = np.arange(len(ids), dtype=np.uint16)
    return lut[labels]


def make_pair(shape, n_objects: int, radius: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """A (true, predicted) label pair: predictions are shifted, rescaled, dropped, spurious."""
    h, w = shape
    n = max(int(rng.poisson(n_objects)), 1)
    centres = rng.uniform((0, 0), (h, w), (n, 2))
    radii = radius * rng.uniform(0.6, 1.4, n)
    true = _paint(shape, centres, radii, rng)
    keep = rng.random(n) > 0.1
    p_centres = centres[keep] + rng.normal(0, radius * 0.25, (keep.sum(), 2))
    p_radii = radii[keep] * rng.uniform(0.8, 1.2, keep.sum())
    n_fp = int(rng.poisson(0.1 * n))
    p_centres = np.concatenate([p_centres, rng.uniform((0, 0), (h, w), (n_fp, 2))])
    p_radii = np.concatenate([p_radii, radius * rng.uniform(0.6, 1.4, n_fp)])
    order = rng.permutation(len(p_radii))
    pred = _paint(shape, p_centres[order], p_radii[order], rng)
    return _sequential(true), _sequential(pred)


def write_workload(path_prefix: str, *, n: int, shape, n_objects: int, radius: float,
                   seed: int) -> dict:
    """Generate ``n`` pairs and save ``<prefix>_true.npy`` / ``_pred.npy``; return params."""
    rng = np.random.default_rng(seed)
    pairs = [make_pair(shape, n_objects, radius, rng) for _ in range(n)]
    np.save(f"{path_prefix}_true.npy", np.stack([p[0] for p in pairs]))
    np.save(f"{path_prefix}_pred.npy", np.stack([p[1] for p in pairs]))
    counts = [len(np.unique(p[0])) - 1 for p in pairs]
    return {"prefix": path_prefix, "mean_objects": float(np.mean(counts))}


def _load(prefix: str) -> tuple[np.ndarray, np.ndarray]:
    return np.load(f"{prefix}_true.npy"), np.load(f"{prefix}_pred.npy")


def _values(tp, fp, fn) -> list[float]:
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    den = tp + fp + fn
    ap = np.divide(tp, den, out=np.zeros_like(tp), where=den > 0)
    return [float(v) for v in np.concatenate([tp, fp, fn, ap])]


class _Bench:
    def __init__(self, prefix: str, **_):
        self.true, self.pred = _load(prefix)
        self.units = len(self.true)
        self.values = None

    def step(self) -> dict:
        self.values = self.compute()
        return {"units": self.units}


class Ours(_Bench):
    def compute(self) -> list[float]:
        from cellrobust.metrics import match_dataset
        res = match_dataset(zip(self.true, self.pred), thresholds=THRESHOLDS).pooled
        return _values(res.tp, res.fp, res.fn)

    @property
    def info(self) -> dict:
        import cellrobust
        return {"versions": {"cellrobust": cellrobust.__version__, "numpy": np.__version__}}


class StarDist(_Bench):
    def compute(self) -> list[float]:
        from stardist.matching import matching_dataset
        stats = matching_dataset(list(self.true), list(self.pred), thresh=THRESHOLDS,
                                 show_progress=False, by_image=False)
        return _values([s.tp for s in stats], [s.fp for s in stats], [s.fn for s in stats])

    @property
    def info(self) -> dict:
        import stardist
        return {"versions": {"stardist": stardist.__version__}}


class Cellpose(_Bench):
    def compute(self) -> list[float]:
        from cellpose.metrics import average_precision
        _, tp, fp, fn = average_precision(list(self.true), list(self.pred), threshold=THRESHOLDS)
        return _values(tp.sum(0), fp.sum(0), fn.sum(0))

    @property
    def info(self) -> dict:
        from importlib.metadata import version
        return {"versions": {"cellpose": version("cellpose")}}


def ours(**kw):
    return Ours(**kw)


def stardist(**kw):
    return StarDist(**kw)


def cellpose(**kw):
    return Cellpose(**kw)


# ------------------------------------------------------- CTC SEG on TIFF files (py-ctcmetrics)
def write_tiffs(prefix: str, folder) -> int:
    """Write the pairs of ``prefix`` as ``ref_NNN.tif`` / ``res_NNN.tif`` into ``folder``."""
    import tifffile
    true, pred = _load(prefix)
    for i, (t, p) in enumerate(zip(true, pred)):
        tifffile.imwrite(folder / f"ref_{i:03d}.tif", t)
        tifffile.imwrite(folder / f"res_{i:03d}.tif", p)
    return len(true)


class _SegBench:
    def __init__(self, *, folder: str, n: int):
        from pathlib import Path
        root = Path(folder)
        self.pairs = [(str(root / f"ref_{i:03d}.tif"), str(root / f"res_{i:03d}.tif"))
                      for i in range(n)]
        self.values = None

    def step(self) -> dict:
        self.values = [self.compute()]
        return {"units": len(self.pairs)}


class OursSeg(_SegBench):
    def compute(self) -> float:
        import tifffile

        from cellrobust.metrics import seg_dataset
        return seg_dataset((tifffile.imread(r), tifffile.imread(c)) for r, c in self.pairs).seg

    @property
    def info(self) -> dict:
        import cellrobust
        return {"versions": {"cellrobust": cellrobust.__version__}}


class CtcSeg(_SegBench):
    def compute(self) -> float:
        from ctc_metrics.metrics import seg
        from ctc_metrics.utils.representations import match
        refs, ious = [], []
        for r, c in self.pairs:
            labels_ref, _, _, _, iou = match(r, c)
            refs.append(labels_ref)
            ious.append(iou)
        return seg(refs, ious)

    @property
    def info(self) -> dict:
        from importlib.metadata import version
        return {"versions": {"py-ctcmetrics": version("py-ctcmetrics")}}


def ours_seg(**kw):
    return OursSeg(**kw)


def ctc_seg(**kw):
    return CtcSeg(**kw)


# --------------------------------------------------------------------------------- the suite
WORKLOADS = {  # name: (pairs, shape, ~objects, radius px, rounds)
    "small": (1000, (256, 256), 30, 9.0, 3),
    "large": (100, (576, 720), 200, 8.0, 3),
}


def run(ctx) -> dict:
    rows, notes = [], []
    for name, (n, shape, n_obj, radius, rounds) in WORKLOADS.items():
        if ctx.smoke:
            n = 4
        prefix = str(ctx.work_dir / f"metrics_{name}")
        params = write_workload(prefix, n=n, shape=shape, n_objects=n_obj, radius=radius,
                                seed=7)
        notes.append(f"{name}: {n} pairs {shape[0]}×{shape[1]}, "
                     f"{params['mean_objects']:.1f} true objects per image on average")
        side = {"prefix": prefix}
        rows.append(ctx.compare(Comparison(
            f"AP@10 thresholds, {n} pairs {shape[0]}×{shape[1]}", "pairs/s",
            Side("cellrobust", "benchmarks.suites.metrics:ours", side),
            (Side("StarDist", "benchmarks.suites.metrics:stardist", side, "tf"),
             Side("Cellpose", "benchmarks.suites.metrics:cellpose", side, "cellpose")),
            goal=3.0, check_values=True, rounds=rounds)))
    rows.append(_seg_row(ctx, prefix, n))
    notes.append(f"SEG: the {n} pairs of 576×720 read from 16-bit TIFF files by both sides "
                 "(py-ctcmetrics works on files); pooled SEG over all reference objects.")
    return {"title": "instance matching (AP at IoU 0.50:0.05:0.95) vs StarDist and Cellpose; "
                     "CTC SEG vs py-ctcmetrics", "rows": rows, "notes": notes}


def _seg_row(ctx, prefix: str, n: int) -> dict:
    folder = ctx.work_dir / "seg_tiffs"
    folder.mkdir(exist_ok=True)
    side = {"folder": str(folder), "n": write_tiffs(prefix, folder)}
    return ctx.compare(Comparison(
        f"CTC SEG, {n} pairs 576×720 from TIFF", "pairs/s",
        Side("cellrobust seg_dataset", "benchmarks.suites.metrics:ours_seg", side),
        (Side("py-ctcmetrics", "benchmarks.suites.metrics:ctc_seg", side, "classic"),),
        check_values=True, rounds=3))
