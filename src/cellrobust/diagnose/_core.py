"""Shared machinery of the severity estimators: tiles, block bootstrap, the estimate record.

Every estimator reduces an image to *per-tile statistics* (a few numbers per non-overlapping
square tile), then maps the summed statistics to a severity. Its uncertainty is a percentile
bootstrap that resamples tiles (Künsch 1989, the moving/non-overlapping block bootstrap for
spatially dependent data): the tiles are large compared with the pixel-scale correlation of
noise and cells, so they are close to independent, while pixels are not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cellrobust._rng import as_rng
from cellrobust._validation import InputError, check_ndim

#: Default tile side (px) of the block bootstrap.
TILE = 64
#: Bootstrap replicates of one estimate (resampling tiles: cheap, the statistics are summed).
N_BOOT = 200


@dataclass(frozen=True)
class Estimate:
    """One severity estimate of one artefact on one image.

    Attributes
    ----------
    artefact : str
        Registered artefact name whose parameter is estimated (``"gaussian_noise"``).
    estimate : float
        Point estimate in ``unit`` (the artefact's parameter unit); NaN when undefined.
    ci_low, ci_high : float
        95 % percentile-bootstrap interval over image tiles.
    unit : str
        Unit of the estimate (the artefact's ``unit``).
    method : str
        Estimator and its reference, and which gray-level scale it is expressed in.
    detail : dict
        Auxiliary quantities (raw statistics, the gain used, ...), JSON-serialisable.
    """

    artefact: str
    estimate: float
    ci_low: float
    ci_high: float
    unit: str
    method: str
    detail: dict

    def row(self) -> dict:
        """The record as a flat dict (``detail`` kept as a dict)."""
        return {"artefact": self.artefact, "estimate": self.estimate, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "unit": self.unit, "method": self.method,
                "detail": self.detail}


def as_image(image, name: str = "image") -> np.ndarray:
    """Validate one 2-D gray-level image and return it as float64 (H, W)."""
    arr = np.asarray(image)
    check_ndim(name, arr, (2,), what="one gray-level image (H, W)")
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
        raise InputError(f"{name}: expected a real numeric image, got dtype {arr.dtype}")
    if min(arr.shape) < 32:
        raise InputError(f"{name}: expected an image of at least 32 x 32 px, got {arr.shape}; "
                         "severity estimators need room for tiles")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: the image holds NaN or infinite values; replace them first")
    return arr.astype(np.float64)


def tile_slices(shape: tuple[int, int], tile: int = TILE) -> list[tuple[slice, slice]]:
    """Non-overlapping ``tile x tile`` windows covering ``shape`` (remainders dropped).

    The side shrinks to ``min(shape) // 2`` for small images so there are at least 4 tiles.
    """
    side = int(max(8, min(tile, min(shape) // 2)))
    ny, nx = shape[0] // side, shape[1] // side
    return [(slice(i * side, (i + 1) * side), slice(j * side, (j + 1) * side))
            for i in range(ny) for j in range(nx)]


def tile_sums(values: np.ndarray, tiles: list[tuple[slice, slice]],
              mask: np.ndarray | None = None) -> np.ndarray:
    """Sum of ``values`` (H, W) (or (K, H, W): K statistics) over each tile -> (n_tiles, K)."""
    vals = values[None] if values.ndim == 2 else values
    if mask is not None:
        vals = vals * mask[None]
    return np.array([[v[s].sum() for v in vals] for s in tiles], dtype=np.float64)


def replicates(stats: np.ndarray, func: Callable[[np.ndarray], float], *, rng=None,
               n_boot: int = N_BOOT) -> tuple[float, np.ndarray]:
    """Point estimate ``func(stats.sum(0))`` and ``n_boot`` replicates resampling tiles."""
    point = float(func(stats.sum(axis=0)))
    if n_boot <= 0 or len(stats) < 2:
        return point, np.empty(0)
    idx = as_rng(rng).integers(0, len(stats), size=(int(n_boot), len(stats)))
    return point, np.array([func(stats[i].sum(axis=0)) for i in idx], dtype=float)


def interval(reps: np.ndarray, n_boot: int = N_BOOT) -> tuple[float, float]:
    """95 % percentile interval of finite replicates (NaN when too few are finite)."""
    reps = np.asarray(reps, dtype=float)
    reps = reps[np.isfinite(reps)]
    if reps.size < max(10, n_boot // 4):
        return math.nan, math.nan
    lo, hi = np.quantile(reps, [0.025, 0.975])
    return float(lo), float(hi)


def bootstrap(stats: np.ndarray, func: Callable[[np.ndarray], float], *, rng=None,
              n_boot: int = N_BOOT) -> tuple[float, float, float]:
    """Point estimate and 95 % interval of ``func(sum over tiles of stats)``.

    Parameters
    ----------
    stats : ndarray (n_tiles, K)
        Additive per-tile statistics.
    func : callable
        Maps the (K,) summed statistics to the estimate.
    rng : int or Generator, optional
        Source of the resamples.
    n_boot : int
        Replicates; 0 gives NaN bounds.

    Returns
    -------
    (estimate, ci_low, ci_high)
    """
    point, reps = replicates(stats, func, rng=rng, n_boot=n_boot)
    return (point, *interval(reps, n_boot))


def make(artefact: str, values: tuple[float, float, float], method: str,
         **detail) -> Estimate:
    """An :class:`Estimate` in the registered unit of ``artefact``."""
    from cellrobust import artefacts

    unit = artefacts.get(artefact).unit
    clean = {k: (round(float(v), 6) if isinstance(v, (float, np.floating)) else v)
             for k, v in detail.items()}
    return Estimate(artefact, float(values[0]), float(values[1]), float(values[2]), unit,
                    method, clean)


def fixed(artefact: str, value: float, method: str, **detail) -> Estimate:
    """An estimate without an interval (``value`` for all three numbers)."""
    return make(artefact, (value, value, value), method, **detail)
