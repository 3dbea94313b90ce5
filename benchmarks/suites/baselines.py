"""``baselines``: DoG+Otsu and NLM+Otsu frames/s, cellrobust vs the reference pipelines.

Input: 576x720 uint8 phase-contrast-like frames (the PSC frame size). Peers, run in the
``classic`` environment:

- the reference study's OpenCV pipeline: ``cv2.GaussianBlur`` at σ = 3.5 and √2·3.5, the
  difference min-max scaled and truncated to uint8, ``cv2.threshold`` with Otsu,
  ``cv2.connectedComponents`` (8-connectivity); for NLM ``cv2.fastNlMeansDenoising`` (h = 25,
  template 7, search 21) on the uint8 frame, then Otsu and components;
- scikit-image: ``estimate_sigma`` (wavelets), ``denoise_nl_means(h=0.8·σ̂, patch 7,
  distance 10, fast_mode)``, ``threshold_otsu``, ``measure.label``.

Our side: ``cellrobust.segmenters.get_segmenter(name).segment(frames)`` (float precision kept
before Otsu, so the outputs differ slightly from the 8-bit reference by design).
"""

from __future__ import annotations

import math

import numpy as np

from ..harness import Comparison, Side

SIGMA = 3.5


class Ours:
    def __init__(self, *, path: str, name: str, options: dict):
        import cellrobust
        from cellrobust.segmenters import get_segmenter
        self.segmenter = get_segmenter(name, **options)
        self.frames = np.load(path)
        self.info = {"versions": {"cellrobust": cellrobust.__version__}, "options": options}

    def step(self) -> dict:
        self.segmenter.segment(self.frames)
        return {"units": len(self.frames)}


def _cv_otsu_components(img8: np.ndarray):
    import cv2
    _, mask = cv2.threshold(img8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return cv2.connectedComponents(mask, connectivity=8)[1]


def reference_dog(img8: np.ndarray):
    import cv2
    low = cv2.GaussianBlur(img8, (0, 0), SIGMA).astype(np.float32)
    high = cv2.GaussianBlur(img8, (0, 0), SIGMA * math.sqrt(2)).astype(np.float32)
    dog8 = cv2.normalize(low - high, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return _cv_otsu_components(dog8)


def reference_nlm(img8: np.ndarray):
    import cv2
    return _cv_otsu_components(cv2.fastNlMeansDenoising(img8, None, 25, 7, 21))


def skimage_nlm(img8: np.ndarray):
    from skimage.filters import threshold_otsu
    from skimage.measure import label
    from skimage.restoration import denoise_nl_means, estimate_sigma
    img = img8.astype(np.float64)
    sigma = float(estimate_sigma(img))
    den = denoise_nl_means(img, h=0.8 * sigma, sigma=sigma, patch_size=7, patch_distance=10,
                           fast_mode=True)
    return label(den > threshold_otsu(den), connectivity=2)


class Peer:
    def __init__(self, *, path: str, pipeline: str):
        from importlib.metadata import version
        self.fn = {"reference_dog": reference_dog, "reference_nlm": reference_nlm,
                   "skimage_nlm": skimage_nlm}[pipeline]
        self.frames = np.load(path)
        lib = "scikit-image" if pipeline.startswith("skimage") else "opencv-python-headless"
        self.info = {"versions": {lib: version(lib)}}

    def step(self) -> dict:
        for frame in self.frames:
            self.fn(frame)
        return {"units": len(self.frames)}


def ours(**kw):
    return Ours(**kw)


def peer(**kw):
    return Peer(**kw)


def run(ctx) -> dict:
    from ._data import save_images
    n_dog, n_nlm = (1, 1) if ctx.smoke else (6, 2)
    shape = (96, 120) if ctx.smoke else (576, 720)
    n_obj = 6 if ctx.smoke else 200
    dog_path = save_images(str(ctx.work_dir / "frames_dog.npy"), n_dog, shape, seed=5,
                           n_objects=n_obj, radius=7.0)
    nlm_path = save_images(str(ctx.work_dir / "frames_nlm.npy"), n_nlm, shape, seed=6,
                           n_objects=n_obj, radius=7.0)
    target = "benchmarks.suites.baselines:"
    rows = [
        ctx.compare(Comparison(
            f"DoG + Otsu + components, {shape[0]}×{shape[1]}", "frames/s",
            Side("cellrobust dog_otsu", target + "ours",
                 {"path": dog_path, "name": "dog_otsu", "options": {}}),
            (Side("reference OpenCV pipeline", target + "peer",
                  {"path": dog_path, "pipeline": "reference_dog"}, "classic"),), goal=1.0,
            rounds=3)),
        ctx.compare(Comparison(
            f"NLM (OpenCV) + Otsu + components, {shape[0]}×{shape[1]}", "frames/s",
            Side("cellrobust nlm_otsu", target + "ours",
                 {"path": nlm_path, "name": "nlm_otsu", "options": {}}),
            (Side("reference OpenCV pipeline", target + "peer",
                  {"path": nlm_path, "pipeline": "reference_nlm"}, "classic"),), rounds=3)),
        ctx.compare(Comparison(
            f"NLM (scikit-image) + Otsu + components, {shape[0]}×{shape[1]}", "frames/s",
            Side("cellrobust nlm_otsu method=skimage", target + "ours",
                 {"path": nlm_path, "name": "nlm_otsu", "options": {"method": "skimage"}}),
            (Side("scikit-image denoise_nl_means", target + "peer",
                  {"path": nlm_path, "pipeline": "skimage_nlm"}, "classic"),), rounds=3)),
    ]
    return {"title": "classical baselines vs the reference OpenCV / scikit-image pipelines",
            "rows": rows,
            "notes": [(f"{n_dog} (DoG) and {n_nlm} (NLM) uint8 {shape[0]}×{shape[1]} frames per "
                      "timed call. "
                      "Goal (issue #18): DoG + Otsu >= 1x the reference OpenCV pipeline; the NLM "
                      "rows show what keeping float precision and one code path for every "
                      "segmenter costs or saves.")]}
