"""Compare simulated frames with the real PhC-C2DL-PSC training frames (realism table).

Usage: python scripts/compare_simulator.py [PSC_TRAIN_DIR] [--frames N] [--png DIR]

Prints, for real and simulated frames, the statistics the realism test checks: intensity
histogram percentiles and the Wasserstein-1 distance between the pooled gray-level histograms,
foreground fraction, objects per frame (8-connected components of the binary mask, as the real
binary masks allow), object-area and elongation (major/minor axis from second moments)
percentiles, the phase-halo profile, and the simulator's speed on one core.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402
from skimage.measure import regionprops  # noqa: E402

from cellrobust.data.synthetic import simulate_frame  # noqa: E402

cv2.setNumThreads(1)


def frame_stats(image: np.ndarray, foreground: np.ndarray) -> dict:
    lab, n = ndi.label(foreground, structure=np.ones((3, 3)))
    props = regionprops(lab)
    areas = [p.area for p in props]
    elong = [p.axis_major_length / p.axis_minor_length for p in props if p.axis_minor_length > 0]
    rel = image / np.maximum(ndi.median_filter(image[::4, ::4].astype(np.float32), 9).repeat(
        4, 0).repeat(4, 1)[: image.shape[0], : image.shape[1]], 1)
    dist = ndi.distance_transform_edt(~foreground)
    gy = np.gradient(ndi.gaussian_filter(dist, 1))[0]
    ring = (dist > 1) & (dist <= 4)
    from skimage.filters import threshold_otsu

    flat = rel.astype(np.float32)
    predicted = flat > threshold_otsu(flat)
    recall = np.count_nonzero(predicted & foreground) / max(np.count_nonzero(foreground), 1)
    stray, n_stray = ndi.label(predicted & ~foreground & (ndi.distance_transform_edt(~foreground) > 5),
                               structure=np.ones((3, 3)))
    unlabelled = int((np.bincount(stray.ravel())[1:] >= 50).sum())
    inside = ndi.distance_transform_edt(foreground)
    rings = [image[(inside > d - 1) & (inside <= d)].mean() for d in (3, 2, 1)]
    rings += [image[(dist > d - 1) & (dist <= d)].mean() for d in (1, 2, 3)]
    return {"hist": np.bincount(image.ravel(), minlength=256), "fg": foreground.mean(), "n": n,
            "otsu_recall": recall, "unlabelled": unlabelled, "bg": image[dist > 6].mean(), "cell": image[foreground].mean(), "rings": rings,
            "areas": areas, "elong": elong, "above": rel[ring & (gy < -0.3)].mean(),
            "below": rel[ring & (gy > 0.3)].mean(), "sat_fg": (image[foreground] == 255).mean()}


def pooled(stats: list[dict]) -> dict:
    hist = sum(s["hist"] for s in stats)
    return {"hist": hist / hist.sum(), "fg": np.array([s["fg"] for s in stats]),
            "n": np.array([s["n"] for s in stats]), "areas": np.concatenate([s["areas"] for s in stats]),
            "elong": np.concatenate([s["elong"] for s in stats]),
            "above": np.mean([s["above"] for s in stats]), "below": np.mean([s["below"] for s in stats]),
            "sat_fg": np.mean([s["sat_fg"] for s in stats]),
            "bg": np.mean([s["bg"] for s in stats]), "cell": np.mean([s["cell"] for s in stats]),
            "rings": np.mean([s["rings"] for s in stats], axis=0),
            "otsu_recall": np.mean([s["otsu_recall"] for s in stats]),
            "unlabelled": np.mean([s["unlabelled"] for s in stats])}


def table(real: dict, sim: dict) -> str:
    def pct(h, qs):
        c = np.cumsum(h)
        return "/".join(str(int(np.searchsorted(c, q))) for q in qs)

    rows = [("gray p1/p5/p25/p50/p75/p95/p99", *(pct(d["hist"], [.01, .05, .25, .5, .75, .95, .99]) for d in (real, sim))),
            ("gray mean", *(f"{(d['hist'] * np.arange(256)).sum():.1f}" for d in (real, sim))),
            ("background mean (> 6 px from cells) / cell mean", *(f"{d['bg']:.1f} / {d['cell']:.1f}" for d in (real, sim))),
            ("edge profile: 3/2/1 px inside, 1/2/3 px outside", *("/".join(f"{v:.0f}" for v in d["rings"]) for d in (real, sim))),
            ("foreground fraction mean (min-max)", *(f"{d['fg'].mean():.3f} ({d['fg'].min():.3f}-{d['fg'].max():.3f})" for d in (real, sim))),
            ("objects/frame mean (min-max)", *(f"{d['n'].mean():.0f} ({d['n'].min()}-{d['n'].max()})" for d in (real, sim))),
            ("object area p5/p25/p50/p75/p95 px", *("/".join(f"{v:.0f}" for v in np.percentile(d["areas"], [5, 25, 50, 75, 95])) for d in (real, sim))),
            ("elongation p5/p25/p50/p75/p95", *("/".join(f"{v:.2f}" for v in np.percentile(d["elong"], [5, 25, 50, 75, 95])) for d in (real, sim))),
            ("halo: rel. intensity 1-4 px above/below", *(f"{d['above']:.3f}/{d['below']:.3f}" for d in (real, sim))),
            ("Otsu (background-flattened) pixel recall of labelled cells", *(f"{d['otsu_recall']:.3f}" for d in (real, sim))),
            ("bright unlabelled objects >= 50 px, > 5 px from labels, per frame", *(f"{d['unlabelled']:.1f}" for d in (real, sim))),
            ("saturated (255) share of fg pixels", *(f"{d['sat_fg']:.3f}" for d in (real, sim)))]
    w1 = np.abs(np.cumsum(real["hist"]) - np.cumsum(sim["hist"])).sum()
    l1 = np.abs(real["hist"] - sim["hist"]).sum()
    out = ["| statistic | real PSC train | simulated |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    out.append(f"| histogram distance W1 (gray levels) / L1 | 0 / 0 | {w1:.2f} / {l1:.3f} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("psc_train", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/psc/train"))
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--png", default=None)
    args = parser.parse_args()
    root = Path(args.psc_train)
    real = []
    for path in sorted((root / "input").glob("t*.tif"))[:: max(1, 101 // args.frames)]:
        mask = tifffile.imread(root / "output" / f"man_seg{path.stem[1:]}.tif").copy()
        mask[0, 0] = mask[0, 1]
        real.append(frame_stats(tifffile.imread(path), mask > 0))
    t0 = time.perf_counter()
    samples = [simulate_frame(rng=i) for i in range(args.frames)]
    speed = args.frames / (time.perf_counter() - t0)
    sim = [frame_stats(s.image, s.labels > 0) for s in samples]
    print(table(pooled(real), pooled(sim)))
    print(f"\nsimulator speed: {speed:.1f} frames/s (one thread; noisy shared machine)")
    if args.png:
        out = Path(args.png)
        out.mkdir(parents=True, exist_ok=True)
        for i, s in enumerate(samples[:3]):
            cv2.imwrite(str(out / f"sim{i}.png"), s.image)
            cv2.imwrite(str(out / f"sim{i}_mask.png"), ((s.labels > 0) * 255).astype(np.uint8))


if __name__ == "__main__":
    main()
