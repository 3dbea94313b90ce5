"""A synthetic tidy results table with known structure, for robustness/report tests."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

THRESHOLDS = ("0.50", "0.70", "0.90")
SEGMENTERS = {"original": 0.9, "artefact": 0.3, "dog_otsu": 0.6}  # degradation per level


def synthetic_table(*, n_images: int = 8, levels: int = 5, seed: int = 0,
                    artefacts=("gaussian", "illumination"), noise: float = 0.02) -> pd.DataFrame:
    """Rows whose pixel Jaccard falls linearly with severity at a segmenter-specific rate.

    Each image has 1000 true foreground pixels of 10000; at level s a segmenter with rate r
    finds ``tp = 1000 * (1 - r * s / levels) + noise`` and no false positives, so the clean
    Jaccard is ~1 and the artefact model degrades least.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for art in artefacts:
        for s in range(levels + 1):
            for seg, rate in SEGMENTERS.items():
                for i in range(n_images):
                    frac = max(0.0, 1 - rate * s / levels + (rng.normal(0, noise) if noise else 0))
                    frac = min(frac, 1.0)
                    tp = int(round(1000 * frac))
                    row = dict(segmenter=seg, artefact=art, severity_index=s,
                               severity=float(s * 10), unit="gray levels", sample=f"img{i}",
                               params=json.dumps({"sigma": s * 10}), tp_px=tp, fp_px=0,
                               fn_px=1000 - tp, tn_px=9000, n_true=10,
                               n_pred=int(round(10 * frac)), count_true=10,
                               count_pred=int(round(10 * frac)), runtime_s=0.01)
                    for tau in THRESHOLDS:
                        k = int(round(10 * frac * (1.5 - float(tau))))
                        k = min(k, 10)
                        row[f"tp@{tau}"] = k
                        row[f"fp@{tau}"] = row["n_pred"] - min(k, row["n_pred"])
                        row[f"fn@{tau}"] = 10 - k
                        row[f"sum_iou@{tau}"] = 0.8 * k
                    rows.append(row)
    return pd.DataFrame(rows)


def linear_noise_table() -> pd.DataFrame:
    """Gaussian-noise rows whose Jaccard is ``1 - rate * sigma / 100`` exactly on every crop:
    segmenters ``fragile`` (rate 0.8) and ``robust`` (0.2), sigma 0/25/50/100, 2 frames x 2
    crops (``f0/p0`` ... ``f1/p1``), 1000 true foreground pixels per crop."""
    rows = []
    for seg, rate in {"fragile": 0.8, "robust": 0.2}.items():
        for sigma in (0.0, 25.0, 50.0, 100.0):
            for s in ("f0/p0", "f0/p1", "f1/p0", "f1/p1"):
                tp = int(round(1000 * (1 - rate * sigma / 100)))
                rows.append(dict(segmenter=seg, artefact="gaussian_noise", severity=sigma,
                                 severity_index=int(sigma // 25), unit="gray levels", sample=s,
                                 tp_px=tp, fp_px=0, fn_px=1000 - tp, tn_px=9000))
    return pd.DataFrame(rows)
