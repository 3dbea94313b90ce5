"""Connected components of 2-D masks: the one home of the labelling rule.

:func:`label_components` numbers the objects of a mask 1..n in raster order of their first
pixel, exactly as :func:`scipy.ndimage.label` does, but with OpenCV's scan (faster). The
U-Net's and the baselines' post-processing, the cell counts and the DoG calibration use it.
"""

from __future__ import annotations

import numpy as np


def label_components(mask: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Connected components of a 2-D mask: (labels int32 (H, W), number of objects).

    Numbered 1..n in raster order of each object's first pixel, exactly as
    :func:`scipy.ndimage.label` with the full (8) or cross (4) structure numbers them; computed
    with OpenCV's Wu-Otoo-Suzuki scan (``CCL_WU``; Wu, Otoo & Suzuki, Pattern Anal. Appl. 12,
    2009), 1.5-2.5x faster than ``ndi.label`` on PSC masks (identity tested against
    ``ndi.label``, also with OpenCV's parallel strips).
    """
    import cv2

    mask = np.ascontiguousarray(mask, dtype=bool)
    if mask.size == 0:
        return np.zeros(mask.shape, dtype=np.int32), 0
    n, labels = cv2.connectedComponentsWithAlgorithm(mask.view(np.uint8), int(connectivity),
                                                    cv2.CV_32S, cv2.CCL_WU)
    return labels, int(n) - 1
