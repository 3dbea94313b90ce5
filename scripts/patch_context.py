#!/usr/bin/env python
"""How much reflected context a lone patch (or frame) needs: against the network's answer with
real context and against the annotations.

A 256² patch cut from a frame has real neighbours the network never sees when the patch is
given alone. This script cuts ``--crops`` seeded 256² crops per frame at least 64 px inside the
frame, scales each by its own statistics (the model's normalisation, as a lone patch is) and
predicts its foreground four ways (eager fp32): the bare patch (0 px: the network's zero "same"
padding, as it was trained on patches), reflect-padded by 16 and 48 px, and inside the
surrounding 384² window of the real frame scaled the same way (real context). It reports each
variant's pixel agreement with the real-context foreground and its pixel Jaccard against the
annotations; then, on the whole frames, the Jaccard of ``whole_halo`` 0 and 16 (the
``UNetSegmenter`` option).

Example::

    .venv/bin/python scripts/patch_context.py --data ../shared/data/psc --split validation \\
        --model psc-original --model psc-robust --model psc-robust-scale
"""

from __future__ import annotations

import argparse

import numpy as np

MARGIN = 64
SIZE = 256


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="annotated data set")
    p.add_argument("--split", default="validation")
    p.add_argument("--model", action="append", required=True, help="checkpoint or zoo name")
    p.add_argument("--crops", type=int, default=4, help="crops per frame (4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    return p.parse_args(argv)


def scaled_like(frame: np.ndarray, crop: np.ndarray, method: str) -> np.ndarray:
    """``frame`` scaled by the affine map that ``normalise(crop, method)`` applies to ``crop``."""
    from cellrobust.models.unet import EPS, normalisation_bounds

    if method == "none":
        return frame.astype(np.float32)
    lo, hi = (v.item() for v in normalisation_bounds(crop, method))
    return (frame.astype(np.float32) - lo) / (hi - lo + EPS)


def crop_variants(net, scaled: np.ndarray, y0: int, x0: int) -> dict[str, np.ndarray]:
    """Foreground probabilities of the crop at (y0, x0) with each kind of context."""
    import torch

    def prob(x):
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None, None]
            return torch.sigmoid(net(t))[0, 0].numpy()

    crop = scaled[y0:y0 + SIZE, x0:x0 + SIZE]
    out = {"0 px": prob(crop)}
    for pad in (16, 48):
        out[f"reflect {pad} px"] = prob(np.pad(crop, pad, mode="reflect"))[pad:-pad, pad:-pad]
    window = scaled[y0 - MARGIN:y0 + SIZE + MARGIN, x0 - MARGIN:x0 + SIZE + MARGIN]
    out["real context"] = prob(window)[MARGIN:-MARGIN, MARGIN:-MARGIN]
    return out


def jaccard(pred: np.ndarray, truth: np.ndarray) -> float:
    """Pixel Jaccard of two foreground masks (the project's metric)."""
    from cellrobust.metrics import pixel_counts, pixel_scores

    return float(pixel_scores(pixel_counts(truth, pred))["jaccard"])


def study_crops(net, frames, rng, crops: int) -> tuple[dict, dict]:
    agree: dict[str, list] = {}
    score: dict[str, list] = {}
    for frame in frames:
        h, w = frame.image.shape
        for _ in range(crops):
            y0 = int(rng.integers(MARGIN, h - SIZE - MARGIN + 1))
            x0 = int(rng.integers(MARGIN, w - SIZE - MARGIN + 1))
            scaled = scaled_like(frame.image, frame.image[y0:y0 + SIZE, x0:x0 + SIZE],
                                 net.config.normalisation)
            probs = crop_variants(net, scaled, y0, x0)
            truth = frame.labels[y0:y0 + SIZE, x0:x0 + SIZE] > 0
            real = probs["real context"] > 0.5
            for name, p in probs.items():
                score.setdefault(name, []).append(jaccard(p > 0.5, truth))
                if name != "real context":
                    agree.setdefault(name, []).append(float(np.mean((p > 0.5) == real)))
    return agree, score


def study_frames(model: str, frames) -> dict[int, float]:
    from cellrobust.segmenters import build_segmenter

    images = np.stack([f.image for f in frames])
    truth = np.stack([f.labels > 0 for f in frames])
    out = {}
    for context in (0, 16):
        seg = build_segmenter(f"{model},whole_halo={context},backend=eager,precision=fp32")
        out[context] = jaccard(seg.predict_proba(images) > 0.5, truth)
    return out


def main(argv=None) -> None:
    import torch

    from cellrobust.segmenters import build_segmenter
    from cellrobust.stages._data import open_frames

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    frames = open_frames(args.data, split=args.split)
    for model in args.model:
        net = build_segmenter(model).model.eval()
        agree, score = study_crops(net, frames, np.random.default_rng(args.seed), args.crops)
        n = len(score["0 px"])
        print(f"## {model}: {n} crops of {SIZE}² from {len(frames)} {args.split} frames")
        for name in score:
            line = f"- {name}: Jaccard vs annotations {np.mean(score[name]):.4f}"
            if name in agree:
                line += (f"; agreement with real context {100 * np.mean(agree[name]):.3f} % "
                         f"(min {100 * np.min(agree[name]):.2f} %)")
            print(line)
        diff = np.subtract(score["reflect 16 px"], score["0 px"])
        print(f"- reflect 16 px - 0 px, Jaccard: {diff.mean():+.4f} (sd {diff.std():.4f}; "
              f"16 px better on {int((diff > 0).sum())} of {n})")
        whole = study_frames(model, frames)
        print(f"- whole frames, pooled Jaccard: whole_halo=0 {whole[0]:.4f}, "
              f"whole_halo=16 {whole[16]:.4f}")


if __name__ == "__main__":
    main()
