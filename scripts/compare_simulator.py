"""Compare simulated frames with the real PhC-C2DL-PSC training frames (the realism table).

Usage::

    python scripts/compare_simulator.py [PSC_TRAIN_DIR] [--frames N] [--png DIR]

Prints a markdown table, real vs simulated: gray-level percentiles and histogram distances
(Wasserstein-1 in gray levels, L1 of the normalised histograms), background and cell means, the
intensity profile across cell edges, foreground fraction, objects per frame (8-connected
components of the binary mask, as the real binary masks allow), object-area and elongation
(major/minor axis from second moments) percentiles, the phase-halo shading above/below cells,
what Otsu on the background-flattened image recovers, bright unlabelled objects, saturation,
and the simulator's speed on one thread. ``docs/simulator.md`` holds a copy of the table.

``--domain-gap`` adds a cheap proxy of the sim-to-real question (~1 min): a small per-pixel MLP on
multiscale features (of the image scaled by its maximum, as the U-Net is fed) is trained once on
real training frames and once on simulated frames, and both are scored (pixel IoU) on the real
validation frames. ``--unet-steps N`` (~6 min per 400 steps on one loaded core) does the same
with a small DeepImageJ-style U-Net (width 8, depth 3) trained for N Adam steps on batches of 8
random 128 x 128 crops with dihedral augmentation, images scaled by their maximum.
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
from skimage.filters import threshold_otsu  # noqa: E402
from skimage.measure import regionprops  # noqa: E402

from cellrobust.data.synthetic import simulate_frame  # noqa: E402

cv2.setNumThreads(1)
EIGHT = np.ones((3, 3))


def relative_to_background(image: np.ndarray) -> np.ndarray:
    """Image divided by a coarse median background (9 x 9 median of a 4x subsampling)."""
    coarse = ndi.median_filter(image[::4, ::4].astype(np.float32), 9)
    local = np.repeat(np.repeat(coarse, 4, 0), 4, 1)[: image.shape[0], : image.shape[1]]
    return image / np.maximum(local, 1.0)


def otsu_stats(rel: np.ndarray, foreground: np.ndarray, dist: np.ndarray) -> tuple[float, int]:
    """Recall of labelled pixels by Otsu, and bright unlabelled objects >= 50 px far from cells."""
    predicted = rel > threshold_otsu(rel)
    recall = np.count_nonzero(predicted & foreground) / max(np.count_nonzero(foreground), 1)
    stray, _ = ndi.label(predicted & ~foreground & (dist > 5), structure=EIGHT)
    return recall, int((np.bincount(stray.ravel())[1:] >= 50).sum())


def frame_stats(image: np.ndarray, foreground: np.ndarray) -> dict:
    """Statistics of one frame (image uint8, foreground bool)."""
    lab, n = ndi.label(foreground, structure=EIGHT)
    props = regionprops(lab)
    rel = relative_to_background(image).astype(np.float32)
    dist = ndi.distance_transform_edt(~foreground)
    inside = ndi.distance_transform_edt(foreground)
    gy = np.gradient(ndi.gaussian_filter(dist, 1))[0]
    ring = (dist > 1) & (dist <= 4)
    recall, unlabelled = otsu_stats(rel, foreground, dist)
    edge = [image[(inside > d - 1) & (inside <= d)].mean() for d in (3, 2, 1)]
    edge += [image[(dist > d - 1) & (dist <= d)].mean() for d in (1, 2, 3)]
    return {
        "hist": np.bincount(image.ravel(), minlength=256), "fg": foreground.mean(), "n": n,
        "areas": [p.area for p in props],
        "elong": [p.axis_major_length / p.axis_minor_length for p in props
                  if p.axis_minor_length > 0],
        "bg": image[dist > 6].mean(), "cell": image[foreground].mean(), "edge": edge,
        "above": rel[ring & (gy < -0.3)].mean(), "below": rel[ring & (gy > 0.3)].mean(),
        "sat_fg": (image[foreground] == 255).mean(), "otsu_recall": recall,
        "unlabelled": unlabelled,
    }


def pooled(stats: list[dict]) -> dict:
    """Pool per-frame statistics: histograms summed, lists concatenated, scalars averaged."""
    hist = sum(s["hist"] for s in stats)
    out = {"hist": hist / hist.sum(), "fg": np.array([s["fg"] for s in stats]),
           "n": np.array([s["n"] for s in stats]), "edge": np.mean([s["edge"] for s in stats], 0)}
    for key in ("areas", "elong"):
        out[key] = np.concatenate([s[key] for s in stats])
    for key in ("above", "below", "sat_fg", "bg", "cell", "otsu_recall", "unlabelled"):
        out[key] = float(np.mean([s[key] for s in stats]))
    return out


def _pct(values: np.ndarray, fmt: str) -> str:
    return "/".join(format(v, fmt) for v in np.percentile(values, [5, 25, 50, 75, 95]))


def _gray_pct(hist: np.ndarray) -> str:
    cdf = np.cumsum(hist)
    return "/".join(str(int(np.searchsorted(cdf, q))) for q in (.01, .05, .25, .5, .75, .95, .99))


ROWS = (
    ("gray-level p1/p5/p25/p50/p75/p95/p99", lambda d: _gray_pct(d["hist"])),
    ("gray-level mean", lambda d: f"{(d['hist'] * np.arange(256)).sum():.1f}"),
    ("background mean (> 6 px from cells) / cell mean",
     lambda d: f"{d['bg']:.1f} / {d['cell']:.1f}"),
    ("edge profile: 3/2/1 px inside, 1/2/3 px outside",
     lambda d: "/".join(f"{v:.0f}" for v in d["edge"])),
    ("foreground fraction mean (min-max)",
     lambda d: f"{d['fg'].mean():.3f} ({d['fg'].min():.3f}-{d['fg'].max():.3f})"),
    ("objects per frame (8-connected), mean (min-max)",
     lambda d: f"{d['n'].mean():.0f} ({d['n'].min()}-{d['n'].max()})"),
    ("object area p5/p25/p50/p75/p95 (px)", lambda d: _pct(d["areas"], ".0f")),
    ("elongation p5/p25/p50/p75/p95", lambda d: _pct(d["elong"], ".2f")),
    ("phase halo: intensity 1-4 px above / below cells",
     lambda d: f"{d['above']:.3f} / {d['below']:.3f}"),
    ("saturated (255) share of cell pixels", lambda d: f"{d['sat_fg']:.3f}"),
    ("Otsu (background-flattened): recall of cell pixels", lambda d: f"{d['otsu_recall']:.3f}"),
    ("bright unlabelled objects >= 50 px, > 5 px from labels, per frame",
     lambda d: f"{d['unlabelled']:.1f}"),
)


def table(real: dict, sim: dict) -> str:
    """Markdown table, real vs simulated, with the histogram distances as the last row."""
    w1 = np.abs(np.cumsum(real["hist"]) - np.cumsum(sim["hist"])).sum()
    l1 = np.abs(real["hist"] - sim["hist"]).sum()
    lines = ["| statistic | real PSC train | simulated |", "|---|---|---|"]
    lines += [f"| {name} | {cell(real)} | {cell(sim)} |" for name, cell in ROWS]
    lines.append(f"| histogram distance: W1 (gray levels) / L1 | 0 / 0 | {w1:.2f} / {l1:.3f} |")
    return "\n".join(lines)


def real_frames(root: Path, n: int) -> list[dict]:
    """Statistics of about ``n`` evenly spaced real frames (the 0 marker at (0, 0) removed)."""
    paths = sorted((root / "input").glob("t*.tif"))
    stats = []
    for path in paths[:: max(1, len(paths) // n)]:
        mask = tifffile.imread(root / "output" / f"man_seg{path.stem[1:]}.tif").copy()
        mask[0, 0] = mask[0, 1]
        stats.append(frame_stats(tifffile.imread(path), mask > 0))
    return stats


def pixel_features(image: np.ndarray) -> np.ndarray:
    """(H*W, 15) float32: image / max, gaussian, gradient magnitude and d/dy at 4 scales, 2 DoGs."""
    x = image.astype(np.float32) / max(float(image.max()), 1.0)
    features = [x]
    for sigma in (1, 2, 4, 8):
        smooth = cv2.GaussianBlur(x, (0, 0), sigma)
        gy, gx = np.gradient(smooth)
        features += [smooth, np.hypot(gx, gy), gy]
    features.append(cv2.GaussianBlur(x, (0, 0), 1) - cv2.GaussianBlur(x, (0, 0), 4))
    features.append(x - cv2.GaussianBlur(x, (0, 0), 16))
    return np.stack(features, -1).reshape(-1, len(features))


def fit_pixel_classifier(samples, rng: np.random.Generator, *, per_frame: int = 3000):
    """Train a 15-32-1 MLP (400 Adam steps) on pixels sampled from ``samples``; return predict."""
    import torch

    torch.manual_seed(0)
    xs, ys = [], []
    for sample in samples:
        pick = rng.choice(sample.labels.size, per_frame, replace=False)
        xs.append(pixel_features(sample.image)[pick])
        ys.append((sample.labels.reshape(-1) > 0)[pick])
    x, y = torch.tensor(np.concatenate(xs)), torch.tensor(np.concatenate(ys), dtype=torch.float32)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 1))
    optimiser = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(400):
        batch = torch.randint(len(y), (4096,))
        logits = net((x[batch] - mu) / sd)[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    def predict(image: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = net((torch.tensor(pixel_features(image)) - mu) / sd)[:, 0]
        return logits.numpy().reshape(image.shape) > 0

    return predict


def pixel_iou(predict, samples) -> float:
    inter = union = 0
    for sample in samples:
        pred, true = predict(sample.image), sample.labels > 0
        inter, union = inter + np.count_nonzero(pred & true), union + np.count_nonzero(pred | true)
    return inter / max(union, 1)


def domain_gap(psc_root: Path) -> str:
    """Pixel-IoU table: classifier trained on real or simulated frames, scored on both."""
    from cellrobust.data import load_default_dataset, open_dataset

    rng = np.random.default_rng(0)
    real_train = open_dataset(psc_root / "train")
    real_val = list(open_dataset(psc_root / "validation"))
    sim_val = list(load_default_dataset("validation"))
    trained = {"real PSC train (21 frames)": [real_train[i] for i in range(0, len(real_train), 5)],
               "simulated (21 frames)": list(load_default_dataset("train", n_frames=21))}
    lines = ["| pixel MLP trained on | IoU on real PSC validation | IoU on simulated validation |",
             "|---|---|---|"]
    for name, samples in trained.items():
        predict = fit_pixel_classifier(samples, rng)
        lines.append(f"| {name} | {pixel_iou(predict, real_val):.3f} | "
                     f"{pixel_iou(predict, sim_val):.3f} |")
    return "\n".join(lines)


def train_small_unet(samples, steps: int, rng: np.random.Generator):
    """Train a width-8, depth-3 U-Net on random 128 x 128 crops; return predict(image)."""
    import torch

    from cellrobust.models.unet import UNetConfig, build_unet

    torch.manual_seed(0)
    images = [s.image.astype(np.float32) for s in samples]
    masks = [(s.labels > 0).astype(np.float32) for s in samples]
    net = build_unet(UNetConfig(width=8, depth=3))
    optimiser = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(steps):
        xs, ys = [], []
        for _ in range(8):
            k = rng.integers(len(images))
            y0 = rng.integers(0, images[k].shape[0] - 128)
            x0 = rng.integers(0, images[k].shape[1] - 128)
            crop, mask = images[k][y0:y0 + 128, x0:x0 + 128], masks[k][y0:y0 + 128, x0:x0 + 128]
            turns, flip = rng.integers(4), rng.random() < 0.5
            crop, mask = np.rot90(crop, turns), np.rot90(mask, turns)
            crop, mask = (crop[:, ::-1], mask[:, ::-1]) if flip else (crop, mask)
            xs.append(crop / max(float(crop.max()), 1.0))
            ys.append(mask)
        x = torch.tensor(np.stack(xs)[:, None].copy())
        y = torch.tensor(np.stack(ys)[:, None].copy())
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()

    def predict(image: np.ndarray) -> np.ndarray:
        x = image.astype(np.float32) / max(float(image.max()), 1.0)
        with torch.no_grad():
            return (torch.sigmoid(net(torch.tensor(x[None, None])))[0, 0] > 0.5).numpy()

    return predict


def unet_gap(psc_root: Path, steps: int) -> str:
    """Pixel-IoU table: small U-Net trained on real or simulated frames, scored on both."""
    import torch

    from cellrobust.data import load_default_dataset, open_dataset

    torch.set_num_threads(1)
    real_train = open_dataset(psc_root / "train")
    real_val = list(open_dataset(psc_root / "validation"))
    sim_val = list(load_default_dataset("validation"))
    trained = {"real PSC train (26 frames)": [real_train[i] for i in range(0, len(real_train), 4)],
               "simulated (24 frames)": list(load_default_dataset("train"))}
    lines = [f"| U-Net ({steps} steps) trained on | IoU on real PSC validation | "
             "IoU on simulated validation |", "|---|---|---|"]
    for name, samples in trained.items():
        predict = train_small_unet(samples, steps, np.random.default_rng(0))
        lines.append(f"| {name} | {pixel_iou(predict, real_val):.3f} | "
                     f"{pixel_iou(predict, sim_val):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "psc" / "train"
    parser.add_argument("psc_train", nargs="?", default=str(default))
    parser.add_argument("--frames", type=int, default=20, help="frames of each kind")
    parser.add_argument("--png", default=None, help="folder for 3 simulated frames + masks")
    parser.add_argument("--domain-gap", action="store_true", help="add the pixel-classifier proxy")
    parser.add_argument("--unet-steps", type=int, default=0, help="add the small U-Net check")
    args = parser.parse_args()
    real = real_frames(Path(args.psc_train), args.frames)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    samples = [simulate_frame(rng=i) for i in range(args.frames)]
    wall = args.frames / (time.perf_counter() - start_wall)
    cpu = args.frames / (time.process_time() - start_cpu)
    sim = [frame_stats(s.image, s.labels > 0) for s in samples]
    print(table(pooled(real), pooled(sim)))
    print(f"\nsimulator speed, one thread: {cpu:.1f} frames/s of CPU time, {wall:.1f} wall "
          "(noisy on a shared machine)")
    if args.domain_gap:
        print("\n" + domain_gap(Path(args.psc_train).parent))
    if args.unet_steps > 0:
        print("\n" + unet_gap(Path(args.psc_train).parent, args.unet_steps))
    if args.png:
        out = Path(args.png)
        out.mkdir(parents=True, exist_ok=True)
        for i, sample in enumerate(samples[:3]):
            cv2.imwrite(str(out / f"sim{i}.png"), sample.image)
            cv2.imwrite(str(out / f"sim{i}_mask.png"), ((sample.labels > 0) * 255).astype(np.uint8))


if __name__ == "__main__":
    main()
