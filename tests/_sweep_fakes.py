"""Tiny deterministic segmenters and data for sweep tests (importable in subprocesses)."""

from __future__ import annotations

import os
import time

import numpy as np
from scipy import ndimage as ndi

from cellrobust.data import Sample


class ThresholdSegmenter:
    """Foreground = image above its mean; optional sleep per call (``SWEEP_FAKE_SLEEP`` s)."""

    def __init__(self, name: str = "thresh", offset: float = 0.0) -> None:
        self.name = name
        self.offset = offset

    def predict_proba(self, images):
        images = np.asarray(images, dtype=np.float32)
        mean = images.mean(axis=(1, 2), keepdims=True)
        return (images > mean + self.offset).astype(np.float32)

    def segment(self, images):
        delay = float(os.environ.get("SWEEP_FAKE_SLEEP", "0"))
        if delay:
            time.sleep(delay)
        probs = self.predict_proba(images)
        return np.stack([ndi.label(p > 0.5)[0] for p in probs]).astype(np.int32)


def thresh():
    return ThresholdSegmenter("thresh")


def strict():
    return ThresholdSegmenter("strict", offset=20.0)


def logged():
    """``thresh``, appending this process's pid to ``$SWEEP_FAKE_BUILD_LOG`` when built."""
    log = os.environ.get("SWEEP_FAKE_BUILD_LOG")
    if log:
        with open(log, "a", encoding="ascii") as fh:
            fh.write(f"{os.getpid()}\n")
    return ThresholdSegmenter("thresh")


def discs(n: int = 4, size: int = 48, seed: int = 0) -> list[Sample]:
    """Bright discs on a dark noisy background, with instance labels."""
    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        labels = np.zeros((size, size), np.int32)
        for k in range(1, 5):
            cy, cx = rng.integers(8, size - 8, 2)
            labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = k
        image = (40 + 120 * (labels > 0) + rng.normal(0, 5, labels.shape)).clip(0, 255)
        out.append(Sample(image.astype(np.uint8), labels, f"disc{i}"))
    return out
