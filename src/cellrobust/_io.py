"""File helpers: atomic writes and image reading with clear errors.

Everything cellrobust writes goes through :func:`atomic_write` (temporary file in the target
folder, ``fsync``, then :func:`os.replace`), so an interrupted run never leaves a half-written
result, and an existing file is replaced only by a complete one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cellrobust._validation import DataError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".npy")
#: Name prefix of every temporary file; a process killed with SIGKILL may leave one behind,
#: never a torn target. :func:`remove_stale_temporaries` clears them when work resumes.
TEMP_PREFIX = ".cr-tmp."


def _file_mode() -> int:
    """Permissions of a newly created file under the current umask (``mkstemp`` uses 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside ``path``; on success move it onto ``path`` atomically."""
    with _atomic_path(Path(path), suffix=".tmp") as tmp, open(tmp, mode) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def atomic_path(path: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
    """Yield a temporary path beside ``path`` for writers that need a file name; then replace."""
    return _atomic_path(Path(path))


@contextlib.contextmanager
def _atomic_path(target: Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Temporary file named ``TEMP_PREFIX + name``; moved onto ``target`` only on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{target.stem}.",
                               suffix=target.suffix if suffix is None else suffix,
                               dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left in ``folder`` by a killed writer; return what was deleted.

    Call it only where no other process is writing into ``folder`` at the same time.
    """
    stale = sorted(Path(folder).glob(f"{TEMP_PREFIX}*"))
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return stale


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text atomically; return the path."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON atomically (numpy scalars/arrays converted); return the path."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def write_tiff(path: str | os.PathLike, array: np.ndarray, **kwargs: Any) -> Path:
    """Write a TIFF atomically (zlib-compressed unless ``compression`` is given)."""
    import tifffile

    kwargs.setdefault("compression", "zlib")
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.asarray(array), **kwargs)
    return Path(path)


def read_image(path: str | os.PathLike, *, max_pixels: int | None = None,
               max_bytes: int | None = None) -> np.ndarray:
    """Read a 2-D image (or RGB) from TIFF, PNG/JPEG/BMP or ``.npy``.

    The size the file's header declares is checked against the caps of
    :mod:`cellrobust._limits` *before* anything is decoded, so a few-kilobyte file claiming
    100000 x 100000 pixels is refused without allocating.

    Parameters
    ----------
    path : path-like
        The image file.
    max_pixels, max_bytes : int, optional
        Override the ``image_pixels`` / ``image_bytes`` caps (default: environment variables
        ``CELLROBUST_MAX_IMAGE_PIXELS`` / ``CELLROBUST_MAX_IMAGE_BYTES``, else 2^28 pixels and
        2 GiB).

    Raises
    ------
    DataError
        Naming the file when it is missing, truncated, not an image or too large.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: file not found")
    suffix = file.suffix.lower()
    caps = {"max_pixels": max_pixels, "max_bytes": max_bytes}
    try:
        with _quiet_tifffile():
            if suffix in (".tif", ".tiff"):
                return _read_tiff(file, caps)
            if suffix == ".npy":
                return _read_npy(file, caps)
            return _read_other(file, caps)
    except DataError:
        raise
    except Exception as exc:  # tifffile/imageio raise many types for corrupt files
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(
            f"{file}: cannot read image ({type(exc).__name__}: {detail}); "
            "the file may be truncated or not an image - re-export or re-download it"
        ) from exc


def _read_tiff(file: Path, caps: dict) -> np.ndarray:
    import tifffile

    from cellrobust._limits import check_array

    with tifffile.TiffFile(file) as tif:
        series = tif.series[0] if tif.series else None
        if series is None:
            raise DataError(f"{file}: TIFF holds no image; expected a 2-D image")
        check_array(str(file), series.shape, series.dtype, **caps)
        return np.asarray(series.asarray())


def _read_npy(file: Path, caps: dict) -> np.ndarray:
    from cellrobust._limits import check_array

    with open(file, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                  else np.lib.format.read_array_header_2_0)
        shape, _, dtype = reader(handle)
    if np.dtype(dtype).hasobject:
        raise DataError(f"{file}: holds pickled Python objects, not an image; expected a "
                        "numeric array saved with numpy.save")
    check_array(str(file), shape, dtype, **caps)
    return np.load(file, allow_pickle=False)


def _read_other(file: Path, caps: dict) -> np.ndarray:
    import imageio.v3 as iio  # provided by scikit-image
    from PIL import Image

    from cellrobust._limits import check_array

    with Image.open(file) as img:  # parses the header only
        width, height = img.size
        bands = max(len(img.getbands()), 4 if img.mode == "P" else 1)
        bits = 16 if img.mode.startswith("I;16") else (32 if img.mode in ("I", "F") else 8)
    check_array(str(file), (height, width, bands), f"u{bits // 8}", **caps)
    with warnings.catch_warnings():  # the cap above replaces Pillow's bomb warning
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return np.asarray(iio.imread(file))


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """Hold back tifffile's log lines while reading; on success re-emit them, on failure the
    one-line error says what went wrong instead."""
    logger = logging.getLogger("tifffile")
    capture = _Capture()
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(capture)
    try:
        yield
    finally:
        logger.removeHandler(capture)
        logger.propagate = propagate
    for record in capture.records:  # reached only when reading succeeded
        logger.handle(record)
