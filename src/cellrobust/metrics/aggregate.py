"""Ratios with an explicit 0/0 rule, and micro / macro averaging of per-image counts.

*Count first, summarise second*: every metric of cellrobust is stored per image as counts
(pixel TP/FP/FN/TN, matched TP/FP/FN, summed IoU) and turned into scores here.

- ``average="micro"`` pools the counts over all images, then forms the ratio (StarDist's
  ``matching_dataset`` default; large images weigh more).
- ``average="macro"`` forms the ratio per image, then takes the mean over images (Cellpose's
  per-image AP, the PSC paper's per-patch Jaccard); every image weighs the same.

The 0/0 rule (the one rule of the package; :mod:`cellrobust.robustness` uses these functions):
a ratio whose denominator is 0 is ``empty`` (default 1.0) when the image is *perfect* - nothing
to find and nothing found - else 0 (e.g. precision of an image with missed cells and no
prediction). Pixel accuracy has a 0 denominator only for an image of no pixels, which is
perfect. With ``empty=np.nan`` such images drop out of a macro mean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cellrobust._validation import InputError, check_choice

AVERAGES = ("micro", "macro")


def ratio(num, den, *, perfect, empty: float = 1.0) -> np.ndarray:
    """``num / den`` element-wise, with the 0/0 rule of this module.

    Parameters
    ----------
    num, den : array-like of float, broadcastable
    perfect : bool or array-like of bool
        Where the denominator is 0: True gives ``empty``, False gives 0.
    empty : float, default 1.0

    Returns
    -------
    ndarray of float64
    """
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    num, den = np.broadcast_arrays(num, den)
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    zero = den == 0
    if zero.any():
        fill = np.where(np.broadcast_to(perfect, num.shape), empty, 0.0)
        out[zero] = fill[zero]
    return out


def count_ratio(count_true, count_pred, *, empty: float = 1.0) -> np.ndarray:
    """Predicted / true cell count (1 = right count, > 1 over-segmentation).

    0/0 (no true and no predicted cell) is ``empty``; predicted cells where there is no true
    cell give 0 by the rule of :func:`ratio` (the count error is then infinite, not 0).
    """
    count_true = np.asarray(count_true, dtype=np.float64)
    count_pred = np.asarray(count_pred, dtype=np.float64)
    return ratio(count_pred, count_true, perfect=(count_true + count_pred) == 0, empty=empty)


def summarise(
    counts: Sequence[dict],
    scores: Callable[[dict], dict],
    *,
    average: str = "micro",
) -> dict:
    """Apply ``scores`` (counts dict -> scores dict) to pooled counts or average it per image.

    Parameters
    ----------
    counts : sequence of dict of numbers or arrays
        One dict of counts per image, all with the same keys.
    scores : callable
        Maps one counts dict (per image or pooled) to a dict of scores.
    average : {"micro", "macro"}

    Returns
    -------
    dict
        The scores; for ``"macro"`` the mean over images (NaN values ignored, NaN when all are).
    """
    check_choice("average", average, AVERAGES)
    if len(counts) == 0:
        raise InputError("counts: expected the counts of at least one image, got none")
    if average == "micro":
        return scores({k: sum(np.asarray(c[k]) for c in counts) for k in counts[0]})
    per_image = [scores(c) for c in counts]
    return {k: macro_mean([s[k] for s in per_image]) for k in per_image[0]}


def macro_mean(values: list) -> np.ndarray | float:
    stack = np.asarray(values, dtype=np.float64)
    if np.isnan(stack).all(axis=0).any():
        finite = np.where(np.isnan(stack), 0.0, stack)
        n = (~np.isnan(stack)).sum(axis=0)
        mean = np.divide(finite.sum(axis=0), n, out=np.full(n.shape, np.nan), where=n > 0)
    else:
        mean = np.nanmean(stack, axis=0)
    return float(mean) if np.ndim(mean) == 0 else mean
