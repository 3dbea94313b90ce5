"""One frame-resampling bootstrap for every score, shared by every segmenter and severity.

Patches cut from one frame share its cells, illumination and focus: they are not independent
observations. Each replicate therefore draws *frames* with replacement (the cluster
bootstrap, Davison & Hinkley 1997, section 3.8) and keeps all rows of a drawn frame
(:func:`cellrobust.table.frame_of` maps ``"<frame>/p3"`` and ``"<frame>/w7"`` to
``"<frame>"``). The draw is made once per table - replicate ``b`` weighs frame ``f``
``weights[b, f]`` times in *every* segmenter x artefact x severity group - so differences
between segmenters are paired and scores combining several severities (mPC, AUC, trusted
range) are computed on consistent replicates.

References
----------
Davison A. C., Hinkley D. V. (1997) Bootstrap methods and their application. Cambridge
University Press.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cellrobust import table as schema
from cellrobust._rng import derive_rng
from cellrobust._validation import InputError, check_range

__all__ = ["DEFAULT_CI", "DEFAULT_N_BOOT", "MIN_FRAMES", "FrameBootstrap", "frame_bootstrap",
           "interval"]

#: Bootstrap replicates used by every score, curve and report unless told otherwise.
DEFAULT_N_BOOT = 1000
#: Coverage of every interval.
DEFAULT_CI = 0.95
#: Fewest independent frames for which a difference is called significant (below it: "not
#: assessed"; a percentile interval over 2-4 clusters is far too narrow).
MIN_FRAMES = 5


@dataclass(frozen=True, eq=False)
class FrameBootstrap:
    """The frames of a table and how often each replicate draws each of them.

    Attributes
    ----------
    frames : tuple of str
        Sorted frame names.
    weights : ndarray of int64, shape (n_boot, n_frames)
        ``weights[b, f]``: times frame ``f`` is drawn in replicate ``b`` (rows sum to
        ``n_frames``).
    """

    frames: tuple[str, ...]
    weights: np.ndarray

    @property
    def n_boot(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    def index_of(self, samples) -> np.ndarray:
        """Frame index (int64) of every sample name; unknown frames raise InputError."""
        lookup = {f: i for i, f in enumerate(self.frames)}
        names = [schema.frame_of(s) for s in samples]
        missing = sorted(set(names) - set(lookup))
        if missing:
            raise InputError(f"samples: frames {missing[:3]} are not in this bootstrap; build "
                             "it from the same table")
        return np.fromiter((lookup[n] for n in names), dtype=np.int64, count=len(names))


def frame_bootstrap(samples, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> FrameBootstrap:
    """Draw ``n_boot`` resamples of the frames of ``samples`` (sample names of a table).

    The stream is ``derive_rng(seed, "frame-bootstrap")``: the same seed and frames give the
    same replicates in every process.
    """
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or int(n_boot) < 0:
        raise InputError(f"n_boot: expected an integer >= 0 (0 = no interval), got {n_boot!r}")
    frames = tuple(sorted({schema.frame_of(s) for s in pd.unique(pd.Series(list(samples)))}))
    n = len(frames)
    draws = derive_rng(seed, "frame-bootstrap").integers(0, max(n, 1), size=(int(n_boot), n))
    weights = np.zeros((int(n_boot), n), dtype=np.int64)
    if n:
        rows = np.repeat(np.arange(int(n_boot)), n)
        np.add.at(weights, (rows, draws.ravel()), 1)
    return FrameBootstrap(frames, weights)


def interval(reps: np.ndarray | None, ci: float = DEFAULT_CI) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of replicates along the last axis (NaN replicates ignored).

    Parameters
    ----------
    reps : ndarray, shape (..., n_boot), or None
    ci : float in (0, 1)

    Returns
    -------
    (lo, hi) : ndarrays of shape ``reps.shape[:-1]``; NaN where no replicate is finite or
    ``reps`` is None / has no replicate.
    """
    check_range("ci", ci, low=0, high=1, low_inclusive=False, high_inclusive=False)
    if reps is None or reps.shape[-1] == 0:
        shape = () if reps is None else reps.shape[:-1]
        return np.full(shape, np.nan), np.full(shape, np.nan)
    reps = np.asarray(reps, dtype=np.float64)
    alpha = (1 - ci) / 2
    ok = np.isfinite(reps).any(axis=-1)
    safe = np.where(ok[..., None], reps, 0.0)
    with np.errstate(invalid="ignore"):
        lo, hi = np.nanquantile(np.where(np.isfinite(safe), safe, np.nan), [alpha, 1 - alpha],
                                axis=-1)
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)
