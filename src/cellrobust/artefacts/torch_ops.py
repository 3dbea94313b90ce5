"""Torch path of the intensity artefacts, for training-time augmentation on CPU or GPU.

The same formulas as the numpy kernels (see each family module), on a float tensor of shape
(N, H, W) or (N, 1, H, W) on any device, with a per-sample severity (a float or a tensor of N
values, e.g. drawn uniformly from a training range) and an explicit ``torch.Generator``.
Random streams differ from numpy's, so outputs are statistically - not bitwise - equal to
:func:`cellrobust.artefacts.apply_batch`. Geometric artefacts (zoom) and the codec/particle
artefacts (jpeg, debris, motion_blur) are numpy-only: use them in the data loader.

>>> x = torch.rand(8, 1, 64, 64) * 255
>>> y = apply_torch(x, "gaussian_noise", torch.empty(8).uniform_(0, 30))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from cellrobust._validation import InputError, check_choice
from cellrobust.artefacts.registry import get

Value = "float | torch.Tensor"


def _per_sample(value, x: torch.Tensor) -> torch.Tensor:
    v = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if v.ndim == 0:
        v = v.expand(x.shape[0])
    if v.shape != (x.shape[0],):
        raise InputError(f"value: expected a number or {x.shape[0]} values, got {tuple(v.shape)}")
    return v.view(-1, 1, 1)


def _randn(x, gen):
    return torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)


def _rand(shape, x, gen):
    return torch.rand(shape, generator=gen, device=x.device, dtype=x.dtype)


def _illumination(x, v, gen, sigma_fraction=0.2):
    n, h, w = x.shape
    sigma = sigma_fraction * math.sqrt(h * w)
    centre = _rand((n, 2), x, gen) * torch.tensor([h - 1, w - 1], dtype=x.dtype,
                                                  device=x.device)
    rows = torch.arange(h, dtype=x.dtype, device=x.device)
    cols = torch.arange(w, dtype=x.dtype, device=x.device)
    gy = torch.exp(-((rows[None] - centre[:, :1]) ** 2) / (2 * sigma**2))
    gx = torch.exp(-((cols[None] - centre[:, 1:]) ** 2) / (2 * sigma**2))
    return x + v * gy[:, :, None] * gx[:, None, :]


def _gaussian_noise(x, v, gen):
    return x + v * _randn(x, gen)


def _speckle(x, v, gen):
    return x + x * torch.sqrt(v) * _randn(x, gen)


def _poisson(x, v, gen, read_noise=0.0):
    signal = x.clamp_min(0)
    p99 = torch.quantile(signal.flatten(1), 0.99, dim=1).clamp_min(1e-6).view(-1, 1, 1)
    scale = v / p99
    counts = torch.poisson(signal * scale, generator=gen)
    if read_noise > 0:
        counts = counts + read_noise * _randn(x, gen)
    return counts / scale


def _defocus(x, v, gen):
    sigma = v.view(-1).clamp_min(1e-3)
    half = max(int(math.ceil(4 * float(sigma.max()))), 1)
    t = torch.arange(-half, half + 1, dtype=x.dtype, device=x.device)
    k1 = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None] ** 2))
    k1 = k1 / k1.sum(dim=1, keepdim=True)  # (N, K)
    n = x.shape[0]
    pad = min(half, x.shape[1] - 1, x.shape[2] - 1)
    y = F.pad(x[None], (pad, pad, pad, pad), mode="reflect")
    if pad < half:  # image smaller than the kernel: pad the rest with edge values
        y = F.pad(y, (half - pad,) * 4, mode="replicate")
    y = F.conv2d(y, k1.view(n, 1, 1, -1), groups=n)
    y = F.conv2d(y, k1.view(n, 1, -1, 1), groups=n)
    return y[0]


def _contrast(x, v, gen, quantise=True):
    mean = x.mean(dim=(1, 2), keepdim=True)
    out = mean + v * (x - mean)
    return torch.round(out) if quantise else out


def _gamma(x, v, gen, white=None):
    """``white`` = full-scale value; default the image maximum (numpy's rule for float input)."""
    if white is None:
        white = x.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return white * (x.clamp_min(0) / white) ** v


def _hot_pixels(x, v, gen):
    u = _rand(x.shape, x, gen)
    p = v / 100.0
    hi = x.amax(dim=(1, 2), keepdim=True).expand_as(x)
    lo = x.amin(dim=(1, 2), keepdim=True).expand_as(x)
    return torch.where(u < p / 2, hi, torch.where(u < p, lo, x))


def _stripes(x, v, gen):
    return x + v * torch.randn((x.shape[0], x.shape[1], 1), generator=gen, device=x.device,
                               dtype=x.dtype)


OPS: dict[str, Callable[..., torch.Tensor]] = {
    "illumination": _illumination, "gaussian_noise": _gaussian_noise, "speckle": _speckle,
    "poisson": _poisson, "defocus": _defocus, "contrast": _contrast, "gamma": _gamma,
    "hot_pixels": _hot_pixels, "stripes": _stripes,
}


def minmax_torch(x: torch.Tensor, high: float = 255.0) -> torch.Tensor:
    """Per-image min-max rescale of (N, H, W) to [0, ``high``] (constant images -> 0)."""
    lo = x.amin(dim=(1, 2), keepdim=True)
    span = x.amax(dim=(1, 2), keepdim=True) - lo
    return torch.where(span > 0, (x - lo) * high / span.clamp_min(1e-12), torch.zeros_like(x))


def apply_torch(
    x: torch.Tensor,
    name: str,
    value,
    *,
    generator: torch.Generator | None = None,
    normalise: str | None = None,
    clip_range: tuple[float, float] = (0.0, 255.0),
    **options,
) -> torch.Tensor:
    """Apply intensity artefact ``name`` to a float tensor batch (differentiable where smooth).

    Parameters
    ----------
    x : torch.Tensor, float, shape (N, H, W) or (N, 1, H, W)
        Images in raw gray levels (e.g. 0-255).
    name : str
        One of :data:`OPS` (the intensity artefacts with a torch implementation).
    value : float or torch.Tensor of shape (N,)
        Severity parameter(s) in the artefact's unit; identity values leave samples unchanged
        except for the normalisation.
    generator : torch.Generator, optional
        Random stream (on ``x``'s device); ``None`` uses torch's default generator.
    normalise : {"minmax", "clip", "none"}, optional
        As in :func:`cellrobust.artefacts.apply_batch`; ``None`` = the artefact's default.
        ``clip`` clips to ``clip_range``.

    Returns
    -------
    torch.Tensor, same shape, dtype and device as ``x``.
    """
    check_choice("artefact (torch path)", name, OPS)
    art = get(name)
    mode = art.default_normalise if normalise is None else check_choice(
        "normalise", normalise, ("minmax", "clip", "none"))
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[1] != 1):
        raise InputError(f"x: expected shape (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise InputError(f"x: expected a floating-point tensor, got {x.dtype}")
    flat = x.reshape(x.shape[0], x.shape[-2], x.shape[-1])
    v = _per_sample(value, flat)
    if bool(((v < art.limits[0]) | (v > art.limits[1])).any()):
        raise InputError(f"{name}: {art.parameter} must lie in [{art.limits[0]:g}, "
                         f"{art.limits[1]:g}] {art.unit}")
    out = OPS[name](flat, v.clamp(max=1e12), generator, **options)
    if name == "poisson":  # infinite photons = identity
        out = torch.where(torch.isinf(v), flat, out)
    if mode == "minmax":
        out = minmax_torch(out)
    elif mode == "clip":
        out = out.clamp(*clip_range)
    return out.reshape(x.shape)
