"""``diagnose_images``: every estimator on every image, as one tidy table."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cellrobust._rng import derive_rng
from cellrobust._validation import InputError, check_choice
from cellrobust.diagnose import background, compression, noise, scale
from cellrobust.diagnose._core import N_BOOT, Estimate, as_image

#: Artefact name -> estimator ``f(image, *, reference, rng, n_boot) -> Estimate | None``.
ESTIMATORS = {
    "gaussian_noise": noise.gaussian_noise,
    "poisson": noise.poisson,
    "illumination": background.illumination,
    "defocus": scale.defocus,
    "cell_size": scale.cell_size,
    "jpeg": compression.jpeg,
    "stripes": noise.stripes,
    "hot_pixels": noise.hot_pixels,
}
#: Artefacts whose severity grows away from the identity in both directions.
TWO_SIDED = ("cell_size", "zoom")
COLUMNS = ["image", "artefact", "parameter", "estimate", "ci_low", "ci_high", "unit",
           "detected", "method", "detail"]


def estimate_image(image, *, reference=None, artefacts: Sequence[str] | None = None,
                   rng=None, n_boot: int = N_BOOT) -> list[Estimate]:
    """The :class:`~cellrobust.diagnose.Estimate` of every requested artefact on one image.

    Estimators that need references (``defocus``) are skipped without them.
    """
    z = as_image(image)
    names = list(ESTIMATORS) if artefacts is None else list(artefacts)
    out = []
    for k, name in enumerate(names):
        check_choice("artefacts", name, ESTIMATORS)
        gen = derive_rng(0 if rng is None else rng, "diagnose", name) \
            if not isinstance(rng, np.random.Generator) else rng
        est = ESTIMATORS[name](z, reference=reference, rng=gen, n_boot=n_boot)
        if est is not None:
            out.append(est)
    return out


def detected(est: Estimate, reference) -> bool:
    """Whether ``est`` reads as corrupted: its interval clears what clean references read.

    Without references: any departure from the artefact's identity beyond the interval
    (noise, stripes, hot pixels > 0 with ``ci_low > 0``; jpeg quality < 100).
    """
    from cellrobust import artefacts

    if est.artefact == "jpeg":
        return est.estimate < 100
    low = est.ci_low if math.isfinite(est.ci_low) else est.estimate
    high = est.ci_high if math.isfinite(est.ci_high) else est.estimate
    floors = {} if reference is None else reference.floors
    if est.artefact in TWO_SIDED:
        margin = max(float(floors.get("cell_size", 0.0)), math.log(1.1))
        return bool(low > math.exp(margin) or high < math.exp(-margin))
    if est.artefact == "poisson":  # fewer photons = worse; clean reads as many photons
        floor = float(floors.get("poisson", math.inf))  # NaN/inf: clean reads as no shot noise
        return bool(math.isfinite(high) and (not math.isfinite(floor) or high < 0.5 * floor))
    identity = artefacts.get(est.artefact).identity
    floor = float(floors.get(est.artefact, identity))
    return bool(low > max(floor, identity) * 1.5 + 1e-9 and low > identity)


def diagnose_images(images, *, reference=None, artefacts: Sequence[str] | None = None,
                    rng=None, n_boot: int = N_BOOT) -> pd.DataFrame:
    """Estimate the severity of every artefact with an estimator on unlabelled images.

    Parameters
    ----------
    images : sequence of ndarray (H, W), or mapping name -> ndarray
        Gray-level images as read (or as written by ``cellrobust corrupt``).
    reference : ReferenceStats or sequence of ndarray, optional
        Clean images of the study (its training/validation frames), or their
        :func:`~cellrobust.diagnose.reference_stats`. They set the gray-level scale (undo a
        min-max rescaling), the intrinsic noise, the reference cell size and spectrum, and
        what "clean" reads as. Without them: noise and illumination are in the image's gray
        levels, cell size is relative to PSC's 13 px cells and defocus is not estimated.
    artefacts : sequence of str, optional
        Subset of :data:`ESTIMATORS` (default all).
    rng : int or Generator, optional
        Seed of the tile bootstraps (each image and artefact gets its own derived stream).
    n_boot : int
        Bootstrap replicates per estimate (0 = no intervals).

    Returns
    -------
    DataFrame
        One row per image x artefact: ``image, artefact, parameter, estimate, ci_low,
        ci_high, unit, detected, method, detail`` (JSON). ``estimate`` is in the artefact's
        registered unit (``cellrobust.artefacts.get(name).unit``); ``ci_*`` is a 95 %
        percentile bootstrap over image tiles.
    """
    from cellrobust import artefacts as registry
    from cellrobust.diagnose.reference import ReferenceStats

    named = _named(images)
    if reference is not None and not isinstance(reference, ReferenceStats):
        reference = reference_stats(list(reference))
    seed = 0 if rng is None else rng
    rows = []
    for name, image in named.items():
        gen = derive_rng(seed, "diagnose", name) if not isinstance(seed, np.random.Generator) \
            else seed
        for est in estimate_image(image, reference=reference, artefacts=artefacts, rng=gen,
                                  n_boot=n_boot):
            rows.append({"image": name, **est.row(), "parameter":
                         registry.get(est.artefact).parameter,
                         "detected": detected(est, reference),
                         "detail": json.dumps(est.detail, default=float)})
    return pd.DataFrame(rows, columns=COLUMNS)


def _named(images) -> dict[str, np.ndarray]:
    if isinstance(images, Mapping):
        named = {str(k): v for k, v in images.items()}
    elif isinstance(images, np.ndarray) and images.ndim == 2:
        named = {"image0": images}
    else:
        named = {f"image{i}": im for i, im in enumerate(images)}
    if not named:
        raise InputError("images: expected at least one image, got none")
    return named


def reference_stats(images, *, floors: bool = True, rng=0):
    """:class:`~cellrobust.diagnose.reference.ReferenceStats` of clean images (sequence of
    (H, W) arrays). With ``floors`` the estimators are also run on every reference image to
    record what a clean image reads as (:attr:`ReferenceStats.floors`)."""
    from cellrobust.diagnose.reference import measure_reference

    stats, arrays = measure_reference(images)
    return _with_floors(stats, arrays, rng) if floors else stats


def _with_floors(stats, arrays, rng):
    from dataclasses import replace

    found: dict[str, list[float]] = {}
    for a in arrays:
        for est in estimate_image(a, reference=stats, rng=rng, n_boot=0):
            found.setdefault(est.artefact, []).append(est.estimate)
    floors = {k: float(np.nanmax(v)) if np.isfinite(v).any() else math.nan
              for k, v in found.items()}
    if "cell_size" in found:
        ratios = np.asarray(found["cell_size"], dtype=float)
        floors["cell_size"] = float(np.nanmax(np.abs(np.log(ratios))))
    return replace(stats, floors=floors)
