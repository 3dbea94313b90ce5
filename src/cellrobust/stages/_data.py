"""The one way every stage opens its images: a data set or the embedded simulator, a frame
subset, and the seeded evaluation crops.

``evaluate``, ``sweep`` and ``study`` all cut their evaluation patches here, from one stream per
frame (:func:`cellrobust.data.iter_patches`: ``derive_rng(seed, frame name, "patches")``), so
``cellrobust evaluate --patches 6 --seed S`` scores exactly the crops whose clean rows the sweep
and the study score.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from cellrobust._validation import DataError, InputError

__all__ = ["describe_frames", "eval_patches", "open_frames", "subset", "warn_small"]

#: Which simulator split stands in for a data set's evaluation frames when no path is given.
SIMULATOR = "embedded simulator (cellrobust.data.synthetic)"


def open_frames(data, *, split: str | None = None, n_frames: int | None = None, seed: int = 0,
                default_split: str = "test", unannotated: str = "skip") -> list:
    """Frames of a data set (``data`` a path) or of the simulator (``data=None``).

    Parameters
    ----------
    data : path or None
    split : str, optional
        Split of the data set (DeepImageJ ``train``/``validation``/``test``) or simulator split
        (default ``default_split``).
    n_frames : int, optional
        Evenly spaced subset of this many frames (:func:`subset`); None = all.
    seed : int
        Simulator seed.
    unannotated : {"skip", "keep"}
        Frames without masks: left out, or kept with ``labels=None`` (prediction only).
    """
    if data is None:
        from cellrobust.data import load_default_dataset

        return list(load_default_dataset(split or default_split, n_frames=n_frames, seed=seed))
    from cellrobust.data import open_dataset

    frames = subset(open_dataset(data, split=split, unannotated=unannotated), n_frames)
    if not frames:
        raise DataError(f"{data}: no {'annotated ' if unannotated == 'skip' else ''}frame "
                        f"found{f' in split {split!r}' if split else ''}")
    return frames


def subset(frames: Sequence, n: int | None) -> list:
    """``n`` frames evenly spaced over the sequence (all when ``n`` is None or too large)."""
    frames = list(frames)
    if n is None or n >= len(frames):
        return frames
    if int(n) < 1:
        raise InputError(f"frames: expected a positive number of frames, got {n}")
    idx = np.unique(np.linspace(0, len(frames) - 1, int(n)).round().astype(int))
    return [frames[i] for i in idx]


def eval_patches(frames: Sequence, *, n: int, size: int, seed: int) -> list:
    """``n`` seeded ``size`` px crops per frame, the one crop stream of every stage.

    A frame smaller than ``size`` is refused with the fix; the crops of a frame depend only on
    (seed, frame name).
    """
    from cellrobust.data import iter_patches

    for frame in frames:
        if min(frame.shape) < size:
            raise InputError(f"patch_size: {size} px does not fit frame {frame.name} of shape "
                             f"{tuple(frame.shape)}; use a patch size <= {min(frame.shape)}")
    return list(iter_patches(frames, n, size, seed=seed))


def describe_frames(frames: Sequence, *, source, role: str) -> dict:
    """What a study or evaluation used: path, format, frame count and names (for the record)."""
    if source is None:
        fmt = "synthetic"
    else:
        from cellrobust.data import open_dataset

        fmt = open_dataset(source).format
    return {"role": role, "path": str(source) if source is not None else SIMULATOR,
            "format": fmt, "frames": len(frames), "names": [f.name for f in frames]}


def warn_small(frames: Sequence, *, wanted: int | None, role: str) -> None:
    """A clear warning when a data set has fewer frames than asked for."""
    if wanted is not None and len(frames) < wanted:
        warnings.warn(f"{role}: {wanted} frames asked for, the data set has {len(frames)}; "
                      "using all of them", stacklevel=2)
