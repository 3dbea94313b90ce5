"""The embedded default data set: a phase-contrast simulator that looks like PhC-C2DL-PSC.

With no data given, every cellrobust command uses frames simulated here: 576 x 720 8-bit images
of bright, elongated pancreatic-stem-cell-like spindles on a vignetted gray background, with
exact instance labels. The default :class:`SimConfig` was fitted to the real PhC-C2DL-PSC
training frames (Cell Tracking Challenge; Ulman et al., Nat. Methods 2017): background mean
~133, foreground ~8 % of the pixels, 150-310 cells per frame (~140-310 objects once touching
cells merge in a binary mask, as in the real masks), object areas median ~137 px, major/minor
axis ratio median ~2.4. ``docs/simulator.md`` lists the measured statistics, real vs
simulated, and ``tests/test_synthetic.py`` keeps that comparison as a test.

How a frame is made (``simulate_frame``):

1. cells (spindles / teardrops / ellipses, clustered, some touching, a few rounded dividing
   doublets) are rasterised into a label image and a brightness layer (``_cells``);
2. unlabelled faint protrusions, flattened cytoplasm sheets and debris (bright specks, small
   bright round bodies, dark specks, out-of-focus rings) are added: a segmenter must learn that
   these are not cells;
3. optics: gaussian point-spread function (soft edges), a faint glow, and a relief-like phase
   halo (dark fringe on one side, bright on the other) (``_texture``);
4. light and camera: vignetted, unevenly lit background times a fine correlated texture; shot and
   read noise; 8-bit saturation; a JPEG round trip and the storage gamma curve the real frames
   went through.

Frame ``i`` of a :class:`SyntheticDataset` is seeded by ``derive_rng(seed, "sim", split, i)``:
it can be regenerated alone, in any process, in any order.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cellrobust._rng import as_rng, derive_rng
from cellrobust._validation import check_choice, collect_errors
from cellrobust.data import _cells, _texture
from cellrobust.data._base import Dataset, Entry
from cellrobust.data.sample import Sample

SPLITS = ("train", "validation", "test")
#: Frames per split of :func:`load_default_dataset` when ``n_frames`` is not given.
DEFAULT_FRAMES = {"train": 24, "validation": 8, "test": 8}


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator draws from; defaults fitted to PhC-C2DL-PSC.

    Sizes are in pixels (1 px = ``pixel_size_um`` um), brightness is relative to the local
    background (0.5 = 50 % brighter) unless stated as gray levels. ``*_spread`` are standard
    deviations of the natural logarithm (log-normal variation between cells or frames).

    Attributes
    ----------
    shape : (int, int)
        Frame size (H, W) in pixels.
    pixel_size_um : float
        Pixel size recorded in ``Sample.meta`` (PSC: 1.6 um, 4x objective).
    n_cells : (int, int)
        Inclusive range of cells per frame (drawn uniformly); fewer are drawn if they do not fit.
    cell_area_px, cell_area_spread, cell_area_limits_px
        Median area of one cell (px), its log-normal spread, and hard limits.
    elongation, elongation_spread
        Median length/width ratio of a cell, and the log-spread of ``elongation - 1``.
    rounded_fraction : float
        Fraction of (non-dividing) cells that are rounded up: length/width 1.05-1.6, elliptic.
    taper_range : (float, float)
        Range of the taper exponent, within [0.5, 2]: 0.5 = ellipse, 1 = spindle with pointed
        ends, 2 = concave flanks and long thin tips.
    asymmetry : float
        Largest teardrop asymmetry (0 = symmetric ends), in [0, 0.9].
    clustering, n_clusters, cluster_radius_px
        Fraction of cells placed in clusters, how many clusters, and their gaussian radius.
    touching_fraction : float
        Probability that a new cell is placed against an existing one (tip to tip or side by
        side). Touching cells keep separate labels but merge in a binary mask.
    doublet_fraction : float
        Fraction of cells that are rounded daughter pairs of a division (bright, touching).
    protrusion_fraction : float
        Fraction of cells with a faint unlabelled process beyond the narrow tip.
    sheet_fraction, sheet_contrast
        Fraction of cells with a faint unlabelled flattened cytoplasm sheet around them
        (lamellipodia, 1.0-2.2 half-lengths in radius), and its median brightness.
    unlabelled_fraction : float
        Fraction of drawn cells left out of the labels (still visible). Default 0: labels are
        exact. The real PSC masks miss some cells (about 40 bright cell-sized unlabelled objects
        per frame, ~15 %); set ~0.15 to study training with such annotation gaps.
    cell_contrast, contrast_spread
        Median peak brightness of a cell relative to background, and its log-spread.
    psf_sigma_px : float
        Point-spread function (gaussian sigma): how soft the edges are.
    glow, glow_sigma_px
        Amplitude and width of the faint diffuse brightness around cells.
    halo_strength, halo_width_px, halo_angle_deg
        Phase-halo fringe amplitude (relative), width (px) and direction (90 = dark above,
        bright below, as in the real frames).
    background_mean, background_spread
        Mean background gray level (0-255) and its log-spread between frames.
    vignetting, vignetting_centre
        Relative fall-off of illumination at normalised radius 1, and the optical centre as a
        fraction of (H, W).
    illumination_variation : float
        Relative std of the smooth random illumination on top of vignetting (~60 px scale).
    texture, texture_sigma_px, blotches
        Relative std of the fine background texture and its correlation length; relative std
        of coarser (~8 px) blotches.
    bright_specks, dark_specks, rings
        Mean numbers per frame (Poisson) of unlabelled debris of each kind.
    read_noise, shot_noise_gain
        Camera noise: read-noise std (raw levels) and variance per raw level (shot noise).
    jpeg_quality : int or None
        Quality of the JPEG round trip (the real frames show 8x8 block artefacts); None: off.
    display_gamma, display_white_level
        Stored gray level = ``255 (raw / white_level) ** gamma`` (fitted on PSC: 1.222 and
        219, which leave every 3rd-7th gray level unused, as in the real frames); 1 and 255:
        identity.
    """

    shape: tuple[int, int] = (576, 720)
    pixel_size_um: float = 1.6
    n_cells: tuple[int, int] = (150, 310)
    cell_area_px: float = 134.0
    cell_area_spread: float = 0.22
    cell_area_limits_px: tuple[float, float] = (65.0, 400.0)
    elongation: float = 2.9
    elongation_spread: float = 0.45
    rounded_fraction: float = 0.08
    taper_range: tuple[float, float] = (0.6, 1.8)
    asymmetry: float = 0.7
    clustering: float = 0.8
    n_clusters: tuple[int, int] = (3, 9)
    cluster_radius_px: float = 60.0
    touching_fraction: float = 0.15
    doublet_fraction: float = 0.04
    protrusion_fraction: float = 0.5
    sheet_fraction: float = 0.7
    unlabelled_fraction: float = 0.0
    sheet_contrast: float = 0.045
    cell_contrast: float = 1.2
    contrast_spread: float = 0.4
    psf_sigma_px: float = 0.7
    glow: float = 0.06
    glow_sigma_px: float = 5.0
    halo_strength: float = 0.25
    halo_width_px: float = 2.0
    halo_angle_deg: float = 90.0
    background_mean: float = 132.5
    background_spread: float = 0.02
    vignetting: float = 0.24
    vignetting_centre: tuple[float, float] = (0.62, 0.45)
    illumination_variation: float = 0.02
    texture: float = 0.007
    texture_sigma_px: float = 1.5
    blotches: float = 0.005
    bright_specks: float = 25.0
    dark_specks: float = 15.0
    rings: float = 1.5
    read_noise: float = 0.7
    shot_noise_gain: float = 0.005
    jpeg_quality: int | None = 75
    display_gamma: float = 1.222
    display_white_level: float = 219.0

    def __post_init__(self) -> None:
        collect_errors(_config_errors(self), "SimConfig")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable field values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _config_errors(cfg: SimConfig) -> list[str]:
    errors: list[str] = []

    def need(ok: bool, field: str, expected: str) -> None:
        if not ok:
            errors.append(f"{field}: expected {expected}, got {getattr(cfg, field)!r}")

    def pair(field: str, low: float, *, integer: bool = False, ordered: bool = True) -> bool:
        v = getattr(cfg, field)
        kind = (int, np.integer) if integer else (int, float, np.number)
        ok = (isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, kind) for x in v)
              and all(math.isfinite(x) and x >= low for x in v) and (not ordered or v[0] <= v[1]))
        need(ok, field, f"a pair (low, high) with {low:g} <= low <= high" if ordered
             else f"a pair of numbers >= {low:g}")
        return ok

    pair("shape", 32, integer=True)
    pair("n_cells", 0, integer=True)
    pair("cell_area_limits_px", 8)
    pair("n_clusters", 1, integer=True)
    if pair("taper_range", 0.5):
        need(cfg.taper_range[1] <= 2.0, "taper_range", "values in [0.5, 2]")
    if pair("vignetting_centre", -1.0, ordered=False):
        need(max(cfg.vignetting_centre) <= 2.0, "vignetting_centre", "fractions in [-1, 2]")
    for name, low, high in _RANGES:
        value = getattr(cfg, name)
        ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and low <= value <= high
        need(ok, name, f"a number in [{low:g}, {high:g}]")
    q = cfg.jpeg_quality
    need(q is None or (isinstance(q, (int, np.integer)) and 1 <= q <= 100), "jpeg_quality",
         "None or an int in [1, 100]")
    return errors


_RANGES = (
    ("pixel_size_um", 1e-3, 1e3), ("cell_area_px", 8.0, 5000.0), ("cell_area_spread", 0.0, 2.0),
    ("elongation", 1.0, 8.0), ("elongation_spread", 0.0, 2.0), ("asymmetry", 0.0, 0.9),
    ("rounded_fraction", 0.0, 1.0),
    ("clustering", 0.0, 1.0), ("cluster_radius_px", 1.0, 1e4), ("touching_fraction", 0.0, 1.0),
    ("doublet_fraction", 0.0, 1.0), ("protrusion_fraction", 0.0, 1.0),
    ("sheet_fraction", 0.0, 1.0), ("sheet_contrast", 0.0, 1.0), ("unlabelled_fraction", 0.0, 1.0),
    ("cell_contrast", 0.0, 10.0), ("contrast_spread", 0.0, 2.0), ("psf_sigma_px", 0.0, 10.0),
    ("glow", 0.0, 2.0), ("glow_sigma_px", 0.0, 50.0), ("halo_strength", 0.0, 2.0),
    ("halo_width_px", 0.1, 20.0), ("halo_angle_deg", -360.0, 360.0),
    ("background_mean", 1.0, 254.0), ("background_spread", 0.0, 1.0), ("vignetting", 0.0, 0.8),
    ("illumination_variation", 0.0, 0.5), ("texture", 0.0, 0.5), ("texture_sigma_px", 0.0, 10.0),
    ("blotches", 0.0, 0.5), ("bright_specks", 0.0, 1e4), ("dark_specks", 0.0, 1e4),
    ("rings", 0.0, 1e3), ("read_noise", 0.0, 100.0), ("shot_noise_gain", 0.0, 10.0),
    ("display_gamma", 0.2, 5.0), ("display_white_level", 16.0, 255.0),
)


def simulate_frame(*, rng: int | np.random.Generator | None, config: SimConfig | None = None,
                   name: str = "sim/t000") -> Sample:
    """Simulate one phase-contrast frame with exact instance labels.

    Parameters
    ----------
    rng : int, numpy.random.Generator or None
        Random stream; the same seed gives the same frame, bit for bit.
    config : SimConfig, optional
        What to draw from (default: ``SimConfig()``, fitted to PhC-C2DL-PSC).
    name : str
        The sample name.

    Returns
    -------
    Sample
        ``image`` uint8 (H, W) gray levels; ``labels`` int32 (H, W), 0 = background, 1..n
        sequential, each label one 8-connected object (touching cells keep their own labels);
        ``meta``: ``pixel_size_um``, ``approximate_instances`` (False), ``source``
        (``"simulator"``), ``n_cells`` (labels), ``n_touching``, ``n_doublet_cells``,
        ``n_unlabelled`` (cells drawn but left out, see ``SimConfig.unlabelled_fraction``).
    """
    cfg = SimConfig() if config is None else config
    if not isinstance(cfg, SimConfig):
        raise TypeError(f"config: expected a SimConfig, got {type(cfg).__name__}")
    gen = as_rng(rng)
    canvas = _cells.Canvas(tuple(cfg.shape))
    counts = _cells.populate(canvas, gen, cfg)
    unlabelled = gen.random(len(canvas.cells)) < cfg.unlabelled_fraction
    labels = canvas.finish(unlabelled if cfg.unlabelled_fraction > 0 else None)
    image = _render(canvas, gen, cfg)
    meta = {"pixel_size_um": cfg.pixel_size_um, "approximate_instances": False,
            "source": "simulator", "n_cells": int(labels.max()),
            "n_touching": counts["touching"], "n_doublet_cells": counts["doublet_cells"],
            "n_unlabelled": int(unlabelled.sum()) if cfg.unlabelled_fraction > 0 else 0}
    return Sample(image=image, labels=labels, name=name, meta=meta)


def _render(canvas: _cells.Canvas, rng: np.random.Generator, cfg: SimConfig) -> np.ndarray:
    """Brightness layers -> uint8 image (optics, light, texture, camera)."""
    shape = canvas.labels.shape
    objects = canvas.body + canvas.faint + _texture.debris(shape, rng, cfg)
    objects += _texture.blur(canvas.sheets, 1.5)  # soft-edged lamellipodia
    optical = _texture.blur(objects, cfg.psf_sigma_px)
    relative = 1.0 + optical + _texture.phase_halo(optical, cfg)
    if cfg.glow > 0:
        relative += cfg.glow * _texture.glow(canvas.body, cfg.glow_sigma_px)
    texture = 1.0 + cfg.texture * _texture.smooth_noise(shape, cfg.texture_sigma_px, rng, step=2)
    if cfg.blotches > 0:
        texture += cfg.blotches * _texture.smooth_noise(shape, 8.0, rng, step=4)
    signal = _texture.illumination(shape, rng, cfg) * texture * relative
    return _texture.camera(signal, rng, cfg)


def _load(entry: Entry, *, config: SimConfig, seed: int, split: str) -> Sample:
    index = int(entry.meta["index"])
    sample = simulate_frame(rng=derive_rng(seed, "sim", split, index), config=config,
                            name=entry.name)
    return sample.with_(meta=dict(entry.meta))


class SyntheticDataset(Dataset):
    """A lazy, deterministic sequence of simulated frames (a :class:`Dataset` of format
    ``"synthetic"``); frame ``i`` is simulated on access from ``derive_rng(seed, "sim", split,
    i)``, so any frame can be regenerated alone and two accesses give identical samples.

    Parameters
    ----------
    n_frames : int
        Number of frames (>= 1).
    seed : int
        Base seed (>= 0).
    split : str
        Stream name (``"train"``, ``"validation"``, ``"test"`` or any other string): different
        splits never share frames.
    config : SimConfig, optional
        Simulator configuration (default ``SimConfig()``).
    """

    def __init__(self, n_frames: int, *, seed: int = 0, split: str = "train",
                 config: SimConfig | None = None) -> None:
        errors = []
        integer = isinstance(n_frames, (int, np.integer)) and not isinstance(n_frames, bool)
        if not integer or n_frames < 1:
            errors.append(f"n_frames: expected an int >= 1, got {n_frames!r}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            errors.append(f"seed: expected an int >= 0, got {seed!r}")
        if config is not None and not isinstance(config, SimConfig):
            errors.append(f"config: expected a SimConfig, got {type(config).__name__}")
        collect_errors(errors, "SyntheticDataset")
        cfg = SimConfig() if config is None else config
        self.config, self.seed, self.split = cfg, int(seed), str(split)
        common = {"split": self.split, "seed": self.seed, "pixel_size_um": cfg.pixel_size_um}
        entries = [Entry(name=f"sim/{self.split}/t{i:03d}", image=Path("<simulated>"),
                         mask=Path("<simulated>"), mask_kind="instance",
                         meta={**common, "index": i, "frame": i}) for i in range(int(n_frames))]
        loader = functools.partial(_load, config=cfg, seed=self.seed, split=self.split)
        super().__init__(entries, format="synthetic", path=Path("<simulated>"), loader=loader)

    def __repr__(self) -> str:
        return (f"SyntheticDataset(split={self.split!r}, seed={self.seed}, "
                f"frames={len(self)})")


def load_default_dataset(split: str = "train", *, n_frames: int | None = None, seed: int = 0,
                         config: SimConfig | None = None) -> SyntheticDataset:
    """The embedded default data set: simulated PhC-C2DL-PSC-like frames.

    Parameters
    ----------
    split : {"train", "validation", "test"}
        Which split; each has its own random stream.
    n_frames : int, optional
        Number of frames; default :data:`DEFAULT_FRAMES` (train 24, validation 8, test 8,
        i.e. 144 / 48 / 48 random 256 x 256 crops at the studies' 6 crops per frame).
    seed : int
        Base seed; the same seed gives the same frames in every process.
    config : SimConfig, optional
        Simulator configuration (default ``SimConfig()``).

    Returns
    -------
    SyntheticDataset
        Lazy: a frame is simulated (~tens of ms) only when accessed.
    """
    check_choice("split", split, SPLITS)
    n = DEFAULT_FRAMES[split] if n_frames is None else n_frames
    return SyntheticDataset(n, seed=seed, split=split, config=config)


__all__ = ["DEFAULT_FRAMES", "SPLITS", "SimConfig", "SyntheticDataset", "load_default_dataset",
           "simulate_frame"]
