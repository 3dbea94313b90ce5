"""Severity estimators for unlabelled images, and predictions from a study's curves.

``diagnose_images(images, reference=...)`` estimates, per image, the severity of every artefact
with a sound estimator, in the unit of that artefact's grid (``cellrobust.artefacts``):
gaussian noise sigma (Immerkær 1996; wavelet MAD, Donoho 1995), Poisson-Gaussian photons
(Foi et al. 2008), illumination amplitude (blob + plane background fit), defocus sigma
(spectral fall-off), cell-size factor (LoG scale selection, Lindeberg 1998), JPEG quality (DCT
lattice, Fan & de Queiroz 2003), stripes and hot pixels; each with a tile-bootstrap 95 %
interval. ``predict(diagnosis, table)`` reads a study's results table and predicts every
segmenter's metric at those severities (frame bootstrap), flags images outside a model's
trusted range and recommends a model. See ``docs/diagnose.md``.
"""

from cellrobust.diagnose._core import Estimate
from cellrobust.diagnose.api import ESTIMATORS, diagnose_images, estimate_image, reference_stats
from cellrobust.diagnose.predict import predict, recommend, study_curves, trusted_ranges
from cellrobust.diagnose.reference import ReferenceStats

__all__ = ["ESTIMATORS", "Estimate", "ReferenceStats", "diagnose_images", "estimate_image",
           "predict", "recommend", "reference_stats", "study_curves", "trusted_ranges"]
