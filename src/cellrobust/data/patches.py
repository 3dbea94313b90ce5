"""Random square crops of frames, image and labels cut together (the studies' patch sampling).

The PSC studies trained and evaluated the DeepImageJ U-Net on N random 256 x 256 crops per
576 x 720 frame (N = 6). Each crop's top-left corner is drawn uniformly from every position that
keeps the crop inside the frame; the same window cuts the image and its labels, so they can never
fall out of step. Cropped labels are relabelled sequentially (cells cut by the border keep their
visible part).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from cellrobust._rng import as_rng, derive_rng
from cellrobust._validation import InputError, check_range
from cellrobust.data._convert import relabel_sequential
from cellrobust.data.sample import Sample

DEFAULT_N = 6
DEFAULT_SIZE = 256


def crop(
    sample: Sample, y: int, x: int, size: int | tuple[int, int], *, name: str | None = None
) -> Sample:
    """Cut the window ``[y:y+h, x:x+w]`` from image and labels together.

    Returns a :class:`Sample` named ``name`` (default ``"<name>/y<y>x<x>"``) whose ``meta``
    records ``origin=(y, x)`` and ``parent`` (the frame name). Labels are relabelled 1..n.
    """
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    H, W = sample.shape
    if not (0 <= y <= H - h and 0 <= x <= W - w):
        raise InputError(
            f"crop: window {(y, x, h, w)} does not fit {sample.name} of shape {(H, W)}"
        )
    image = sample.image[y:y + h, x:x + w].copy()
    labels = None
    if sample.labels is not None:
        labels = relabel_sequential(sample.labels[y:y + h, x:x + w])
        labels = labels.copy() if np.shares_memory(labels, sample.labels) else labels
    meta = {**sample.meta, "origin": (int(y), int(x)), "parent": sample.name}
    return Sample(image=image, labels=labels, name=name or f"{sample.name}/y{y}x{x}", meta=meta)


def random_patches(
    sample: Sample,
    n: int = DEFAULT_N,
    size: int = DEFAULT_SIZE,
    *,
    rng: int | np.random.Generator | None,
) -> list[Sample]:
    """``n`` random ``size`` x ``size`` crops of one frame, image and labels cut together.

    Parameters
    ----------
    sample : Sample
        The frame, shape (H, W) with H, W >= ``size``.
    n : int
        Number of crops (default 6, as the PSC studies). Crops may overlap.
    size : int
        Side of the square crop in pixels (default 256).
    rng : int or numpy.random.Generator or None
        Source of the corner positions; the same seed gives the same crops.

    Returns
    -------
    list of Sample
        Named ``"<name>/p<i>"``, ``meta["origin"] = (y, x)`` of the top-left corner.
    """
    n = int(check_range("n", n, low=1))
    size = int(check_range("size", size, low=1))
    H, W = sample.shape
    if size > H or size > W:
        raise InputError(
            f"size: a {size} x {size} crop does not fit {sample.name} of shape {(H, W)}; "
            f"use size <= {min(H, W)}"
        )
    gen = as_rng(rng)
    ys = gen.integers(0, H - size + 1, size=n)
    xs = gen.integers(0, W - size + 1, size=n)
    return [crop(sample, int(y), int(x), size, name=f"{sample.name}/p{i}")
            for i, (y, x) in enumerate(zip(ys, xs))]


def iter_patches(
    samples: Iterable[Sample],
    n: int = DEFAULT_N,
    size: int = DEFAULT_SIZE,
    *,
    seed: int = 0,
) -> Iterator[Sample]:
    """Yield :func:`random_patches` of every sample, one frame in memory at a time.

    Each frame's crops are drawn from ``derive_rng(seed, sample.name, "patches")``, so they depend
    only on the seed and the frame name - not on the order or on which other frames are present.
    """
    for sample in samples:
        yield from random_patches(sample, n, size, rng=derive_rng(seed, sample.name, "patches"))
