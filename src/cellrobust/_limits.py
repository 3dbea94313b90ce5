"""Resource limits checked *before* allocating: image headers, npz headers, model sizes, counts.

A hostile or damaged file can claim any size in a few bytes (a 4 KB TIFF header claiming
100000 x 100000 pixels, an ``.npz`` whose deflated zeros expand 1000-fold, a checkpoint whose
config asks for a 2048-wide U-Net). cellrobust reads the claim first and refuses it with one
clear :class:`~cellrobust._validation.DataError` line before any memory is taken.

Default caps (every one overridable by an argument of the function that checks it, or by the
environment variable ``CELLROBUST_MAX_<NAME>``, e.g. ``CELLROBUST_MAX_IMAGE_PIXELS=1e9``):

==================  ==================  ==============================================
name                default             what it bounds
==================  ==================  ==============================================
image_pixels        268,435,456 (2^28)  pixels of one image (16384 x 16384)
image_bytes         2 GiB               decoded bytes of one image
array_bytes         4 GiB               decoded bytes of all arrays in one ``.npz``
compression_ratio   200                 decoded / stored bytes of a compressed file or
                                        archive (only checked above 64 MiB decoded)
extract_bytes       64 GiB              bytes extracted from one downloaded archive
extract_members     200,000             entries of one downloaded archive
model_parameters    268,435,456 (2^28)  parameters of a U-Net (1 GiB of float32 weights)
thresholds          10,000              IoU / probability thresholds of one evaluation
bootstrap           100,000             bootstrap resamples
==================  ==================  ==============================================
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellrobust._validation import DataError, InputError, check_choice

DEFAULTS: dict[str, int] = {
    "image_pixels": 2**28,
    "image_bytes": 2 * 2**30,
    "array_bytes": 4 * 2**30,
    "compression_ratio": 200,
    "extract_bytes": 64 * 2**30,
    "extract_members": 200_000,
    "model_parameters": 2**28,
    "thresholds": 10_000,
    "bootstrap": 100_000,
}
#: Below this many decoded bytes a high compression ratio is harmless and not checked.
RATIO_FLOOR = 64 * 2**20
ENV_PREFIX = "CELLROBUST_MAX_"


def env_name(name: str) -> str:
    """Environment variable overriding the cap ``name`` (``CELLROBUST_MAX_IMAGE_PIXELS``)."""
    return ENV_PREFIX + name.upper()


def limit(name: str, value: float | None = None) -> int:
    """The cap called ``name``: ``value`` if given, else its environment variable, else default.

    Raises
    ------
    InputError
        For an unknown name, or a value (argument or environment variable) that is not a
        positive whole number.
    """
    check_choice("limit", name, DEFAULTS)
    if value is not None:
        return _positive(f"max_{name}", value)
    text = os.environ.get(env_name(name))
    if text is None or not text.strip():
        return DEFAULTS[name]
    return _positive(f"environment variable {env_name(name)}", text)


def _positive(what: str, value) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 1 \
            or number != int(number):
        raise InputError(f"{what}: expected a positive whole number, got {value!r}")
    return int(number)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def check_count(name: str, n, cap: int | str, *, minimum: int = 1) -> int:
    """Validate a count (thresholds, bootstrap resamples, ...) against a cap; return it as int.

    Parameters
    ----------
    name : str
        Argument name used in the message (``"n_boot"``).
    n : int or float
        The count; an integral float such as ``1e3`` is accepted.
    cap : int or str
        The largest allowed value, or the name of a cap in :data:`DEFAULTS` (then the
        environment variable can raise it).
    minimum : int
        Smallest allowed value (default 1).

    Raises
    ------
    InputError
        For a non-integer, a value below ``minimum`` or above the cap.
    """
    try:
        number = float(n)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(n, bool) or not math.isfinite(number) or number != int(number):
        raise InputError(f"{name}: expected a whole number, got {n!r}")
    high = limit(cap) if isinstance(cap, str) else int(cap)
    if not minimum <= number <= high:
        hint = (f"; the cap can be raised with the environment variable {env_name(cap)}"
                if isinstance(cap, str) else "")
        raise InputError(f"{name}: expected a whole number in [{minimum}, {high}], "
                         f"got {n!r}{hint}")
    return int(number)


def check_array(what: str, shape: Sequence[int], dtype, *, max_pixels: int | None = None,
                max_bytes: int | None = None) -> int:
    """Refuse an image whose header claims too many pixels or bytes; return its byte size.

    Parameters
    ----------
    what : str
        The file (or array) named in the message.
    shape : sequence of int
        The shape the header declares.
    dtype : numpy dtype-like
        The declared sample type.
    max_pixels, max_bytes : int, optional
        Override the ``image_pixels`` / ``image_bytes`` caps.

    Raises
    ------
    DataError
        Naming the file, the declared shape and the cap, before anything is decoded.
    """
    dims = [int(d) for d in shape]
    pixels = math.prod(dims[-2:]) if len(dims) >= 2 else math.prod(dims)
    nbytes = math.prod(dims) * np.dtype(dtype).itemsize
    cap_px, cap_bytes = limit("image_pixels", max_pixels), limit("image_bytes", max_bytes)
    if pixels > cap_px or nbytes > cap_bytes:
        raise DataError(
            f"{what}: declares an image of shape {tuple(dims)} ({_size(nbytes)} decoded), "
            f"above the cap of {cap_px} pixels / {_size(cap_bytes)}; crop or tile it first, "
            f"or raise the caps with {env_name('image_pixels')} / {env_name('image_bytes')}"
        )
    return nbytes


def check_ratio(what: str, decoded: int, stored: int, *, max_ratio: int | None = None) -> None:
    """Refuse data whose decoded size is implausibly larger than its stored size (a bomb)."""
    cap = limit("compression_ratio", max_ratio)
    if decoded > RATIO_FLOOR and decoded > cap * max(stored, 1):
        raise DataError(
            f"{what}: {_size(stored)} stored would expand to {_size(decoded)} "
            f"(ratio {decoded / max(stored, 1):.0f}, cap {cap}); this looks like a "
            f"decompression bomb - use another copy of the file, or raise the cap with "
            f"{env_name('compression_ratio')} if you trust it"
        )


def check_npz(path: str | os.PathLike, *, max_bytes: int | None = None,
              max_ratio: int | None = None) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Check an ``.npz`` archive from its ``.npy`` headers alone, before loading any array.

    Parameters
    ----------
    path : path-like
        The ``.npz`` file.
    max_bytes : int, optional
        Cap on the decoded bytes of all arrays together (default ``array_bytes``).
    max_ratio : int, optional
        Cap on decoded / stored bytes (default ``compression_ratio``).

    Returns
    -------
    dict
        Array name -> (shape, dtype) as declared. Object arrays (pickles) are listed with
        shape ``()``; whether to load them is the reader's decision.

    Raises
    ------
    DataError
        For a file that is not a zip of ``.npy`` arrays (truncated, text, ...), a damaged
        header, or declared sizes above the caps.
    """
    file = Path(path)
    try:
        with zipfile.ZipFile(file) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            arrays = {_array_name(i.filename): _npy_header(file, zf, i) for i in infos}
    except zipfile.BadZipFile as exc:
        raise DataError(f"{file}: not a readable .npz archive ({exc}); expected a zip of .npy "
                        "arrays written by numpy.savez - the file may be truncated or not an "
                        "npz file, re-export or re-download it") from exc
    except OSError as exc:
        raise DataError(f"{file}: cannot read ({exc.strerror or exc})") from exc
    decoded = sum(math.prod(s) * d.itemsize for s, d in arrays.values() if not d.hasobject)
    cap = limit("array_bytes", max_bytes)
    if decoded > cap:
        raise DataError(f"{file}: its arrays declare {_size(decoded)} in total, above the cap "
                        f"of {_size(cap)}; split the file, or raise the cap with "
                        f"{env_name('array_bytes')}")
    check_ratio(str(file), decoded, sum(i.compress_size for i in infos), max_ratio=max_ratio)
    return arrays


def _array_name(member: str) -> str:
    return member[:-4] if member.endswith(".npy") else member


def _npy_header(file: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo):
    try:
        with zf.open(info) as handle:
            version = np.lib.format.read_magic(handle)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, _, dtype = reader(handle)
    except zipfile.BadZipFile:
        raise
    except Exception as exc:  # numpy raises ValueError/EOFError/SyntaxError for bad headers
        raise DataError(f"{file}: member {info.filename!r} is not a valid .npy array "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                        "; re-export the file with numpy.savez") from exc
    return tuple(int(d) for d in shape), np.dtype(dtype)


def unet_parameters(width: int, depth: int, *, in_channels: int = 1) -> int:
    """Number of weights of :class:`~cellrobust.models.unet.UNet` (exact, bias included)."""
    def conv(cin, cout, k=3):
        return k * k * cin * cout + cout

    total, channels = 0, in_channels
    for level in range(depth + 1):  # encoder levels, then the bottleneck
        cout = width * 2**level
        total += conv(channels, cout) + conv(cout, cout)
        channels = cout
    for level in range(depth):
        cout = width * 2**level
        total += conv(cout * 2, cout, 2) + conv(cout * 2, cout) + conv(cout, cout)
    return total + conv(width, 1, 1)


def check_model_size(width, depth, *, in_channels=1, what: str = "model",
                     max_parameters: int | None = None, error: type = DataError) -> int:
    """Refuse a U-Net configuration too large to build; return its parameter count.

    Parameters
    ----------
    width, depth, in_channels : int
        The architecture (see :class:`~cellrobust.models.unet.UNetConfig`).
    what : str
        What is checked, named in the message (a checkpoint file, ``"TrainConfig"``).
    max_parameters : int, optional
        Override the ``model_parameters`` cap.
    error : type
        :class:`DataError` (default) for a file's config, :class:`InputError` for a user's
        option.

    Raises
    ------
    DataError or InputError
        Naming ``what``, the width/depth and the cap, before anything is allocated.
    """
    values = (width, depth, in_channels)
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1
           for v in values):
        raise error(f"{what}: width, depth and in_channels must be positive integers, got "
                        f"width={width!r}, depth={depth!r}, in_channels={in_channels!r}")
    if depth > 12 or width > 2**20 or in_channels > 2**16:
        n = math.inf
    else:
        n = unet_parameters(int(width), int(depth), in_channels=int(in_channels))
    cap = limit("model_parameters", max_parameters)
    if n > cap:
        shown = "more than 10^15" if n == math.inf else f"{n:,}"
        raise error(f"{what}: a U-Net of width {width} and depth {depth} has {shown} "
                        f"parameters, above the cap of {cap:,}; use a smaller width or depth, "
                        f"or raise the cap with {env_name('model_parameters')}")
    return int(n)


__all__ = ["DEFAULTS", "limit", "env_name", "check_count", "check_array", "check_ratio",
           "check_npz", "check_model_size", "unet_parameters"]
