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
from pathlib import Path
from typing import Any

import torch

from cellrobust import __version__
from cellrobust._io import atomic_path
from cellrobust._validation import DataError
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
    """Load the raw checkpoint dict with ``weights_only=True`` and check its format.

    Raises
    ------
    DataError
        When the file is missing, unreadable, not a cellrobust checkpoint or from a newer
        format version.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: checkpoint not found")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/untrusted files
        raise DataError(f"{file}: cannot read checkpoint ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); it may be truncated "
                        "or not a cellrobust model file") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"{file}: not a cellrobust U-Net checkpoint (expected format {FORMAT!r})")
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise DataError(f"{file}: checkpoint format {payload['format_version']} is newer than "
                        f"this cellrobust supports ({FORMAT_VERSION}); upgrade cellrobust")
    return payload


def load_checkpoint(
    path: str | os.PathLike, *, device: str | torch.device = "cpu"
) -> tuple[UNet, UNetConfig, dict[str, Any]]:
    """Rebuild the model of a checkpoint in eval mode.

    Returns
    -------
    model : UNet
        Weights loaded, ``eval()`` mode, on ``device``.
    config : UNetConfig
    meta : dict
        The checkpoint's ``meta`` plus ``format_version``, ``package_version`` and ``path``.
    """
    payload = read_checkpoint(path)
    config = UNetConfig.from_dict(payload["model_config"])
    model = build_unet(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise DataError(f"{path}: weights do not match the stored model config "
                        f"({str(exc).splitlines()[0]})") from exc
    meta = dict(payload.get("meta") or {})
    meta.update(format_version=payload["format_version"],
                package_version=payload.get("package_version"), path=str(path))
    return model.to(device).eval(), config, meta


__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "clean_state_dict",
           "FORMAT_VERSION"]
