#!/usr/bin/env python
"""Calibrate the artefact ladders: Jaccard vs severity of a segmenter on PSC validation patches.

For every artefact (or those named), corrupt N random 256x256 validation patches at each value
of the artefact's curve grid (process-stable streams ``stream(seed, patch, artefact, value)``),
segment them, and pool the pixel counts into one Jaccard (micro average). Then propose a
ladder whose levels 1..5 hit the Jaccard fractions ``1 - target*k/5`` of the clean score
(level 5 = ``(1 - target)`` x clean, i.e. "level 5 roughly halves the Jaccard" for
``--target 0.5``), by linear interpolation on the measured curve (first crossing).

Writes ``--out`` (JSON: curves and proposals) and prints a markdown table for docs/artefacts.md.

Example (niced, 2 threads)::

    nice -n 10 .venv/bin/python scripts/calibrate_ladders.py \\
        --segmenter /work/runs/psc-original/best.pt \\
        --data ../shared/data/psc/validation --patches 2 --out /tmp/calibration.json
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--segmenter", required=True,
                   help="checkpoint path (.pt) or baseline name (dog_otsu, nlm_otsu, otsu)")
    p.add_argument("--data", required=True, help="PSC validation folder (DeepImageJ layout)")
    p.add_argument("--patches", type=int, default=2, help="random 256x256 patches per frame")
    p.add_argument("--frames", type=int, default=None, help="use only the first N frames")
    p.add_argument("--artefact", action="append", help="only these artefacts (repeatable)")
    p.add_argument("--max-values", type=int, default=8,
                   help="values per artefact, the identity included (default 8)")
    p.add_argument("--spacing", choices=("log", "grid"), default="log",
                   help="log-spaced values over the grid's range (default) or grid values")
    p.add_argument("--target", type=float, default=0.5,
                   help="fraction of the clean Jaccard lost at level 5 (default 0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--out", required=True, help="JSON output")
    return p.parse_args(argv)


def load_patches(data: str, n_per_frame: int, frames: int | None, seed: int):
    """Random 256x256 patches (image + labels) of the validation frames."""
    from cellrobust.data import open_dataset, random_patches

    dataset = open_dataset(data)
    count = len(dataset) if frames is None else min(frames, len(dataset))
    patches = []
    for i in range(count):
        frame = dataset[i]
        rng = np.random.default_rng([seed, i])
        patches.extend(random_patches(frame, n_per_frame, 256, rng=rng))
    return patches


class CheckpointFallback:
    """Minimal U-Net segmenter (used only when ``cellrobust.models.inference`` is missing):
    the checkpoint's own input normalisation, the net, sigmoid > 0.5, batches of 4."""

    def __init__(self, path: str) -> None:
        from cellrobust.models.checkpoint import load_checkpoint

        self.model, self.config, _ = load_checkpoint(path)
        self.name = str(path)

    def segment(self, images: np.ndarray) -> np.ndarray:
        import torch

        from cellrobust.models.unet import normalise

        out = []
        with torch.inference_mode():
            for i in range(0, len(images), 4):
                x = torch.from_numpy(normalise(images[i:i + 4], self.config.normalisation))
                out.append((self.model.predict(x[:, None]) > 0.5)[:, 0].numpy())
        return np.concatenate(out).astype(np.int32)


def load_segmenter(spec: str):
    """``get_segmenter(spec)``; a checkpoint falls back to :class:`CheckpointFallback`."""
    from cellrobust.segmenters import get_segmenter

    try:
        return get_segmenter(spec)
    except ModuleNotFoundError as exc:
        if "inference" not in str(exc):
            raise
        return CheckpointFallback(spec)


def jaccard(segmenter, images: np.ndarray, labels: np.ndarray) -> float:
    """Pooled (micro) pixel Jaccard of ``segmenter`` on (N, H, W) images."""
    from cellrobust.metrics.pixel import pixel_counts

    pred = segmenter.segment(images)
    counts = [pixel_counts(t, p) for t, p in zip(labels, pred)]
    tp = sum(c["tp"] for c in counts)
    union = sum(c["tp"] + c["fp"] + c["fn"] for c in counts)
    return tp / union if union else 1.0


def log_values(art, k: int) -> list[float]:
    """The identity, then ``k - 1`` log-spaced values from the first to the last grid value
    (3 significant digits): dense where weak artefacts already hurt, sparse at the far end."""
    lo, hi = art.grid[1], art.grid[-1]
    values = [_sig(float(v), 3) for v in np.geomspace(lo, hi, k - 1)]
    return [art.identity] + sorted(set(values), reverse=bool(hi < lo))


def subsample(grid, k: int) -> list[float]:
    grid = list(grid)
    if len(grid) <= k:
        return grid
    idx = np.unique(np.round(np.linspace(0, len(grid) - 1, k)).astype(int))
    return [grid[i] for i in idx]


_CLEAN: dict[tuple[int, str], float] = {}  # (segmenter, normalisation) -> clean Jaccard


def curve(segmenter, patches, name: str, values, seed: int) -> list[dict]:
    """Jaccard at every value (the identity first; the clean score is computed once per
    output normalisation)."""
    from cellrobust import artefacts

    rows = []
    key = (id(segmenter), artefacts.get(name).default_normalise)  # level 0 is normalised too
    for value in values:
        if value == artefacts.get(name).identity and key in _CLEAN:
            rows.append({"value": float(value), "jaccard": _CLEAN[key], "seconds": 0})
            continue
        imgs, labs = [], []
        for p in patches:
            out, _ = artefacts.apply(p, name, value,
                                     rng=artefacts.stream(seed, p.name, name, value))
            imgs.append(out.image)
            labs.append(out.labels)
        start = time.perf_counter()
        score = jaccard(segmenter, np.stack(imgs), np.stack(labs))
        if value == artefacts.get(name).identity:
            _CLEAN[key] = score
        rows.append({"value": float(value), "jaccard": score,
                     "seconds": round(time.perf_counter() - start, 2)})
        print(f"  {name:<15} {value:>10g}  J = {score:.4f}", flush=True)
    return rows


def _sig(x: float, digits: int = 2) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return float(round(x, digits - 1 - int(math.floor(math.log10(abs(x))))))


def propose(rows: list[dict], identity: float, target: float) -> tuple[list[float], bool]:
    """Ladder whose level k reaches Jaccard ``J0 * (1 - target * k / 5)`` (first crossing).

    Returns (ladder, reached): ``reached`` is False when the grid never degrades the Jaccard to
    the level-5 goal; then the levels not reached are spread evenly over the rest of the grid
    (by grid index), ending at the grid's last value.
    """
    j0 = rows[0]["jaccard"]
    values = [r["value"] for r in rows]
    scores = [r["jaccard"] for r in rows]
    ladder, last = [identity], 0
    for k in range(1, 6):
        goal = j0 * (1 - target * k / 5)
        hit = next((i for i in range(1, len(rows)) if scores[i] <= goal), None)
        if hit is None:
            break
        ladder.append(_sig(_crossing(values[hit - 1], values[hit], scores[hit - 1],
                                     scores[hit], goal)))
        last = hit
    reached = len(ladder) == 6
    missing = 6 - len(ladder)
    if missing:
        idx = np.round(np.linspace(last, len(values) - 1, missing + 1)[1:]).astype(int)
        idx = np.clip(idx, last + 1, len(values) - 1)
        ladder.extend(values[i] for i in idx)
    rising = values[-1] > values[1]
    for i in range(2, 6):  # keep the ladder strictly monotone (past the grid end if need be)
        if (ladder[i] <= ladder[i - 1]) if rising else (ladder[i] >= ladder[i - 1]):
            ladder[i] = _sig(ladder[i - 1] * (1.1 if rising else 0.9), 3)
    return ladder, reached


def _crossing(v0: float, v1: float, s0: float, s1: float, goal: float) -> float:
    """Value where the segment (v0, s0)-(v1, s1) reaches ``goal`` (log scale for wide steps)."""
    if math.isinf(v0):  # poisson identity = inf photons: interpolate in log from v1 * 10
        v0 = v1 * 10
    frac = 0.0 if s0 == s1 else (s0 - goal) / (s0 - s1)
    if v0 > 0 and v1 > 0 and max(v0, v1) / min(v0, v1) > 3:
        return math.exp(math.log(v0) + frac * (math.log(v1) - math.log(v0)))
    return v0 + frac * (v1 - v0)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from cellrobust import artefacts
    segmenter = load_segmenter(args.segmenter)
    patches = load_patches(args.data, args.patches, args.frames, args.seed)
    print(f"{len(patches)} patches, segmenter {args.segmenter}", flush=True)
    names = args.artefact or artefacts.names()
    result = {"segmenter": str(args.segmenter), "data": args.data, "patches": len(patches),
              "target": args.target, "seed": args.seed, "artefacts": {}}
    for name in names:
        art = artefacts.get(name)
        values = (log_values(art, args.max_values) if args.spacing == "log"
                  else subsample(art.grid, args.max_values))
        rows = curve(segmenter, patches, name, values, args.seed)
        ladder, reached = propose(rows, art.identity, args.target)
        result["artefacts"][name] = {"unit": art.unit, "curve": rows, "current": list(art.ladder),
                                     "proposed": ladder, "reached": reached}
        from cellrobust._io import write_json

        write_json(args.out, result)  # after every artefact: partial results survive
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    lines = ["| artefact | unit | clean J | J at level 5 (current ladder) | proposed ladder "
             "(levels 1-5) | goal reached |", "|---|---|---|---|---|---|"]
    for name, info in result["artefacts"].items():
        curve_ = info["curve"]
        j0 = curve_[0]["jaccard"]
        j5 = _interp(curve_, info["current"][5])
        prop = ", ".join(f"{v:g}" for v in info["proposed"][1:])
        lines.append(f"| {name} | {info['unit']} | {j0:.3f} | {j5:.3f} | {prop} | "
                     f"{'yes' if info['reached'] else 'no (grid end)'} |")
    return "\n".join(lines)


def _interp(rows: list[dict], value: float) -> float:
    xs = np.array([r["value"] for r in rows], dtype=float)
    ys = np.array([r["jaccard"] for r in rows], dtype=float)
    finite = np.isfinite(xs)
    xs, ys = xs[finite], ys[finite]
    order = np.argsort(xs)
    return float(np.interp(value, xs[order], ys[order]))


if __name__ == "__main__":
    sys.exit(main())
