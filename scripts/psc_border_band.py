#!/usr/bin/env python
"""Where a model's false-positive objects lie on annotated frames: distance to the frame edge.

The PhC-C2DL-PSC masks leave most cells within ~30 px of the frame edge unannotated. This script
measures it for a checkpoint (or baseline) on whole frames: for every predicted connected
component that overlaps no annotated pixel ("false-positive object") the distance of its
centroid to the nearest frame edge, and the pooled pixel Jaccard / precision / recall when a
band of B px along the edges is left out of the scoring (of both masks).

Example::

    .venv/bin/python scripts/psc_border_band.py runs/psc-augmented/best.pt \\
        --data ../shared/data/psc --split validation --threads 1
"""

from __future__ import annotations

import argparse

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("segmenter", help="checkpoint (.pt) or baseline name")
    p.add_argument("--data", required=True, help="annotated data set")
    p.add_argument("--split", default="validation")
    p.add_argument("--bands", default="0,16,24,32,48", help="band widths in px (comma list)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    return p.parse_args(argv)


def edge_distance(centroid: tuple[float, float], shape: tuple[int, int]) -> float:
    """Distance (px) of a point (y, x) to the nearest edge of a frame of ``shape``."""
    y, x = centroid
    h, w = shape
    return float(min(y, x, h - 1 - y, w - 1 - x))


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch
    from scipy import ndimage as ndi

    from cellrobust.data import open_dataset
    from cellrobust.segmenters import get_segmenter

    torch.set_num_threads(args.threads)
    seg = get_segmenter(args.segmenter)
    bands = [int(b) for b in args.bands.split(",")]
    counts = {b: np.zeros(3) for b in bands}
    fp_dist, all_dist = [], []
    for sample in open_dataset(args.data, split=args.split):
        pred = seg.segment(np.asarray(sample.image, np.float32)[None])[0] > 0
        true = np.asarray(sample.labels) > 0
        lab, n = ndi.label(pred, structure=np.ones((3, 3)))
        hit = set(np.unique(lab[true]).tolist())
        centroids = ndi.center_of_mass(pred, lab, range(1, n + 1))
        for i, c in enumerate(centroids, start=1):
            d = edge_distance(c, pred.shape)
            all_dist.append(d)
            if i not in hit:
                fp_dist.append(d)
        h, w = pred.shape
        for b in bands:
            inner = np.zeros_like(true)
            inner[b:h - b, b:w - b] = True
            counts[b] += [(pred & true & inner).sum(), (pred & ~true & inner).sum(),
                          (~pred & true & inner).sum()]
    fp_dist, all_dist = np.array(fp_dist), np.array(all_dist)
    print(f"predicted objects {all_dist.size}, false-positive objects {fp_dist.size} "
          f"({fp_dist.size / max(all_dist.size, 1):.1%})")
    print(f"within 30 px of the edge: {np.mean(fp_dist < 30):.1%} of the false-positive objects, "
          f"{np.mean(all_dist < 30):.1%} of all predicted objects")
    print("edge distance of false-positive objects, p50/p75/p90 (px):",
          np.percentile(fp_dist, [50, 75, 90]).round(1).tolist())
    print("| band left out (px) | Jaccard | precision | recall |")
    print("|---:|---:|---:|---:|")
    for b, (tp, fp, fn) in counts.items():
        print(f"| {b} | {tp / (tp + fp + fn):.3f} | {tp / (tp + fp):.3f} | {tp / (tp + fn):.3f} |")


if __name__ == "__main__":
    main()
