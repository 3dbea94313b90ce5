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

from cellrobust._validation import check_ndim, collect_errors
from cellrobust.models.defaults import DEFAULT_HALO, DEFAULT_TILE
from cellrobust.models.unet import UNet, normalise


def _dihedral(x: torch.Tensor, k: int, flip: bool, *, inverse: bool = False) -> torch.Tensor:
    if not inverse:
        x = torch.rot90(x, k, dims=(-2, -1)) if k else x
        return torch.flip(x, dims=(-1,)) if flip else x
    x = torch.flip(x, dims=(-1,)) if flip else x
    return torch.rot90(x, -k, dims=(-2, -1)) if k else x


def _run(forward, batch: np.ndarray, *, device: torch.device, tta: bool) -> np.ndarray:
    """Probabilities for a batch (B, T, T) of normalised tiles; ``forward`` gives logits."""
    x = torch.from_numpy(batch[:, None]).to(device)
    transforms = [(k, f) for k in range(4) for f in (False, True)] if tta else [(0, False)]
    total = torch.zeros_like(x)
    for k, flip in transforms:
        prob = torch.sigmoid(forward(_dihedral(x, k, flip)).float())
        total += _dihedral(prob, k, flip, inverse=True)
    return (total / len(transforms))[:, 0].cpu().numpy()


def _eager(model: UNet, channels_last: bool):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return model(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    return forward


def predict_tiled(model: UNet, images: np.ndarray, *, normalisation: str | None = None,
                  tile: int = DEFAULT_TILE, halo: int = DEFAULT_HALO, batch_size: int = 2,
                  tta: bool = False, device: str | torch.device | None = None,
                  channels_last: bool = True, whole_halo: int | None = None,
                  runner=None) -> np.ndarray:
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
        Windows per forward pass (windows of all frames are batched together).
    tta : bool
        Average over the 8 dihedral transforms (8x slower).
    whole_halo : int, optional
        Context for a frame that fits one window (its sides rounded up to ``2**depth``, plus
        twice the halo, at most ``tile``): it runs as one pass reflect-padded by this many px
        (rounded up to ``2**depth``; 0 = only up to the pooling grid, the network's zero "same"
        padding supplies the border) instead of the full halo. The result equals that single
        padded pass (tested) and differs from the full-halo result only within ``halo`` px of
        the border. Reflected context is fabricated: on the PSC validation split it brought
        256² crops no closer to the network's answer with their real neighbours
        (``scripts/patch_context.py``), so the segmenters default to 0
        (:data:`cellrobust.segmenters.unet.WHOLE_HALO`). None: always the full halo.
    runner : cellrobust.models.fastpath.InferenceRunner, optional
        Chooses the execution path and windows per pass (default: eager, ``batch_size``).

    Returns
    -------
    ndarray of float32, shape like ``images``, values in [0, 1].
    """
    arr = np.asarray(images)
    check_ndim("images", arr, (2, 3), what="(H, W) or (N, H, W) gray levels")
    single = arr.ndim == 2
    arr = arr[None] if single else arr
    m = model.config.multiple
    pad = _check_options(tile, halo, batch_size, m)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.eval()
    norm = normalisation or model.config.normalisation
    h, w = arr.shape[1:]
    if whole_halo is not None and _fits(h, tile, pad, m) and _fits(w, tile, pad, m):
        pad = min(pad, -(-max(0, int(whole_halo)) // m) * m)
    canvases = [_canvas(normalise(img, norm), tile=tile, pad=pad, m=m) for img in arr]
    out = _predict_canvases(model, canvases, (h, w), tile=tile, pad=pad, m=m,
                            batch_size=batch_size, tta=tta, device=dev,
                            channels_last=channels_last, runner=runner)
    return out[0] if single else out


def _check_options(tile: int, halo: int, batch_size: int, m: int) -> int:
    errors = []
    pad = -(-halo // m) * m
    if tile % m or tile <= 2 * pad:
        errors.append(f"tile: expected a multiple of {m} larger than {2 * pad} (twice the halo "
                      f"rounded up to a multiple of {m}), got {tile}")
    if halo < 0 or batch_size < 1:
        errors.append(f"halo >= 0 and batch_size >= 1 expected, got {halo}, {batch_size}")
    collect_errors(errors, "tiled inference options")
    return pad


def _fits(length: int, tile: int, pad: int, m: int) -> bool:
    """Whether one side of a frame fits a single window with the halo."""
    return -(-length // m) * m + 2 * pad <= tile


def _layout(length: int, tile: int, pad: int, m: int) -> tuple[int, int, list[int], int]:
    """(window, core, core starts, canvas length) along one side of a frame."""
    window = min(tile, -(-length // m) * m + 2 * pad)
    core = window - 2 * pad
    starts = [i * core for i in range(-(-length // core))]
    return window, core, starts, starts[-1] + window


def _canvas(image: np.ndarray, *, tile: int, pad: int, m: int) -> np.ndarray:
    """The frame reflect-padded by ``pad`` on top/left and up to the window grid."""
    # The halo is rounded up to a multiple of 2**depth so every window starts on the pooling
    # grid of one fixed canvas: the tiled result then equals one whole-canvas pass whatever
    # the tile size.
    h, w = image.shape
    canvas_h = _layout(h, tile, pad, m)[3]
    canvas_w = _layout(w, tile, pad, m)[3]
    widths = ((pad, canvas_h - pad - h), (pad, canvas_w - pad - w))
    mode = "reflect" if min(h, w) > 1 else "edge"
    return np.pad(image, widths, mode=mode).astype(np.float32, copy=False)


def _predict_canvases(model: UNet, canvases: list[np.ndarray], shape: tuple[int, int], *,
                      tile: int, pad: int, m: int, batch_size: int, tta: bool,
                      device: torch.device, channels_last: bool, runner) -> np.ndarray:
    h, w = shape
    th, ch, ys, _ = _layout(h, tile, pad, m)
    tw, cw, xs, _ = _layout(w, tile, pad, m)
    acc = np.zeros((len(canvases), *canvases[0].shape), np.float32)
    windows = [(f, y, x) for f in range(len(canvases)) for y in ys for x in xs]
    forward, batch = _eager(model, channels_last), batch_size
    with torch.inference_mode():
        if runner is not None:
            sample = np.stack([canvases[f][y:y + th, x:x + tw] for f, y, x in windows[:8]])
            plan = runner.plan(sample, batch_size=batch_size)
            forward, batch = (lambda x: runner.forward(x, plan)), plan.batch_size
        for i in range(0, len(windows), batch):
            chunk = windows[i:i + batch]
            stack = np.stack([canvases[f][y:y + th, x:x + tw] for f, y, x in chunk])
            probs = _run(forward, stack, device=device, tta=tta)
            for (f, y, x), prob in zip(chunk, probs):
                acc[f, y:y + ch, x:x + cw] = prob[pad:pad + ch, pad:pad + cw]
    return acc[:, :h, :w]


__all__ = ["predict_tiled", "DEFAULT_HALO", "DEFAULT_TILE"]
