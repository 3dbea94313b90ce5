"""The artefact registry: one :class:`Artefact` record per name, severity tables as data.

Every artefact family module registers its artefacts at import time with :func:`register`.
An artefact is a *batched kernel* plus metadata: the physical parameter it is graded by, its
unit, the continuous grid used for robustness curves, named study presets, and a six-value
ladder (severity levels 0..5, level 0 = identity) calibrated on PhC-C2DL-PSC.

Kernel signatures (``images`` is a float32 ``(N, H, W)`` copy of the input, ``rng`` a numpy
Generator; a kernel registered with ``raw_input=True`` gets the caller's array itself, in its
own dtype and read-only by contract, and converts what it needs image by image):

- intensity: ``kernel(images, value, rng, *, labels, **options) -> (images, params)``
- geometric: ``kernel(images, labels, value, rng, **options) -> (images, labels, params)``

where ``params`` is a list of N JSON-serialisable dicts (the drawn parameters per image).

A *frame-level* artefact also has a ``frame_kernel(frame, value, rng, *, size, normalise) ->
list of (Sample, params)``: it cuts its own ``size x size`` patches from a whole annotated frame
(the study's cell-size protocol, where the number of patches depends on the severity). The
sweep uses it when it has the evaluation frames; ``kernel`` still applies it to single images.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cellrobust._validation import InputError, check_choice

KINDS = ("intensity", "geometric")
#: Largest severity magnitude accepted where an artefact's range is unbounded (``limits``
#: reaching ``inf``): beyond it the float32 kernels overflow (``1e308`` sigma -> NaN image).
MAX_SEVERITY = 1e12
NORMALISE = ("minmax", "clip", "none")


@dataclass(frozen=True)
class Artefact:
    """Metadata and kernel of one registered artefact.

    Attributes
    ----------
    name : str
        Registry name (``"gaussian_noise"``).
    kind : {"intensity", "geometric"}
        Intensity artefacts never touch labels; geometric ones resample them (nearest
        neighbour, instance ids preserved) with the same drawn parameters.
    parameter : str
        Name of the severity parameter (``"sigma"``, ``"amplitude"``, ``"zoom"``...).
    unit : str
        Physical unit of the parameter (``"gray levels"``, ``"px"``, ``"photons"``...).
    grid : tuple of float
        Continuous grid for robustness curves; ``grid[0]`` is the identity value.
    ladder : tuple of float
        Six values: severity levels 0..5 (ImageNet-C style), ``ladder[0]`` = identity.
    identity : float
        The parameter value that adds no artefact (no rng drawn; only the output
        normalisation is applied).
    limits : tuple of float
        Closed physical range of valid values ``(low, high)``; ``math.inf`` allowed.
    presets : dict of str to tuple of float
        Named grids, e.g. the studies' grids (``"study"``) and training ranges.
    default_normalise : {"minmax", "clip", "none"}
        Output normalisation used when ``normalise=None`` is passed to ``apply``.
    reference : str
        Where the formula comes from.
    description : str
        One-line description shown by ``cellrobust artefacts list``.
    kernel : callable
        The batched implementation (see module docstring).
    frame_kernel : callable or None
        Frame-level implementation (see module docstring); ``None`` for patch-level artefacts.
    raw_input : bool
        The kernel takes the input array as given (any dtype, never written) instead of a
        float32 copy of the whole stack - for kernels that convert image by image anyway
        (JPEG goes to 8 bits), where the stack-wide copy would only cost memory traffic.
    draws : bool
        The kernel draws random numbers. ``False`` (deterministic artefacts such as JPEG):
        ``apply`` validates ``rng`` but builds no generator and passes ``None``.
    """

    name: str
    kind: str
    parameter: str
    unit: str
    grid: tuple[float, ...]
    ladder: tuple[float, ...]
    identity: float
    limits: tuple[float, float]
    reference: str
    description: str
    presets: dict[str, tuple[float, ...]] = field(default_factory=dict)
    default_normalise: str = "clip"
    kernel: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    frame_kernel: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    raw_input: bool = False
    draws: bool = True

    @property
    def scope(self) -> str:
        """``"frame"`` when the sweep cuts this artefact's patches from whole frames."""
        return "patch" if self.frame_kernel is None else "frame"

    def __post_init__(self) -> None:
        as_floats = lambda values: tuple(float(v) for v in values)  # noqa: E731
        object.__setattr__(self, "grid", as_floats(self.grid))
        object.__setattr__(self, "ladder", as_floats(self.ladder))
        object.__setattr__(self, "identity", float(self.identity))
        object.__setattr__(self, "presets", {k: as_floats(v) for k, v in self.presets.items()})
        errors = []
        if self.kind not in KINDS:
            errors.append(f"kind must be one of {KINDS}, got {self.kind!r}")
        if len(self.ladder) != 6:
            errors.append(f"ladder must hold 6 values (levels 0..5), got {len(self.ladder)}")
        elif self.ladder[0] != self.identity:
            errors.append(f"ladder[0] must be the identity {self.identity}, got {self.ladder[0]}")
        if not self.grid or self.grid[0] != self.identity:
            errors.append(f"grid must start with the identity {self.identity}")
        if self.default_normalise not in NORMALISE:
            errors.append(f"default_normalise must be one of {NORMALISE}")
        for value in (*self.grid, *self.ladder, *(v for g in self.presets.values() for v in g)):
            if not self.limits[0] <= value <= self.limits[1]:
                errors.append(f"value {value} outside limits {self.limits}")
                break
        if errors:
            raise InputError(f"invalid artefact {self.name!r}: " + "; ".join(errors))

    def check_value(self, value: float) -> float:
        """Validate a severity value; return it as a float.

        A value must be finite, within :attr:`limits` and at most :data:`MAX_SEVERITY` in
        magnitude (larger values overflow the float32 kernels into NaN). The one non-finite
        value accepted is an infinite :attr:`identity` (Poisson's ``inf`` photons = no noise).

        Raises
        ------
        InputError
            Naming the artefact, its parameter, the valid range and the value received.
        """
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"{self.name}: {self.parameter} must be a number, got {value!r}") \
                from None
        if number == self.identity:
            return number
        low, high = self.limits
        high = min(high, MAX_SEVERITY)
        if not math.isfinite(number) or not low <= number <= high:
            identity = (f" or {self.identity:g} (the identity)"
                        if not math.isfinite(self.identity) else "")
            raise InputError(
                f"{self.name}: {self.parameter} must be a finite number in [{low:g}, {high:g}] "
                f"{self.unit}{identity}, got {value!r}; the ladder is {_fmt(self.ladder)}"
            )
        return number

    def value_at(self, level: int) -> float:
        """Parameter value of severity ``level`` (0..5) on the ladder."""
        if isinstance(level, bool) or not isinstance(level, numbers.Integral) \
                or not 0 <= int(level) <= 5:
            raise InputError(f"{self.name}: level must be an integer 0..5, got {level!r}")
        return float(self.ladder[int(level)])

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable description (everything but the kernel)."""
        return {
            "name": self.name, "kind": self.kind, "scope": self.scope,
            "parameter": self.parameter,
            "unit": self.unit, "identity": self.identity, "limits": list(self.limits),
            "ladder": list(self.ladder), "grid": list(self.grid),
            "presets": {k: list(v) for k, v in self.presets.items()},
            "default_normalise": self.default_normalise,
            "reference": self.reference, "description": self.description,
        }


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


_REGISTRY: dict[str, Artefact] = {}


def register(artefact: Artefact) -> Artefact:
    """Add ``artefact`` to the registry (names are unique); return it."""
    if artefact.kernel is None:
        raise InputError(f"artefact {artefact.name!r}: a kernel is required")
    if artefact.name in _REGISTRY:
        raise InputError(f"artefact {artefact.name!r} is already registered")
    _REGISTRY[artefact.name] = artefact
    return artefact


def names() -> list[str]:
    """Registered artefact names, in registration order."""
    return list(_REGISTRY)


def get(name: str) -> Artefact:
    """Return the :class:`Artefact` called ``name``.

    Raises
    ------
    InputError
        Listing every valid name and suggesting the closest one.
    """
    check_choice("artefact", name, _REGISTRY)
    return _REGISTRY[name]
