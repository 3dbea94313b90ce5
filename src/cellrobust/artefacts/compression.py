"""Lossy JPEG compression (OpenCV's libjpeg, 8-bit grayscale).

Images are quantised to 8 bit for the codec: uint8 input is rounded and clipped to
[0, 255]; any other input is min-max scaled to [0, 255] per image, compressed, and scaled back
to its gray-level range (so 16-bit data also loses its extra bit depth, as a JPEG export
would). ``quality`` is the IJG quality factor 1-100; quality 100 is treated as the identity
(no compression; a real quality-100 JPEG changes at most a few gray levels).
Reference: Wallace, "The JPEG still picture compression standard", IEEE TCE 38(1) (1992).
"""

from __future__ import annotations

import cv2
import numpy as np

from cellrobust._validation import DataError
from cellrobust.artefacts.registry import Artefact, register


def jpeg_roundtrip(image8: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """Encode an (H, W) uint8 image as JPEG at ``quality`` and decode it; return (image, bytes)."""
    ok, buf = cv2.imencode(".jpg", image8, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise DataError("jpeg: OpenCV could not encode the image")
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE), int(buf.size)


def _jpeg(images, value, rng, *, labels=None, dtype=None):
    quality = int(round(value))
    is_uint8 = dtype is not None and np.dtype(dtype) == np.uint8
    out = np.empty_like(images)
    params = []
    for i, img in enumerate(images):
        if is_uint8:
            lo, scale = np.float32(0), np.float32(1)
        else:
            lo, hi = np.float32(img.min()), np.float32(img.max())
            scale = np.float32((hi - lo) / 255.0) if hi > lo else np.float32(1)
        img8 = np.clip(np.rint((img - lo) / scale), 0, 255).astype(np.uint8)
        dec, nbytes = jpeg_roundtrip(img8, quality)
        out[i] = dec.astype(np.float32) * scale + lo
        params.append({"quality": quality, "bytes": nbytes})
    return out, params


JPEG = register(Artefact(
    name="jpeg", kind="intensity", parameter="quality", unit="IJG quality (1-100)",
    grid=(100.0, 95.0, 90.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 15.0, 10.0, 7.0, 5.0,
          3.0, 1.0),
    ladder=(100.0, 50.0, 30.0, 20.0, 12.0, 6.0), identity=100.0, limits=(1.0, 100.0),
    reference="Wallace, IEEE Trans. Consumer Electron. 38(1):xviii (1992); "
              "Hendrycks & Dietterich, ICLR 2019 ('jpeg_compression')",
    description="8-bit JPEG compression round trip at the given quality",
    kernel=_jpeg,
))
