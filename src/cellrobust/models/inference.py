"""Whole-frame U-Net inference: overlapping tiles with a halo, batched, optional TTA.

:func:`predict_tiled` normalises each frame as the checkpoint says, cuts it into ``tile`` x
``tile`` windows whose central *cores* tile the frame without overlap, runs the network on
batches of windows and keeps only each window's core: the border ``halo`` pixels of a window,
where the network lacks context, are discarded (the halo is rounded up to a multiple of
``2**depth`` so that every window sits on the same pooling grid). With the DeepImageJ model's
47 px halo (its receptive-field radius) the stitched result equals a single whole-frame pass to
within float rounding - there are no seams to blend. Frames are
reflect-padded, so any size works. ``tta=True`` averages the 8 dihedral transforms.

:class:`cellrobust.segmenters.unet.UNetSegmenter` wraps this in the segmenter protocol.
"""

from __future__ import annotations

import numpy as np
import torch

from cellrobust._validation import InputError, check_ndim, collect_errors
from cellrobust.models.defaults import DEFAULT_HALO, DEFAULT_TILE
from cellrobust.models.unet import UNet, normalise


def _dihedral(x: torch.Tensor, k: int, flip: bool, *, inverse: bool = False) -> torch.Tensor:
    if not inverse:
        x = torch.rot90(x, k, dims=(-2, -1)) if k else x
        return torch.flip(x, dims=(-1,)) if flip else x
    x = torch.flip(x, dims=(-1,)) if flip else x
    return torch.rot90(x, -k, dims=(-2, -1)) if k else x


def _run(model: UNet, batch: np.ndarray, *, device: torch.device, tta: bool,
         channels_last: bool) -> np.ndarray:
    """Probabilities for a batch (B, T, T) of normalised tiles."""
    x = torch.from_numpy(batch[:, None]).to(device)
    transforms = [(k, f) for k in range(4) for f in (False, True)] if tta else [(0, False)]
    total = torch.zeros_like(x)
    for k, flip in transforms:
        xt = _dihedral(x, k, flip)
        if channels_last:
            xt = xt.contiguous(memory_format=torch.channels_last)
        prob = torch.sigmoid(model(xt).float())
        total += _dihedral(prob, k, flip, inverse=True)
    return (total / len(transforms))[:, 0].cpu().numpy()


def predict_tiled(model: UNet, images: np.ndarray, *, normalisation: str | None = None,
                  tile: int = DEFAULT_TILE, halo: int = DEFAULT_HALO, batch_size: int = 2,
                  tta: bool = False, device: str | torch.device | None = None,
                  channels_last: bool = True) -> np.ndarray:
    """Foreground probabilities of whole frames.

    Parameters
    ----------
    model : UNet
        Network (put in eval mode here).
    images : ndarray, shape (N, H, W) or (H, W)
        Raw gray levels, any size.
    normalisation : str, optional
        Input scaling per frame (default: ``model.config.normalisation``).
    tile : int
        Window side in pixels, a multiple of ``2**depth`` and larger than ``2 * halo``.
    halo : int
        Context pixels discarded on each window side (47 for the DeepImageJ model).
    batch_size : int
        Windows per forward pass.
    tta : bool
        Average over the 8 dihedral transforms (8x slower).

    Returns
    -------
    ndarray of float32, shape like ``images``, values in [0, 1].
    """
    arr = np.asarray(images)
    check_ndim("images", arr, (2, 3), what="(H, W) or (N, H, W) gray levels")
    single = arr.ndim == 2
    arr = arr[None] if single else arr
    m = model.config.multiple
    errors = []
    pad = -(-halo // m) * m
    if tile % m or tile <= 2 * pad:
        errors.append(f"tile: expected a multiple of {m} larger than {2 * pad} (twice the halo "
                      f"rounded up to a multiple of {m}), got {tile}")
    if halo < 0 or batch_size < 1:
        errors.append(f"halo >= 0 and batch_size >= 1 expected, got {halo}, {batch_size}")
    collect_errors(errors, "tiled inference options")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.eval()
    norm = normalisation or model.config.normalisation
    out = np.stack([_predict_frame(model, normalise(img, norm), tile=tile, halo=halo, m=m,
                                   batch_size=batch_size, tta=tta, device=dev,
                                   channels_last=channels_last) for img in arr])
    return out[0] if single else out


def _layout(length: int, tile: int, pad: int, m: int) -> tuple[int, int, list[int], int]:
    """(window, core, core starts, canvas length) along one side of a frame."""
    window = min(tile, -(-length // m) * m + 2 * pad)
    core = window - 2 * pad
    starts = [i * core for i in range(-(-length // core))]
    return window, core, starts, starts[-1] + window


def _predict_frame(model: UNet, image: np.ndarray, *, tile: int, halo: int, m: int,
                   batch_size: int, tta: bool, device: torch.device,
                   channels_last: bool) -> np.ndarray:
    # The halo is rounded up to a multiple of 2**depth so every window starts on the pooling
    # grid of one fixed canvas (frame reflect-padded by ``pad`` on top/left): the tiled result
    # then equals one whole-canvas pass whatever the tile size.
    h, w = image.shape
    pad = -(-halo // m) * m
    th, ch, ys, canvas_h = _layout(h, tile, pad, m)
    tw, cw, xs, canvas_w = _layout(w, tile, pad, m)
    padded = np.pad(image, ((pad, canvas_h - pad - h), (pad, canvas_w - pad - w)),
                    mode="reflect" if min(h, w) > 1 else "edge")
    acc = np.zeros((canvas_h, canvas_w), np.float32)
    windows = [(y, x) for y in ys for x in xs]
    with torch.inference_mode():
        for i in range(0, len(windows), batch_size):
            chunk = windows[i:i + batch_size]
            batch = np.stack([padded[y:y + th, x:x + tw] for y, x in chunk]).astype(np.float32)
            probs = _run(model, batch, device=device, tta=tta, channels_last=channels_last)
            for (y, x), prob in zip(chunk, probs):
                acc[y:y + ch, x:x + cw] = prob[pad:pad + ch, pad:pad + cw]
    return acc[:h, :w]


__all__ = ["predict_tiled", "DEFAULT_HALO", "DEFAULT_TILE"]
