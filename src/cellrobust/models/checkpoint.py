"""Self-describing, atomically written U-Net checkpoints, loaded without unpickling objects.

A checkpoint is a plain dict of tensors and JSON-like values (so ``torch.load(...,
weights_only=True)`` can read it and never runs code from a model file)::

    format          "cellrobust-unet"
    format_version  1
    package_version cellrobust version that wrote it
    model_config    UNetConfig.to_dict() - architecture *and* input normalisation
    normalisation   the input normalisation again, for readers that skip model_config
    state_dict      model weights (CPU tensors, no DDP/compile prefixes)
    meta            epoch, best metric name/value, training config, data, ... (JSON-like)
    train_state     optional: optimizer/scheduler/early-stopping/RNG state for ``--resume``
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from cellrobust import __version__
from cellrobust._io import atomic_path
from cellrobust._limits import check_model_size
from cellrobust._validation import DataError, InputError
from cellrobust.models.unet import UNet, UNetConfig, build_unet

FORMAT = "cellrobust-unet"
FORMAT_VERSION = 1
_PREFIXES = ("module.", "_orig_mod.")


def clean_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copy of ``model``'s weights without DDP (``module.``) / compile prefixes."""
    state = {}
    for key, value in model.state_dict().items():
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        state[key] = value.detach().to("cpu", copy=True).contiguous()
    return state


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    config: UNetConfig,
    *,
    meta: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` with its config atomically (temporary file, fsync-free rename).

    Parameters
    ----------
    path : path-like
        Target file (``.pt``); its folder is created.
    model : torch.nn.Module
        The :class:`~cellrobust.models.unet.UNet` (possibly DDP-wrapped or compiled).
    config : UNetConfig
        Architecture and input normalisation of ``model``.
    meta : dict, optional
        JSON-like values (str, int, float, bool, None, lists, dicts) describing the training.
    train_state : dict, optional
        Tensors and JSON-like values needed to resume training exactly.
    """
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "model_config": config.to_dict(),
        "normalisation": config.normalisation,
        "state_dict": clean_state_dict(model),
        "meta": dict(meta or {}),
        "train_state": train_state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load the raw checkpoint dict with ``weights_only=True`` and check its structure.

    Raises
    ------
    DataError
        One line naming the file when it is missing, unreadable, not a cellrobust
        checkpoint, from a newer or invalid format version, or lacks ``model_config`` /
        ``state_dict`` / a dict ``meta``.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # torch warns on some legacy/odd files: one line only
            warnings.simplefilter("ignore")
            payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/untrusted files
        raise DataError(f"{file}: cannot read checkpoint ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); it may be truncated "
                        "or not a cellrobust model file") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"{file}: not a cellrobust U-Net checkpoint (expected format {FORMAT!r})")
    _check_structure(file, payload)
    return payload


def _check_structure(file: Path, payload: dict[str, Any]) -> None:
    version = payload.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DataError(f"{file}: invalid checkpoint format_version {version!r}; expected an "
                        f"integer 1..{FORMAT_VERSION} - the file is damaged or was edited")
    if version > FORMAT_VERSION:
        raise DataError(f"{file}: checkpoint format {version} is newer than this cellrobust "
                        f"supports ({FORMAT_VERSION}); upgrade cellrobust")
    for key, kind in (("model_config", dict), ("state_dict", dict)):
        if not isinstance(payload.get(key), kind):
            found = "missing" if key not in payload else type(payload[key]).__name__
            raise DataError(f"{file}: checkpoint {key!r} is {found}, expected a dict; the file "
                            "is damaged or was not written by cellrobust")
    meta = payload.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise DataError(f"{file}: checkpoint 'meta' is a {type(meta).__name__}, expected a "
                        "dict; the file is damaged or was edited")
    bad = [k for k, v in payload["state_dict"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(f"{file}: state_dict entries {bad[:3]} are not tensors; the file is "
                        "damaged or was edited")


def _config_of(file: Path, payload: dict[str, Any]) -> UNetConfig:
    try:
        config = UNetConfig.from_dict(payload["model_config"])
    except (InputError, TypeError) as exc:
        raise DataError(f"{file}: invalid model_config ({exc}); the file is damaged or was "
                        "edited") from exc
    check_model_size(config.width, config.depth, in_channels=config.in_channels,
                     what=f"{file}: model_config")
    return config


def _load_weights(file: Path, model: UNet, state: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    problems = [f"{label} {_few(keys)}" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    if problems:
        raise DataError(f"{file}: weights do not match the stored model config: "
                        f"{'; '.join(problems)} - the file is damaged or was edited")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise DataError(f"{file}: non-finite weights (NaN or inf) in {_few(bad)}; the model "
                        "diverged or the file is damaged - use an earlier checkpoint")
    model.load_state_dict(state)


def _few(keys: list[str]) -> str:
    more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
    return ", ".join(keys[:3]) + more


def load_checkpoint(
    path: str | os.PathLike, *, device: str | torch.device = "cpu"
) -> tuple[UNet, UNetConfig, dict[str, Any]]:
    """Rebuild the model of a checkpoint in eval mode.

    The model size is checked from ``model_config`` before anything is built (cap
    ``model_parameters`` of :mod:`cellrobust._limits`), and the weights are checked tensor by
    tensor (names, shapes, finiteness) before they are loaded.

    Returns
    -------
    model : UNet
        Weights loaded, ``eval()`` mode, on ``device``.
    config : UNetConfig
    meta : dict
        The checkpoint's ``meta`` plus ``format_version``, ``package_version`` and ``path``.

    Raises
    ------
    DataError
        One line naming the file and what is wrong with it.
    """
    file = Path(path)
    payload = read_checkpoint(file)
    config = _config_of(file, payload)
    model = build_unet(config)
    _load_weights(file, model, payload["state_dict"])
    meta = dict(payload.get("meta") or {})
    meta.update(format_version=payload["format_version"],
                package_version=payload.get("package_version"), path=str(path))
    return model.to(device).eval(), config, meta


__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "clean_state_dict",
           "FORMAT_VERSION"]
