"""A numpy-only bench for testing the harness itself (cheap to start in any environment)."""

from __future__ import annotations

import numpy as np


class Spin:
    """Sums a random vector ``reps`` times; ``values`` is the sum (for the identity check)."""

    def __init__(self, *, n: int = 10_000, reps: int = 1, offset: float = 0.0):
        self.x = np.random.default_rng(0).random(n)
        self.reps, self.offset = reps, offset
        self.info = {"versions": {"numpy": np.__version__}}

    def values(self) -> list[float]:
        return [float(self.x.sum()) + self.offset]

    def step(self) -> dict:
        for _ in range(self.reps):
            self.x.sum()
        return {"units": self.reps}


def spin(**kw):
    return Spin(**kw)
