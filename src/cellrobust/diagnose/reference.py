"""Statistics of a study's clean reference images, against which severities are measured."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from cellrobust._validation import InputError
from cellrobust.diagnose._core import as_image, tile_slices
from cellrobust.diagnose.noise import (contrast_stats, immerkaer_sigma, immerkaer_stats,
                                       impulse_map, signal_variance, _stripe_stats)
from cellrobust.diagnose.scale import (SPECTRUM_TILE, log_energy, peak_scale, scale_stats,
                                       spectrum_stats)


@dataclass(frozen=True)
class ReferenceStats:
    """What the estimators need to know about clean images of the study (e.g. its training or
    validation frames), all in the references' raw gray levels.

    Attributes
    ----------
    n_images : int
    noise_sigma : float
        Intrinsic noise (Immerkær sigma, gray levels): subtracted from noise estimates.
    signal_var : float
        Cell-contrast variance (gray levels^2, white noise removed): the gain ``k`` of an image
        is ``sqrt(its signal variance / signal_var)``.
    blob_scale : float
        Characteristic LoG blob scale (px) of the cells.
    scale_energy : tuple of float
        Log noise-corrected LoG energy at every scale of ``diagnose.scale.SCALES``; the cell
        size factor is the shift aligning an image's curve with this one.
    spectrum : tuple of float
        Mean radially binned power spectrum of ``spectrum_side`` px tiles.
    spectrum_side : int
    stripe_var : dict
        The clean images' own stripe level (``rows``/``columns``, gray levels^2).
    hot_rate : float
        Percentage of isolated extreme pixels in the clean images.
    floors : dict
        Each estimator's largest estimate on the reference images themselves (what "clean"
        reads as); an image is flagged as corrupted above it.
    """

    n_images: int
    noise_sigma: float
    signal_var: float
    blob_scale: float
    scale_energy: tuple[float, ...]
    spectrum: tuple[float, ...]
    spectrum_side: int
    stripe_var: dict = field(default_factory=dict)
    hot_rate: float = 0.0
    floors: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-serialisable form (written to the diagnosis config)."""
        return asdict(self)


def measure_reference(images) -> tuple[ReferenceStats, list[np.ndarray]]:
    """Measure :class:`ReferenceStats` on clean images (sequence of (H, W) arrays), without
    floors; also return the images as arrays. :func:`cellrobust.diagnose.reference_stats`
    adds the floors (what a clean image reads as), which need the estimators."""
    arrays = [as_image(im, f"reference[{i}]") for i, im in enumerate(images)]
    if not arrays:
        raise InputError("reference: expected at least one clean image, got none")
    side = min(SPECTRUM_TILE, *(min(a.shape) // 2 for a in arrays))
    sums = {"imm": 0, "con": 0, "scale": 0, "spec": 0}
    stripes, hot = {"rows": [], "columns": []}, []
    for a in arrays:
        tiles = tile_slices(a.shape)
        sums["imm"] = sums["imm"] + immerkaer_stats(a, tiles).sum(axis=0)
        sums["con"] = sums["con"] + contrast_stats(a, tiles).sum(axis=0)
        sums["scale"] = sums["scale"] + scale_stats(a, tiles).sum(axis=0)
        spec, side = spectrum_stats(a, side)
        sums["spec"] = sums["spec"] + spec.sum(axis=0)
        stripes["rows"].append(_stripe_stats(a, 64).mean())
        stripes["columns"].append(_stripe_stats(a.T, 64).mean())
        hot.append(100.0 * impulse_map(a).mean())
    from cellrobust.diagnose.scale import N_BINS

    stats = ReferenceStats(
        n_images=len(arrays), noise_sigma=immerkaer_sigma(sums["imm"]),
        signal_var=signal_variance(np.concatenate([sums["imm"], sums["con"]])),
        blob_scale=peak_scale(sums["scale"]),
        scale_energy=tuple(float(v) for v in log_energy(sums["scale"])),
        spectrum=tuple(float(v) for v in sums["spec"][:N_BINS] / sums["spec"][-1]),
        spectrum_side=int(side),
        stripe_var={k: float(np.mean(v)) for k, v in stripes.items()},
        hot_rate=float(np.mean(hot)))
    if not math.isfinite(stats.blob_scale) or stats.signal_var <= 0:
        raise InputError("reference: the images show no cell-scale structure (flat or pure "
                         "noise); pass clean images of the kind the study used")
    return stats, arrays
