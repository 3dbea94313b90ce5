"""The unit of data that flows through cellrobust: one image with its instance labels."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Sample:
    """One 2-D image and its instance labels.

    Attributes
    ----------
    image : ndarray, shape (H, W)
        Gray-level image; uint8, uint16 or float32. Colour input is converted by the readers.
    labels : ndarray of int32, shape (H, W), or None
        Instance labels, 0 = background, 1..n = cells (sequential). ``None`` when the frame has
        no annotation (it can be predicted but not scored).
    name : str
        Stable identifier (e.g. ``"psc/train/t150"``); seeds per-sample random streams.
    meta : dict
        Known metadata: ``pixel_size_um`` (float), ``approximate_instances`` (bool, True when
        instances were derived from a binary mask by connected components), ``source`` (path).
    """

    image: np.ndarray
    labels: np.ndarray | None
    name: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.labels is not None and self.labels.shape != self.image.shape[:2]:
            from cellrobust._validation import DataError

            raise DataError(
                f"{self.name}: image shape {self.image.shape} and label shape "
                f"{self.labels.shape} differ; masks must match their images pixel for pixel"
            )

    def __repr__(self) -> str:
        """Name, dtypes, shapes and object count - never the pixel values."""
        labels = "None"
        if self.labels is not None:
            labels = f"{_describe(self.labels)}, {_n_objects(self.labels)} objects"
        return (f"Sample(name={self.name!r}, image={_describe(self.image)}, labels={labels}, "
                f"meta keys={sorted(self.meta)})")

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return tuple(self.image.shape[:2])  # type: ignore[return-value]

    def with_(self, **changes: Any) -> "Sample":
        """Return a copy with fields replaced (``meta`` is merged, not replaced)."""
        if "meta" in changes:
            changes["meta"] = {**self.meta, **changes["meta"]}
        return replace(self, **changes)


def _describe(array: np.ndarray) -> str:
    return f"{array.dtype} {'x'.join(str(n) for n in array.shape)}"


def _n_objects(labels: np.ndarray) -> int:
    """Distinct non-zero labels (cheap for sequential labels: their maximum)."""
    return int(np.count_nonzero(np.unique(labels)))
