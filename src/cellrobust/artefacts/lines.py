"""Line (stripe) noise: a random gray-level offset per row or per column.

Rolling-shutter / CMOS column-amplifier fixed-pattern noise and scan-line jitter add the same
offset to a whole line: ``y[r, :] = x[r, :] + sigma * n_r``, ``n_r ~ N(0, 1)`` (rows; columns
with ``orientation="columns"``). ``sigma`` is in gray levels.
Reference: Snoeij et al., IEEE JSSC 42(12):2968 (2007) (column fixed-pattern noise).
"""

from __future__ import annotations

import numpy as np

from cellrobust._validation import check_choice
from cellrobust.artefacts.registry import Artefact, register


def _stripes(images, value, rng, *, labels=None, dtype=None, orientation="rows"):
    check_choice("orientation", orientation, ("rows", "columns"))
    n, h, w = images.shape
    if orientation == "rows":
        offsets = rng.standard_normal((n, h, 1), dtype=np.float32)
    else:
        offsets = rng.standard_normal((n, 1, w), dtype=np.float32)
    return images + np.float32(value) * offsets, [{"orientation": orientation}] * n


STRIPES = register(Artefact(
    name="stripes", kind="intensity", parameter="sigma", unit="gray levels",
    grid=(0.0, 2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 80.0),
    ladder=(0.0, 11.0, 14.0, 17.0, 19.0, 21.0), identity=0.0, limits=(0.0, np.inf),
    reference="column/row fixed-pattern noise: Snoeij et al., IEEE J. Solid-State Circuits "
              "42(12):2968 (2007)",
    description="gaussian gray-level offset per image row (or column): line noise",
    kernel=_stripes,
))
