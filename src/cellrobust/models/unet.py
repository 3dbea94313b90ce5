"""The DeepImageJ pancreatic-stem-cell U-Net and configurable variants.

The default :class:`UNetConfig` reproduces the Keras network of the DeepImageJ PhC-C2DL-PSC
model exactly (481,745 trainable parameters for one input channel):

* three encoder levels of 16, 32, 64 filters and a 128-filter bottleneck; each block is
  ``conv3x3 -> ELU -> dropout -> conv3x3 -> ELU`` with "same" padding and He-normal weights;
  dropout 0.1, 0.1, 0.2 (encoder), 0.2 (bottleneck), 0.2, 0.1, 0.1 (decoder);
* 2x2 average pooling down, 2x2 stride-2 transposed convolutions up (64, 32, 16 filters);
  the skip is the encoder block output, concatenated as ``[upsampled, skip]``;
* a final 1x1 convolution to one channel and a sigmoid (the module returns *logits*;
  :meth:`UNet.predict` applies the sigmoid).

The ``epfl`` variant (the EPFL/Neuromatch code) applies dropout after the second convolution,
takes the skip after dropout and concatenates ``[skip, upsampled]``.

Input normalisation is part of the config (``normalisation``) so it travels in checkpoints:
``max`` (x / max per image, DeepImageJ training), ``minmax``, ``none`` (raw gray levels, EPFL
code), ``percentile`` (1 - 99.8 %). See :func:`normalise`.

References
----------
Ronneberger, Fischer & Brox, "U-Net", MICCAI 2015. Gomez-de-Mariscal et al., "DeepImageJ",
Nat. Methods 18, 1192-1195 (2021).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cellrobust._validation import check_choice, collect_errors
from cellrobust.models.layers import ELU, Dropout

NORMALISATIONS = ("max", "minmax", "none", "percentile")
VARIANTS = ("deepimagej", "epfl")
ACTIVATIONS = {"elu": ELU, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU}
PERCENTILES = (1.0, 99.8)
EPS = 1e-6


@dataclass(frozen=True)
class UNetConfig:
    """Architecture and input normalisation of a U-Net (frozen, validated).

    Attributes
    ----------
    in_channels : int
        Input channels (1 for gray-level microscopy).
    width : int
        Filters of the first level; level ``i`` has ``width * 2**i`` (default 16).
    depth : int
        Encoder levels (default 3); the bottleneck has ``width * 2**depth`` filters.
        Input sides must be multiples of ``2**depth``.
    dropout : tuple of float or None
        ``2 * depth + 1`` rates: encoder levels, bottleneck, decoder levels (deepest first).
        ``None`` = DeepImageJ rates (0.1 for upper levels, 0.2 for the deepest and bottleneck).
    variant : {"deepimagej", "epfl"}
    batchnorm : bool
        Batch normalisation after every convolution (before the activation).
    activation : {"elu", "relu", "leaky_relu", "gelu"}
    normalisation : {"max", "minmax", "none", "percentile"}
        Input scaling applied by :func:`normalise` before the network.
    """

    in_channels: int = 1
    width: int = 16
    depth: int = 3
    dropout: tuple[float, ...] | None = None
    variant: str = "deepimagej"
    batchnorm: bool = False
    activation: str = "elu"
    normalisation: str = "max"

    def __post_init__(self) -> None:
        if self.dropout is not None:
            object.__setattr__(self, "dropout", tuple(float(d) for d in self.dropout))
        errors = []
        for name in ("in_channels", "width", "depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                errors.append(f"{name}: expected a positive int, got {value!r}")
        if isinstance(self.depth, int) and not 1 <= self.depth <= 6:
            errors.append(f"depth: expected 1..6, got {self.depth}")
        choices = {"variant": VARIANTS, "activation": tuple(ACTIVATIONS),
                   "normalisation": NORMALISATIONS}
        for name, options in choices.items():
            if getattr(self, name) not in options:
                errors.append(f"{name}: expected one of {', '.join(options)}, "
                              f"got {getattr(self, name)!r}")
        if self.dropout is not None and isinstance(self.depth, int):
            if len(self.dropout) != 2 * self.depth + 1:
                errors.append(f"dropout: expected {2 * self.depth + 1} rates (2 * depth + 1), "
                              f"got {len(self.dropout)}")
            if any(not 0 <= d < 1 for d in self.dropout):
                errors.append(f"dropout: rates must be in [0, 1), got {self.dropout}")
        collect_errors(errors, "UNetConfig")

    @property
    def rates(self) -> tuple[float, ...]:
        """The ``2 * depth + 1`` dropout rates actually used."""
        if self.dropout is not None:
            return self.dropout
        enc = tuple(0.2 if i == self.depth - 1 else 0.1 for i in range(self.depth))
        return enc + (0.2,) + enc[::-1]

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this (``2 ** depth``)."""
        return 2**self.depth

    def to_dict(self) -> dict[str, Any]:
        """Plain-types dict (lists, not tuples) for checkpoints and YAML."""
        data = dataclasses.asdict(self)
        data["dropout"] = None if self.dropout is None else list(self.dropout)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UNetConfig":
        """Inverse of :meth:`to_dict`; unknown keys are reported."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            collect_errors([f"unknown field(s) {unknown}; known: {sorted(known)}"], "UNetConfig")
        values = dict(data)
        if values.get("dropout") is not None:
            values["dropout"] = tuple(values["dropout"])
        return cls(**values)


def _init_he_normal(module: nn.Module) -> None:
    """Keras ``he_normal``: truncated normal, std sqrt(2 / fan_in); zero bias."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        # torch's fan_in equals Keras's for Conv2D and Conv2DTranspose kernels alike
        fan_in = nn.init._calculate_fan_in_and_fan_out(module.weight)[0]
        std = float(np.sqrt(2.0 / fan_in)) / 0.87962566103423978
        nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class _Block(nn.Sequential):
    """conv3x3 -> act -> [dropout] -> conv3x3 -> act -> [dropout] (position per variant)."""

    def __init__(self, cin: int, cout: int, rate: float, config: UNetConfig) -> None:
        layers: list[nn.Module] = []
        for i, c_in in enumerate((cin, cout)):
            layers.append(nn.Conv2d(c_in, cout, 3, padding=1, bias=not config.batchnorm))
            if config.batchnorm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(ACTIVATIONS[config.activation]())
            after_first = config.variant == "deepimagej" and i == 0
            after_second = config.variant == "epfl" and i == 1
            if (after_first or after_second) and rate > 0:
                layers.append(Dropout(rate))
        super().__init__(*layers)


class UNet(nn.Module):
    """U-Net returning logits of shape (N, 1, H, W) for input (N, C, H, W), H, W % 2**depth == 0."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        rates, depth, width = config.rates, config.depth, config.width
        self.skip_first = config.variant == "epfl"
        self.down = nn.ModuleList()
        channels = config.in_channels
        for level in range(depth):
            self.down.append(_Block(channels, width * 2**level, rates[level], config))
            channels = width * 2**level
        self.pool = nn.AvgPool2d(2)
        self.bottom = _Block(channels, width * 2**depth, rates[depth], config)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i, level in enumerate(reversed(range(depth))):
            cout = width * 2**level
            self.up.append(nn.ConvTranspose2d(cout * 2, cout, 2, stride=2))
            self.dec.append(_Block(cout * 2, cout, rates[depth + 1 + i], config))
        self.head = nn.Conv2d(width, 1, 1)
        self.apply(_init_he_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = up(x)
            x = torch.cat([skip, x] if self.skip_first else [x, skip], dim=1)
            x = dec(x)
        return self.head(x)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Foreground probabilities (sigmoid of the logits), same shape as :meth:`forward`."""
        return torch.sigmoid(self.forward(x))


def build_unet(config: UNetConfig | None = None) -> UNet:
    """Build a freshly initialised :class:`UNet` (He-normal weights, zero biases)."""
    return UNet(config or UNetConfig())


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def normalise(images: np.ndarray | torch.Tensor, method: str) -> np.ndarray | torch.Tensor:
    """Scale gray levels per image as the network expects.

    Parameters
    ----------
    images : ndarray or Tensor, shape (..., H, W)
        Raw gray levels (any numeric dtype). Every leading index is one image, scaled alone.
    method : {"max", "minmax", "none", "percentile"}
        ``max``: x / max(x); ``minmax``: (x - min) / (max - min); ``none``: x as float32;
        ``percentile``: (x - p1) / (p99.8 - p1), not clipped. A tiny epsilon avoids 0/0.

    Returns
    -------
    ndarray or Tensor of float32, same shape.
    """
    check_choice("normalisation", method, NORMALISATIONS)
    if isinstance(images, torch.Tensor):
        return _normalise_torch(images.float(), method)
    x = np.asarray(images, dtype=np.float32)
    if method == "none":
        return x
    lo, hi = normalisation_bounds(x, method)
    return ((x - lo) / (hi - lo + EPS)).astype(np.float32)


def normalisation_bounds(images: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """The gray levels :func:`normalise` maps to 0 and 1 (before its epsilon), per image.

    Parameters
    ----------
    images : ndarray, shape (..., H, W)
    method : {"max", "minmax", "percentile"}

    Returns
    -------
    lo, hi : ndarray of float32, shape (..., 1, 1)
    """
    flat = np.asarray(images, dtype=np.float32)
    flat = flat.reshape(*flat.shape[:-2], -1)
    if method == "percentile":
        lo, hi = (np.percentile(flat, p, axis=-1)[..., None, None] for p in PERCENTILES)
    else:
        hi = flat.max(axis=-1)[..., None, None]
        lo = flat.min(axis=-1)[..., None, None] if method == "minmax" else np.zeros_like(hi)
    return lo, hi


def _normalise_torch(x: torch.Tensor, method: str) -> torch.Tensor:
    if method == "none":
        return x
    flat = x.flatten(-2)
    if method == "percentile":
        lo, hi = (q[..., None] for q in _quantiles_torch(flat, [p / 100 for p in PERCENTILES]))
    else:
        hi = flat.amax(dim=-1)[..., None, None]
        lo = flat.amin(dim=-1)[..., None, None] if method == "minmax" else torch.zeros_like(hi)
    return (x - lo) / (hi - lo + EPS)


def _quantiles_torch(flat: torch.Tensor, qs: list[float]) -> list[torch.Tensor]:
    """Quantiles ``qs`` (fractions) of ``flat`` (..., n) along its last axis, each (..., 1).

    The rule is ``torch.quantile``'s (and NumPy's) linear interpolation between the order
    statistics at ``q (n - 1)``; it is written with ``sort`` and ``gather`` because
    ``torch.quantile`` has no ONNX operator, and ``n`` is computed from the data so that a
    traced TorchScript or ONNX graph keeps the image size dynamic.
    """
    ordered = torch.sort(flat, dim=-1).values
    last = torch.ones_like(flat, dtype=torch.float64).sum(-1, keepdim=True) - 1
    out = []
    for q in qs:
        pos = last * q
        below = torch.floor(pos)
        low = torch.gather(ordered, -1, below.long())
        high = torch.gather(ordered, -1, torch.ceil(pos).long())
        out.append(low + (pos - below).to(flat.dtype) * (high - low))
    return out


class NormalisedUNet(nn.Module):
    """Wrapper taking raw gray levels (N, C, H, W): normalise per image, net, sigmoid.

    Used for exports so that a TorchScript/ONNX file needs no separate preprocessing.
    """

    def __init__(self, net: UNet) -> None:
        super().__init__()
        self.net = net
        self.method = net.config.normalisation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.method != "none":
            x = _normalise_torch(x, self.method)
        return torch.sigmoid(self.net(x))


__all__ = ["UNetConfig", "UNet", "build_unet", "count_parameters", "normalise",
           "NormalisedUNet", "NORMALISATIONS", "VARIANTS"]
