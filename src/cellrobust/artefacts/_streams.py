"""One random stream per image in a vectorised batch (``apply_batch(..., rng=[...])``).

:class:`Streams` stands in for a ``numpy.random.Generator`` inside a batched kernel: every
draw whose leading axis is the batch axis (``rng.random((n, 2))``, ``rng.standard_normal((n,
h, w), dtype=...)``, ``rng.integers(0, k, size=n)``, ``rng.poisson(lam)`` with ``lam`` of
shape (n, ...)) is split into one draw of shape ``(1, ...)`` from each image's own generator.
Image ``i`` therefore consumes its stream exactly as the same kernel called on that image
alone (``apply`` with ``rng[i]``) does, while the arithmetic stays vectorised over the stack.

Kernels that loop over images themselves use :func:`per_image` to get one generator per
image (the same generator N times for a single stream: numpy's fills are sequential, so
per-image draws from one stream equal one draw for the whole stack).

Only artefacts listed in :data:`VECTORISED` take this path; the others are applied image by
image. ``tests/test_artefacts_speedpaths.py`` checks row-for-row bit identity for every
registered artefact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cellrobust._threads import for_each

# Kernels whose draws all have the batch axis first and that compute nothing across images.
VECTORISED = frozenset({
    "illumination", "gaussian_noise", "speckle", "poisson", "hot_pixels", "zoom", "cell_size",
    "defocus", "motion_blur", "vignetting", "bias_field", "contrast", "gamma", "jpeg",
    "stripes",
})


def vectorised(name: str, options: dict[str, Any]) -> bool:
    """Whether artefact ``name`` with ``options`` may run on a :class:`Streams` batch.

    ``defocus`` relative to the cell diameter measured from the labels takes the median over
    the whole batch, so it runs image by image unless ``cell_diameter`` is given.
    """
    if name == "defocus" and options.get("relative_to", "px") != "px":
        return options.get("cell_diameter") is not None
    return name in VECTORISED


class Streams:
    """N generators drawn from as one: draws of shape (N, ...) take row i from stream i.

    Parameters
    ----------
    generators : sequence of numpy.random.Generator
        One per image, in batch order.
    """

    def __init__(self, generators: Sequence[np.random.Generator]) -> None:
        self.generators = list(generators)

    def __len__(self) -> int:
        return len(self.generators)

    def _split(self, method: str, size, **kwargs) -> np.ndarray:
        if size is None:
            raise TypeError(f"Streams.{method}: a scalar draw has no batch axis")
        shape = (size,) if np.isscalar(size) else tuple(size)
        if not shape or shape[0] != len(self):
            raise TypeError(f"Streams.{method}: leading axis {shape[:1]} is not the batch "
                            f"({len(self)})")
        rows = [getattr(g, method)(size=(1, *shape[1:]), **kwargs) for g in self.generators]
        return np.concatenate(rows)

    def random(self, size=None, dtype=np.float64) -> np.ndarray:
        return self._split("random", size, dtype=dtype)

    def standard_normal(self, size=None, dtype=np.float64) -> np.ndarray:
        return self._split("standard_normal", size, dtype=dtype)

    def normal(self, loc=0.0, scale=1.0, size=None) -> np.ndarray:
        return self._split("normal", size, loc=loc, scale=scale)

    def uniform(self, low=0.0, high=1.0, size=None) -> np.ndarray:
        return self._split("uniform", size, low=low, high=high)

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False) -> np.ndarray:
        return self._split("integers", size, low=low, high=high, dtype=dtype,
                           endpoint=endpoint)

    def poisson(self, lam) -> np.ndarray:
        lam = np.asarray(lam)
        if lam.ndim == 0 or lam.shape[0] != len(self):
            raise TypeError("Streams.poisson: lam needs the batch axis first")
        return np.concatenate([g.poisson(lam[i:i + 1]) for i, g in enumerate(self.generators)])


def each_image(rng: np.random.Generator | Streams, n: int,
               work: Callable[[int, np.random.Generator], None]) -> None:
    """Call ``work(i, generator_of_image_i)`` for every image of a batch of ``n``.

    With one distinct stream per image (a :class:`Streams`) the calls are independent and run
    in threads (:func:`cellrobust._threads.for_each`; numpy's random fills and ufuncs release
    the GIL), with results identical to the serial order. A single generator - or one bit
    generator behind several images' streams - is drawn from image by image, in order.
    """
    gens = per_image(rng, n)
    distinct = isinstance(rng, Streams) and len({id(g.bit_generator) for g in gens}) == n
    for_each(lambda i: work(i, gens[i]), n, parallel=distinct)


def per_image(rng: np.random.Generator | Streams, n: int) -> list[np.random.Generator]:
    """One generator per image: the streams of a :class:`Streams`, else ``rng`` n times."""
    if isinstance(rng, Streams):
        return rng.generators
    return [rng] * n
