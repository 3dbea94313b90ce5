"""StarDist 2D models (``stardist:MODEL_FOLDER``) as segmenters.

A StarDist model folder is what ``StarDist2D.train`` writes: ``config.json`` (with ``n_rays``),
``weights_best.h5`` and/or ``weights_last.h5`` and, after ``optimize_thresholds``,
``thresholds.json``. The adapter loads it with ``StarDist2D(None, name=..., basedir=...)`` and
honours the model's own contract: each image is percentile-normalised as in StarDist's examples
(:func:`csbdeep.utils.normalize`, 1 / 99.8 %), the probability and NMS thresholds default to
the model's ``thresholds.json``, and ``predict_instances`` returns the instance labels. A
registered pretrained name (``2D_versatile_fluo``, ...) is loaded with
``StarDist2D.from_pretrained``, which downloads it once when it is not cached; nothing else is
ever downloaded.

Needs ``pip install 'cellrobust[stardist]'`` (stardist, csbdeep, tensorflow).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellrobust._validation import DataError, InputError
from cellrobust.segmenters.protocol import file_sha256, library_versions

__all__ = ["OPTIONS", "StarDistSegmenter", "is_stardist_folder"]

#: Options of a ``stardist:`` spec.
OPTIONS: dict[str, str] = {
    "normalize": "percentile-normalise each image (default true); false feeds the gray levels "
                 "as they are",
    "p_low": "lower normalisation percentile (default 1)",
    "p_high": "upper normalisation percentile (default 99.8)",
    "prob_thresh": "object probability threshold in (0, 1] (default: the model's "
                   "thresholds.json, else 0.5)",
    "nms_thresh": "non-maximum suppression overlap threshold in [0, 1] (default: the model's "
                  "thresholds.json, else 0.4)",
    "n_tiles": "tiles per axis: auto (default; one tile per started 1024 px of a side), an "
               "integer for both axes, or RxC, e.g. 2x3",
    "scale": "resize factor applied inside StarDist, labels come back at the input size "
             "(default 1)",
    "weights": "which weights file: best, last or a file name in the folder (default: best, "
               "else last)",
}

#: Side (px) above which ``n_tiles=auto`` splits an image.
AUTO_TILE_SIDE = 1024
_LIBRARIES = ("cellrobust", "stardist", "csbdeep", "tensorflow", "tensorflow-cpu", "keras")


@dataclass
class StarDistSegmenter:
    """A StarDist 2D model as a :class:`~cellrobust.segmenters.Segmenter`.

    Parameters
    ----------
    model : stardist.models.StarDist2D
    name : str
    normalize : bool
    p_low, p_high : float
        Percentiles (0-100) mapped to 0 and 1 per image before the network.
    prob_thresh, nms_thresh : float or None
        None = the model's own thresholds (``model.thresholds``).
    n_tiles : "auto", int or tuple of 2 ints
    scale : float
    meta : dict
        ``target`` and the SHA-256 of the files used (``sha256`` = weights file).
    """

    model: Any
    name: str = "stardist"
    normalize: bool = True
    p_low: float = 1.0
    p_high: float = 99.8
    prob_thresh: float | None = None
    nms_thresh: float | None = None
    n_tiles: Any = "auto"
    scale: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    def segment(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) gray levels -> (N, H, W) int32 instance labels (0 = background)."""
        from cellrobust.segmenters.protocol import segment_each

        return segment_each(images, self._segment_one)

    def _segment_one(self, image: np.ndarray) -> np.ndarray:
        labels, _ = self.model.predict_instances(
            self.prepare(image), axes="YX", prob_thresh=self.prob_thresh,
            nms_thresh=self.nms_thresh, n_tiles=self.tiles_for(image.shape),
            scale=None if self.scale == 1 else self.scale, show_tile_progress=False,
            verbose=False)
        return labels

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """One (H, W) image as the network sees it: float32, percentile-normalised if asked."""
        image = np.asarray(image, dtype=np.float32)
        if not self.normalize:
            return image
        from csbdeep.utils import normalize

        return normalize(image, self.p_low, self.p_high, axis=(0, 1), dtype=np.float32)

    def tiles_for(self, shape: tuple[int, int]) -> tuple[int, int] | None:
        """``n_tiles`` for an image of ``shape``; None = one pass."""
        if self.n_tiles == "auto":
            tiles = tuple(max(1, math.ceil(s / AUTO_TILE_SIDE)) for s in shape)
        else:
            tiles = tuple(self.n_tiles)
        return None if tiles == (1, 1) else tiles

    def provenance(self) -> dict:
        """Kind, folder, weights SHA-256, options, effective thresholds, library versions."""
        options = {k: getattr(self, k) for k in ("normalize", "p_low", "p_high", "prob_thresh",
                                                 "nms_thresh", "scale")}
        options["n_tiles"] = self.n_tiles if self.n_tiles == "auto" else list(self.n_tiles)
        thresholds = self.model.thresholds
        return {"kind": "stardist", **self.meta, "options": options,
                "thresholds": {"prob": float(thresholds.prob), "nms": float(thresholds.nms)},
                "n_rays": int(self.model.config.n_rays),
                "grid": list(self.model.config.grid),
                "versions": library_versions(*_LIBRARIES)}


def is_stardist_folder(path: Path) -> bool:
    """True for a folder whose ``config.json`` describes a StarDist model (has ``n_rays``)."""
    config = Path(path) / "config.json"
    if not (Path(path).is_dir() and config.is_file()):
        return False
    try:
        return "n_rays" in json.loads(config.read_text())
    except (OSError, ValueError):
        return False


def _read_config(spec, folder: Path) -> dict:
    config = folder / "config.json"
    if not config.is_file():
        raise InputError(f"segmenter {spec}: {folder} has no config.json, so it is not a "
                         "StarDist model folder; give the folder StarDist2D.train wrote "
                         "(config.json + weights_best.h5)")
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"segmenter {spec}: cannot read {config} ({exc}); expected the JSON "
                        "config StarDist writes") from None
    if not isinstance(data, dict) or "n_rays" not in data:
        raise InputError(f"segmenter {spec}: {config} has no 'n_rays', so it is not a StarDist "
                         "config; give a StarDist model folder (a CARE or other csbdeep model "
                         "is not supported)")
    if data.get("n_dim", 2) != 2:
        raise InputError(f"segmenter {spec}: {folder} is a StarDist {data.get('n_dim')}-D "
                         "model; only StarDist 2D models segment 2-D images")
    if data.get("n_channel_in", 1) != 1:
        raise InputError(f"segmenter {spec}: {folder} expects {data['n_channel_in']} input "
                         "channels; cellrobust feeds gray (1-channel) images, so give a "
                         "1-channel StarDist model (e.g. 2D_versatile_fluo, not _he)")
    return data


def _weights_file(spec, folder: Path, choice: str | None) -> Path:
    if choice in (None, "best", "last"):
        names = {"best": ["weights_best.h5"], "last": ["weights_last.h5"],
                 None: ["weights_best.h5", "weights_last.h5"]}[choice]
    else:
        names = [str(choice)]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    found = sorted(p.name for p in folder.glob("*.h5")) or ["none"]
    raise DataError(f"segmenter {spec}: no {' or '.join(names)} in {folder} (weights found: "
                    f"{', '.join(found)}); train the model or give weights=FILE")


def _load_folder(spec, folder: Path, choice: str | None):
    from stardist.models import StarDist2D

    _read_config(spec, folder)
    weights = _weights_file(spec, folder, choice)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # StarDist prints what it loads
            model = StarDist2D(None, name=folder.name, basedir=str(folder.parent))
            model.load_weights(weights.name)
    except Exception as exc:  # noqa: BLE001 - any library failure is one DataError line
        raise DataError(f"segmenter {spec}: StarDist cannot load {folder} "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                        "; check that config.json and the weights come from the same model"
                        ) from None
    files = {p.name: file_sha256(p) for p in (folder / "config.json", weights,
                                              folder / "thresholds.json") if p.is_file()}
    return model, {"target": str(folder), "weights": weights.name,
                   "sha256": files[weights.name], "files": files}


def _pretrained_names() -> list[str]:
    from csbdeep.models.pretrained import get_registered_models
    from stardist.models import StarDist2D

    with contextlib.redirect_stdout(io.StringIO()):
        models, aliases = get_registered_models(StarDist2D)
    return sorted(set(models) | set(aliases))


def import_torch_first() -> None:
    """Import torch and torchvision (when installed) before TensorFlow.

    With some wheel builds, torchvision loaded *after* TensorFlow crashes the process
    (segmentation fault seen with torch 2.14.1 + torchvision 0.29.1 + tensorflow 2.21), which
    would kill a study that builds a StarDist model before a Cellpose one.
    """
    for name in ("torch", "torchvision"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - absent or broken: the Cellpose adapter reports it
            continue


def _load(spec, choice: str | None):
    import_torch_first()
    target = spec.target
    folder = Path(target).expanduser()
    if folder.is_dir():
        return _load_folder(spec, folder, choice)
    names = _pretrained_names()
    if target not in names:
        raise InputError(f"segmenter {spec}: model folder {target} not found and not a "
                         f"pretrained StarDist 2D name ({', '.join(names)}); give a folder "
                         "with config.json and weights_best.h5")
    from stardist.models import StarDist2D

    with contextlib.redirect_stdout(io.StringIO()):  # downloads once if not cached
        cached = Path(StarDist2D.from_pretrained(target).logdir)
    model, meta = _load_folder(spec, cached, choice)
    return model, {**meta, "target": target, "pretrained": True, "folder": str(cached)}


def _n_tiles(spec, value) -> Any:
    if value in (None, "auto"):
        return "auto"
    text = str(value).lower()
    parts = text.split("x") if "x" in text else [text, text]
    try:
        tiles = tuple(int(p) for p in parts)
    except ValueError:
        tiles = ()
    if len(tiles) != 2 or min(tiles) < 1:
        raise InputError(f"segmenter {spec}: n_tiles must be auto, a positive integer or RxC "
                         f"(e.g. 2x3), got {value!r}")
    return tiles


def _number(spec, options: dict, key: str, low: float, high: float | None, default):
    value = options.get(key, default)
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value \
        and (high is None or value <= high)
    if not ok:
        upper = "inf" if high is None else f"{high:g}"
        raise InputError(f"segmenter {spec}: option {key} must be a number in "
                         f"[{low:g}, {upper}], got {value!r}")
    return float(value)


def _build(spec) -> StarDistSegmenter:
    opts = dict(spec.options)
    normalize = opts.get("normalize", True)
    if not isinstance(normalize, bool):
        raise InputError(f"segmenter {spec}: option normalize must be true or false, got "
                         f"{normalize!r}")
    p_low = _number(spec, opts, "p_low", 0, 100, 1.0)
    p_high = _number(spec, opts, "p_high", 0, 100, 99.8)
    if p_low >= p_high:
        raise InputError(f"segmenter {spec}: p_low ({p_low:g}) must be below p_high "
                         f"({p_high:g})")
    scale = _number(spec, opts, "scale", 1e-3, None, 1.0)
    kwargs = dict(normalize=normalize, p_low=p_low, p_high=p_high, scale=scale,
                  prob_thresh=_number(spec, opts, "prob_thresh", 0, 1, None),
                  nms_thresh=_number(spec, opts, "nms_thresh", 0, 1, None),
                  n_tiles=_n_tiles(spec, opts.get("n_tiles")))
    weights = opts.get("weights")
    model, meta = _load(spec, None if weights is None else str(weights))
    return StarDistSegmenter(model=model, name=spec.name, meta=meta, **kwargs)


def _kind():
    from cellrobust.segmenters.kind import Kind

    return Kind(name="stardist", summary="a StarDist 2D model (folder written by StarDist2D)",
                target="a model folder (config.json + weights_best.h5) or a pretrained name",
                options=OPTIONS, requires=("stardist", "csbdeep", "tensorflow"),
                extra="stardist", example="sd=stardist:models/2D_psc,prob_thresh=0.6",
                build=_build, detect=is_stardist_folder)


KIND = _kind()
