"""Lossy JPEG compression of 8-bit grayscale images.

Two codecs, identical in what they lose:

- ``codec="dct"`` (default, fast and batched): the lossy core of baseline JPEG computed
  directly - level shift by 128, orthonormal 8x8 DCT-II per block (edge blocks padded by
  replication, as libjpeg does), quantisation with the IJG luminance table scaled by
  ``quality``, dequantisation, inverse DCT, rounding and clipping to [0, 255]. Entropy coding
  is lossless, so it is skipped; the result agrees with libjpeg's integer DCT to within a
  gray level or two (tested), at many times its speed. The drawn parameters report the number
  of non-zero quantised coefficients (what the entropy coder would have to store).
- ``codec="opencv"``: a real encode/decode round trip through OpenCV's libjpeg (reports the
  file size in bytes).

Images are quantised to 8 bit first: uint8 input is rounded and clipped to [0, 255]; any other
input is min-max scaled to [0, 255] per image and scaled back afterwards (16-bit data loses
its extra bit depth, as a JPEG export would). ``quality`` is the IJG quality factor 1-100;
quality 100 is treated as the identity (no compression; a real quality-100 JPEG changes at most
a few gray levels).
References: Wallace, IEEE Trans. Consumer Electron. 38(1) (1992); ITU-T T.81 Annex K (table).
"""

from __future__ import annotations

import cv2
import numpy as np

from cellrobust._validation import DataError, check_choice
from cellrobust.artefacts.registry import Artefact, register

# ITU-T T.81 Annex K.1, luminance quantisation table (quality 50)
LUMINANCE_TABLE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]],
    dtype=np.float32)


def quant_table(quality: int) -> np.ndarray:
    """IJG scaling of the luminance table for ``quality`` 1-100 (libjpeg's jpeg_quality_scaling)."""
    q = int(min(max(quality, 1), 100))
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return np.clip(np.floor((LUMINANCE_TABLE * scale + 50) / 100), 1, 255).astype(np.float32)


def _dct_matrix() -> np.ndarray:
    k, n = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    mat = np.sqrt(2 / 8) * np.cos((2 * n + 1) * k * np.pi / 16)
    mat[0] /= np.sqrt(2)
    return mat.astype(np.float32)


DCT = _dct_matrix()
# 2-D DCT of a row-major flattened 8x8 block as one 64x64 matrix: vec(D B D^T) = (D kron D) vec(B)
DCT2 = np.kron(DCT, DCT)
DCT2_T = np.ascontiguousarray(DCT2.T)


def jpeg_dct(images8: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """Baseline-JPEG loss on (N, H, W) 8-bit-valued float32 images; returns (images, nonzeros)."""
    n, h, w = images8.shape
    ph, pw = -h % 8, -w % 8
    x = np.pad(images8, ((0, 0), (0, ph), (0, pw)), mode="edge") - np.float32(128)
    bh, bw = (h + ph) // 8, (w + pw) // 8
    blocks = np.ascontiguousarray(
        x.reshape(n, bh, 8, bw, 8).transpose(0, 1, 3, 2, 4).reshape(-1, 64), dtype=np.float32)
    table = quant_table(quality).ravel()
    # one GEMM for every block of every image; OpenCV's gemm, not numpy's BLAS, whose thread
    # pool stalls for tens of ms on small products when the cores are busy
    q = np.rint(cv2.gemm(blocks, DCT2_T, 1.0, None, 0.0) / table)
    nonzero = np.count_nonzero(q.reshape(n, -1), axis=1)
    out = cv2.gemm(q * table, DCT2, 1.0, None, 0.0)
    out = out.reshape(n, bh, bw, 8, 8).transpose(0, 1, 3, 2, 4)
    out = out.reshape(n, bh * 8, bw * 8)[:, :h, :w]
    return np.clip(np.rint(out + np.float32(128)), 0, 255), nonzero


def jpeg_roundtrip(image8: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """Encode an (H, W) uint8 image as JPEG at ``quality`` and decode it; return (image, bytes)."""
    ok, buf = cv2.imencode(".jpg", image8, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise DataError("jpeg: OpenCV could not encode the image")
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE), int(buf.size)


def _to_8bit(images, dtype):
    n = images.shape[0]
    if dtype is not None and np.dtype(dtype) == np.uint8:
        lo, scale = np.zeros((n, 1, 1), np.float32), np.ones((n, 1, 1), np.float32)
    else:
        flat = images.reshape(n, -1)
        lo = flat.min(axis=1)[:, None, None]
        span = flat.max(axis=1)[:, None, None] - lo
        scale = np.where(span > 0, span / np.float32(255), 1).astype(np.float32)
    return np.clip(np.rint((images - lo) / scale), 0, 255), lo, scale


def _jpeg(images, value, rng, *, labels=None, dtype=None, codec="dct"):
    check_choice("codec", codec, ("dct", "opencv"))
    quality = int(round(value))
    img8, lo, scale = _to_8bit(images, dtype)
    if codec == "dct":
        out, nonzero = jpeg_dct(img8, quality)
        params = [{"quality": quality, "nonzero_coefficients": int(k)} for k in nonzero]
    else:
        out, params = np.empty_like(img8), []
        for i, img in enumerate(img8.astype(np.uint8)):
            out[i], nbytes = jpeg_roundtrip(img, quality)
            params.append({"quality": quality, "bytes": nbytes})
    return out * scale + lo, params


JPEG = register(Artefact(
    name="jpeg", kind="intensity", parameter="quality", unit="IJG quality (1-100)",
    grid=(100.0, 95.0, 90.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 15.0, 10.0, 7.0, 5.0,
          3.0, 1.0),
    ladder=(100.0, 7.0, 4.0, 3.0, 2.0, 1.0), identity=100.0, limits=(1.0, 100.0),
    reference="Wallace, IEEE Trans. Consumer Electron. 38(1):xviii (1992); ITU-T T.81; "
              "Hendrycks & Dietterich, ICLR 2019 ('jpeg_compression')",
    description="8-bit baseline-JPEG loss (8x8 DCT quantisation, IJG table) at the given "
                "quality",
    kernel=_jpeg,
))
