"""Explicit, process-independent random streams.

Library code never seeds a global generator. Every stochastic function takes ``rng`` (``None``,
an ``int`` or a :class:`numpy.random.Generator`) and normalises it once with :func:`as_rng`.
Streams that must be identical across processes (the sweep gives every segmenter the same
corrupted image) are derived from *what* they are for with :func:`derive_rng`, hashing names with
SHA-256 (never Python's per-process randomised ``hash``).
"""

from __future__ import annotations

import hashlib

import numpy as np

RngLike = "int | np.random.Generator | None"


def as_rng(rng: int | np.random.Generator | None) -> np.random.Generator:
    """Return a Generator: ``rng`` itself, or a new one seeded by the int/None given."""
    if isinstance(rng, np.random.Generator):
        return rng
    check_rng(rng)
    return np.random.default_rng(rng)


def check_rng(rng: object) -> None:
    """Raise TypeError unless ``rng`` is what :func:`as_rng` accepts (builds no generator)."""
    if not (rng is None or isinstance(rng, (int, np.integer, np.random.Generator))):
        raise TypeError(f"rng: expected None, an int or numpy.random.Generator, "
                        f"got {type(rng)!r}")


def stable_key(part: object) -> int:
    """Map an int or string to a non-negative 63-bit int, identically in every process."""
    if isinstance(part, (int, np.integer)) and not isinstance(part, bool) and part >= 0:
        return int(part)
    digest = hashlib.sha256(repr(part).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def derive_seed(*parts: object) -> list[int]:
    """Entropy list for ``np.random.default_rng`` from ints/strings, e.g. (seed, name, artefact)."""
    return [stable_key(p) for p in parts]


def derive_rng(*parts: object) -> np.random.Generator:
    """A generator determined only by ``parts``: ``derive_rng(seed, sample, artefact, level)``."""
    return np.random.default_rng(derive_seed(*parts))
