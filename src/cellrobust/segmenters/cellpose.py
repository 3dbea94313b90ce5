"""Cellpose models (``cellpose:MODEL_OR_FILE``) as segmenters, on the cellpose 3.x and 4.x APIs.

TARGET is a weights file (written by cellpose training or ``net.save_model``) or the name of a
pretrained model: 4.x ``cpsam`` / ``cpsam_v2`` (Cellpose-SAM), 3.x ``cyto3``, ``nuclei``, ...,
or a model added in cellpose's GUI. Cellpose downloads a *named* model into
``~/.cellpose/models`` the first time (only on a machine that can reach it); a file is never
sent anywhere. The installed API is probed: 4.x has only ``CellposeModel(pretrained_model=...)``
(Cellpose-SAM, 3 input channels, any order), 3.x has ``Cellpose(model_type=...)`` with a size
model and ``channels=[cyto, nucleus]``. Each gray image is normalised by cellpose itself
(percentiles 1 / 99 unless told otherwise) and its masks are the instance labels.

Needs ``pip install 'cellrobust[cellpose]'`` (cellpose >= 3 with a torchvision that matches
torch).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from cellrobust._validation import DataError, InputError
from cellrobust.segmenters.protocol import file_sha256, library_versions

__all__ = ["OPTIONS", "CellposeSegmenter", "is_cellpose_file"]

#: Options of a ``cellpose:`` spec.
OPTIONS: dict[str, str] = {
    "diameter": "typical cell diameter in px; images are rescaled so it becomes the model's "
                "30 px (0 or unset: cellpose's default - 4.x: no rescaling; 3.x pretrained "
                "names: estimated per image by the size model; 3.x files: the model's mean)",
    "channel": "input channel that receives the gray image (default 0); 4.x: 0, 1 or 2 of the "
               "3 network channels, 3.x: cellpose's cytoplasm channel code 0-3 (0 = gray)",
    "channels": "3.x only: cellpose channels CYTO+NUC, e.g. 2+1 (the gray image fills R, G "
                "and B, so both read it)",
    "flow_threshold": "maximum flow error of a kept mask (default 0.4; 0 keeps every mask)",
    "cellprob_threshold": "cell-probability logit above which pixels are used (default 0; "
                          "lower finds more and larger masks)",
    "normalize": "percentile-normalise each image inside cellpose (default true); false feeds "
                 "the gray levels as they are",
    "low": "lower normalisation percentile (default 1)",
    "high": "upper normalisation percentile (default 99)",
    "batch_size": "256x256 tiles per network pass (default 8)",
    "gpu": "run on the GPU (default: when torch sees one); false forces the CPU",
    "device": "torch device: cpu, cuda, cuda:N or mps (overrides gpu)",
    "min_size": "drop masks smaller than this many px (default 15)",
    "niter": "flow dynamics iterations (default: cellpose's, 200 scaled by the diameter)",
    "bfloat16": "4.x only: run the network in bfloat16 (default true, as cellpose does)",
}

_LIBRARIES = ("cellrobust", "cellpose", "torch", "torchvision")


@dataclass
class CellposeSegmenter:
    """A cellpose model as a :class:`~cellrobust.segmenters.Segmenter`.

    Parameters
    ----------
    model : cellpose.models.CellposeModel or cellpose.models.Cellpose
    api : int
        Major cellpose API version, 3 or 4.
    name : str
    diameter : float or None
        Cell diameter in px; None = cellpose's default (see :data:`OPTIONS`).
    channels : tuple of int
        4.x: ``(c,)``, the network channel the gray image goes to; 3.x: ``(cyto, nucleus)``.
    normalize : bool or dict
        Passed to ``eval(normalize=...)`` (a dict carries ``percentile=[low, high]``).
    eval_options : dict
        ``flow_threshold``, ``cellprob_threshold``, ``batch_size``, ``min_size``, ``niter``.
    meta : dict
        ``target``, ``sha256`` of the weights file, the options as given.
    """

    model: Any
    api: int
    name: str = "cellpose"
    diameter: float | None = None
    channels: tuple[int, ...] = (0,)
    normalize: Any = True
    eval_options: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def segment(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) gray levels -> (N, H, W) int32 instance labels (0 = background)."""
        from cellrobust.segmenters.protocol import segment_each

        return segment_each(images, lambda image: self.model.eval(**self.eval_kwargs(image))[0])

    def eval_kwargs(self, image: np.ndarray) -> dict[str, Any]:
        """The keyword arguments of ``model.eval`` for one (H, W) image."""
        image = np.asarray(image, dtype=np.float32)
        kwargs = {"normalize": self.normalize, **self.eval_options}
        if self.api >= 4:
            kwargs["diameter"] = self.diameter
            if self.channels[0] == 0:
                return {"x": image, **kwargs}
            stack = np.zeros(image.shape + (3,), np.float32)
            stack[..., self.channels[0]] = image
            return {"x": stack, "channel_axis": 2, **kwargs}
        kwargs["diameter"] = self.diameter or (0 if _has_size_model(self.model) else None)
        if tuple(self.channels) == (0, 0):
            return {"x": image, "channels": [0, 0], **kwargs}
        rgb = np.repeat(image[..., None], 3, axis=2)
        return {"x": rgb, "channels": list(self.channels), "channel_axis": 2, **kwargs}

    def provenance(self) -> dict:
        """Kind, target, weights SHA-256, options, API, library versions."""
        return {"kind": "cellpose", **self.meta, "api": f"cellpose {self.api}.x",
                "diameter": self.diameter, "channels": list(self.channels),
                "normalize": self.normalize, "eval_options": dict(self.eval_options),
                "versions": library_versions(*_LIBRARIES)}


def _has_size_model(model) -> bool:
    return getattr(model, "sz", None) is not None


def is_cellpose_file(path: Path) -> bool:
    """True only where unambiguous: a suffix-less torch file named as cellpose names its own
    (``cellpose_<timestamp>`` from training, or a pretrained name such as ``cpsam``)."""
    path = Path(path)
    if not path.is_file() or path.suffix:
        return False
    known = ("cpsam", "cpsam_v2", "cpdino", "cyto", "cyto2", "cyto3", "nuclei", "tissuenet",
             "livecell")
    if not (path.name.startswith("cellpose_") or path.name.split("torch_")[0] in known):
        return False
    with open(path, "rb") as handle:
        return handle.read(2) == b"PK"  # torch.save's zip format


def _import_models(spec):
    """``cellpose.models`` and the API major version; a broken install is one line."""
    try:
        from cellpose import models
    except Exception as exc:  # noqa: BLE001 - e.g. a torchvision built for another torch
        versions = library_versions("cellpose", "torch", "torchvision")
        raise InputError(f"segmenter {spec}: cellpose is installed but cannot be imported "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0]}; installed "
                         f"{versions}); pip install 'cellrobust[cellpose]' (cellpose needs a "
                         "torchvision built for the installed torch)"
                         ) from None
    major = int(metadata.version("cellpose").split(".")[0])
    if major < 3:
        raise InputError(f"segmenter {spec}: cellpose {metadata.version('cellpose')} is too "
                         "old (cellrobust supports the 3.x and 4.x APIs); pip install "
                         "'cellrobust[cellpose]'")
    return models, (3 if hasattr(models, "Cellpose") else 4)


def _pretrained_names(models) -> list[str]:
    names = list(getattr(models, "MODEL_NAMES", []))
    try:
        names += list(models.get_user_models())
    except (AttributeError, OSError):
        pass
    return sorted(set(names))


def _device(spec, options: dict):
    import torch

    if options.get("device") is not None:
        try:
            return torch.device(str(options["device"]))
        except RuntimeError:
            raise InputError(f"segmenter {spec}: option device must be a torch device (cpu, "
                             f"cuda, cuda:N, mps), got {options['device']!r}") from None
    gpu = options.get("gpu")
    if gpu is None:
        gpu = torch.cuda.is_available()
    if not isinstance(gpu, bool):
        raise InputError(f"segmenter {spec}: option gpu must be true or false, got {gpu!r}")
    return torch.device("cuda" if gpu else "cpu")


def _load(spec, models, api: int, options: dict):
    """The cellpose model object and what it was loaded from."""
    target = spec.target
    path = Path(target).expanduser()
    device = _device(spec, options)
    kwargs: dict[str, Any] = {"device": device, "gpu": device.type != "cpu"}
    if api >= 4:
        kwargs["use_bfloat16"] = _flag(spec, options, "bfloat16", True)
    if path.is_file():
        meta = {"target": str(path), "sha256": file_sha256(path)}
        encoder = _sam_encoder(path) if api >= 4 else None
        sized = contextlib.nullcontext() if encoder in (None, VIT_L) else _sam_sized(encoder)
        with sized:  # a Cellpose-SAM trained around a smaller ViT gets that ViT
            model = _construct(spec, models.CellposeModel, pretrained_model=str(path), **kwargs)
        return model, {**meta, **({"encoder": encoder} if encoder else {})}
    names = _pretrained_names(models)
    if target not in names or any(c in target for c in "/\\") or path.suffix:
        raise InputError(f"segmenter {spec}: {target} is no existing weights file and no "
                         f"pretrained cellpose {api}.x model ({', '.join(names)}); give a "
                         "weights file or one of these names")
    if api >= 4:
        model = _construct(spec, models.CellposeModel, pretrained_model=target, **kwargs)
    elif not options.get("diameter"):  # the Cellpose wrapper adds the size model
        model = _construct(spec, models.Cellpose, model_type=target, **kwargs)
    else:
        model = _construct(spec, models.CellposeModel, model_type=target, **kwargs)
    return model, {"target": target, "pretrained": True, **_cached_digest(model)}


#: Encoder sizes of segment_anything's ViT-L, the backbone of every released Cellpose-SAM.
VIT_L = {"embed_dim": 1024, "depth": 24, "num_heads": 16, "global_attn": [5, 11, 17, 23]}


def _sam_encoder(path: Path) -> dict | None:
    """The ViT sizes of a Cellpose-SAM weights file, read from its tensor shapes.

    cellpose 4 always builds ``CPSAM`` around segment_anything's ViT-L, so a Cellpose-SAM
    trained with ``cellpose.train.train_seg`` around a smaller ViT (e.g. for tests or a CPU
    budget) loads only if that ViT is built instead. None: not a Cellpose-SAM state dict
    (CPDINO, cellpose 3, unreadable - cellpose itself then says why) or sizes that
    segment_anything cannot build (MLP ratio other than 4).
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - cellpose reports an unreadable file in one line
        return None
    if not isinstance(state, dict) or not state:
        return None
    prefix = "module." if next(iter(state)).startswith("module.") else ""
    proj = state.get(f"{prefix}encoder.patch_embed.proj.weight")
    if proj is None or f"{prefix}encoder.cls_token" in state:
        return None
    embed = int(proj.shape[0])
    blocks = f"{prefix}encoder.blocks."
    depth = len({k[len(blocks):].split(".")[0] for k in state if k.startswith(blocks)})
    rel = [state.get(f"{blocks}{i}.attn.rel_pos_h") for i in range(depth)]
    lin1 = state.get(f"{blocks}0.mlp.lin1.weight")
    if depth == 0 or any(r is None for r in rel) or lin1 is None \
            or tuple(lin1.shape) != (4 * embed, embed):
        return None
    # relative positions span 2 * 64 - 1 rows in global blocks (1024 px / 16 px tokens) and
    # 2 * 14 - 1 in windowed ones; their width is the head dimension
    return {"embed_dim": embed, "depth": depth, "num_heads": embed // int(rel[0].shape[1]),
            "global_attn": [i for i, r in enumerate(rel) if r.shape[0] == 2 * 64 - 1]}


@contextlib.contextmanager
def _sam_sized(encoder: dict):
    """segment_anything's ``vit_l`` builder replaced by one of ``encoder``'s sizes while
    cellpose constructs its ``CPSAM`` (restored afterwards)."""
    import segment_anything
    from segment_anything.build_sam import _build_sam

    registry = segment_anything.sam_model_registry
    original = registry["vit_l"]

    def build(checkpoint=None):
        return _build_sam(encoder["embed_dim"], encoder["depth"], encoder["num_heads"],
                          encoder["global_attn"], checkpoint=checkpoint)

    registry["vit_l"] = build
    try:
        yield
    finally:
        registry["vit_l"] = original


def _construct(spec, cls, **kwargs):
    try:
        return cls(**kwargs)
    except Exception as exc:  # noqa: BLE001 - any library failure is one DataError line
        text = str(exc).splitlines()[0] if str(exc) else ""
        hint = ("cellpose 4 loads only Cellpose-SAM weights: a model trained with cellpose 3 "
                "needs cellpose 3 (pip install 'cellpose<4')" if "CP4" in text else
                "check that the file is a cellpose model for the installed cellpose "
                f"{metadata.version('cellpose')}")
        raise DataError(f"segmenter {spec}: cellpose cannot load the model "
                        f"({type(exc).__name__}: {text}); {hint}") from None


def _cached_digest(model) -> dict:
    inner = getattr(model, "cp", model)  # 3.x Cellpose wraps a CellposeModel in .cp
    path = getattr(inner, "pretrained_model", None)
    path = path[0] if isinstance(path, (list, tuple)) and path else path
    if isinstance(path, (str, Path)) and Path(path).is_file():
        return {"file": str(path), "sha256": file_sha256(path)}
    return {}


def _flag(spec, options: dict, key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise InputError(f"segmenter {spec}: option {key} must be true or false, got {value!r}")
    return value


def _number(spec, options: dict, key: str, *, low: float | None = None,
            high: float | None = None, integer: bool = False):
    value = options.get(key)
    if value is None:
        return None
    kind = int if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool) \
        and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        what = "an integer" if integer else "a number"
        bounds = f" in [{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise InputError(f"segmenter {spec}: option {key} must be {what}{bounds}, got "
                         f"{value!r}")
    return value


def _normalize(spec, options: dict):
    normalize = _flag(spec, options, "normalize", True)
    low = _number(spec, options, "low", low=0, high=100)
    high = _number(spec, options, "high", low=0, high=100)
    if low is None and high is None:
        return normalize
    if not normalize:
        raise InputError(f"segmenter {spec}: low/high percentiles need normalize=true; "
                         "drop them or normalize=false")
    low, high = (1.0 if low is None else float(low)), (99.0 if high is None else float(high))
    if low >= high:
        raise InputError(f"segmenter {spec}: low ({low:g}) must be below high ({high:g})")
    return {"normalize": True, "percentile": [low, high]}


def _channels(spec, options: dict, api: int) -> tuple[int, ...]:
    if "channels" in options:
        if api >= 4:
            raise InputError(f"segmenter {spec}: option channels is for cellpose 3.x; "
                             "cellpose 4 takes channel=0, 1 or 2")
        parts = str(options["channels"]).replace(" ", "").split("+")
        if len(parts) != 2 or not all(p.isdigit() and int(p) <= 3 for p in parts):
            raise InputError(f"segmenter {spec}: option channels must be CYTO+NUC with codes "
                             f"0-3, e.g. 0+0 or 2+1, got {options['channels']!r}")
        return int(parts[0]), int(parts[1])
    channel = _number(spec, options, "channel", low=0, high=2 if api >= 4 else 3,
                      integer=True)
    channel = channel or 0
    return (channel,) if api >= 4 else (channel, 0)


def _build(spec) -> CellposeSegmenter:
    options = dict(spec.options)
    models, api = _import_models(spec)
    diameter = _number(spec, options, "diameter", low=0)
    eval_options = {
        "flow_threshold": _number(spec, options, "flow_threshold", low=0),
        "cellprob_threshold": _number(spec, options, "cellprob_threshold", low=-20, high=20),
        "batch_size": _number(spec, options, "batch_size", low=1, integer=True),
        "min_size": _number(spec, options, "min_size", low=-1, integer=True),
        "niter": _number(spec, options, "niter", low=0, integer=True),
    }
    eval_options = {k: v for k, v in eval_options.items() if v is not None}
    segmenter = CellposeSegmenter(
        model=None, api=api, name=spec.name, diameter=float(diameter) if diameter else None,
        channels=_channels(spec, options, api), normalize=_normalize(spec, options),
        eval_options=eval_options)
    segmenter.model, meta = _load(spec, models, api, options)
    segmenter.meta = {**meta, "options": options}
    return segmenter


def _kind():
    from cellrobust.segmenters.kind import Kind

    return Kind(name="cellpose", summary="a Cellpose model (cellpose 3.x or 4.x)",
                target="a weights file or a pretrained name (cpsam; 3.x: cyto3, nuclei, ...)",
                options=OPTIONS, requires=("cellpose", "torch"), extra="cellpose",
                example="cp=cellpose:cpsam,diameter=13", build=_build,
                detect=is_cellpose_file)


KIND = _kind()
