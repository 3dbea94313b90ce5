"""Are the cells brighter or darker than the background? Decided from data, with the evidence.

Classical baselines threshold one side of the intensity range (``ClassicalConfig.polarity``);
phase-contrast PSC cells are bright, many bright-field and some phase-contrast cells are dark,
fluorescence nuclei are bright. :func:`detect_polarity` decides:

* **from masks** when the samples have labels: per frame, the mean gray level inside the cells
  minus the mean of the background, divided by the background's standard deviation (a contrast in
  background noise units); the sign of the median over frames decides;
* **from image statistics** otherwise: the quantile skewness ``(p95 + p5 - 2 p50) / (p95 - p5)``
  of the pixel values (pooled over frames). Cells cover the minority of a frame, so bright cells
  lengthen the upper tail (skew > 0) and dark cells the lower one (skew < 0).

The evidence dict says which method decided, the measured numbers, and ``confident`` (False when
the decisive number is within :data:`AMBIGUOUS` of zero; the answer is then "bright").
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

import numpy as np

from cellrobust._validation import InputError, check_range
from cellrobust.data.sample import Sample

AMBIGUOUS = {"masks": 0.1, "image statistics": 0.05}
"""Decisive values closer to zero than this are reported ``confident=False``."""
DEFAULT_MAX_FRAMES = 16


def detect_polarity(
    samples: Iterable[Sample], *, max_frames: int | None = DEFAULT_MAX_FRAMES
) -> tuple[str, dict]:
    """``("bright" | "dark", evidence)`` for a set of frames (see the module docstring).

    Parameters
    ----------
    samples : iterable of Sample
        Frames (a Dataset, a list of samples or patches); labels are used when every frame read
        has them.
    max_frames : int or None
        Read at most this many frames (the first ones); None reads all.

    Returns
    -------
    polarity : {"bright", "dark"}
    evidence : dict
        JSON-ready: ``method`` ("masks" | "image statistics"), ``n_frames``, the measured values
        (``contrast`` per-frame median and ``inside_mean``/``background_mean`` pooled; or
        ``quantile_skew`` and ``p5``/``p50``/``p95``), ``confident``.

    Raises
    ------
    InputError
        When no frame is given.
    """
    if max_frames is not None:
        check_range("max_frames", max_frames, low=1)
    frames = list(islice(iter(samples), max_frames))
    if not frames:
        raise InputError("samples: expected at least one frame to decide polarity, got none")
    labelled = [s for s in frames if s.labels is not None and np.any(s.labels > 0)
                and np.any(s.labels == 0)]
    if len(labelled) == len(frames):
        evidence = _from_masks(labelled)
        value = evidence["contrast"]
    else:
        evidence = _from_images(frames)
        value = evidence["quantile_skew"]
    evidence["confident"] = bool(abs(value) >= AMBIGUOUS[evidence["method"]])
    return ("dark" if value < 0 and evidence["confident"] else "bright"), evidence


def _from_masks(frames: list[Sample]) -> dict:
    contrasts, inside, background = [], [], []
    for sample in frames:
        image = np.asarray(sample.image, np.float64)
        cells = sample.labels > 0
        inside.append(image[cells].mean())
        background.append(image[~cells].mean())
        spread = image[~cells].std()
        contrasts.append((inside[-1] - background[-1]) / spread if spread > 0 else
                         np.sign(inside[-1] - background[-1]))
    return {"method": "masks", "n_frames": len(frames),
            "contrast": float(np.median(contrasts)),
            "inside_mean": float(np.mean(inside)), "background_mean": float(np.mean(background)),
            "frames_bright": int(np.sum(np.asarray(contrasts) > 0))}


def _from_images(frames: list[Sample]) -> dict:
    pixels = np.concatenate([np.asarray(s.image, np.float64).ravel() for s in frames])
    p5, p50, p95 = np.percentile(pixels, (5, 50, 95))
    skew = (p95 + p5 - 2 * p50) / (p95 - p5) if p95 > p5 else 0.0
    return {"method": "image statistics", "n_frames": len(frames),
            "quantile_skew": float(skew), "p5": float(p5), "p50": float(p50), "p95": float(p95)}
