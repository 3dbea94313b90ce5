"""Download a public data set archive: resumable, checksum-verified, safely extracted, atomic.

``fetch("psc")`` downloads the Cell Tracking Challenge training archive of PhC-C2DL-PSC
(sequences 01 and 02 with gold and silver truth; Ulman et al., Nat. Methods 14:1141, 2017;
Cell Tracking Challenge conditions of use apply) and returns the folder to give to
:func:`~cellrobust.data.open_dataset` (then :func:`~cellrobust.data.psc_split` selects the
studies' train/validation/test frames).

Guarantees:

* **resume** - the download goes to ``<dest>/.downloads/<file>.part``; an interrupted download
  continues from where it stopped with an HTTP ``Range`` request (a server that ignores ``Range``
  makes it start again);
  (a stale ``.part`` longer than the remote file is discarded);
* **verification** - the SHA-256 of the complete archive is compared with the source table or
  the ``sha256`` argument; a mismatch deletes the download and raises :class:`DataError`.
  Without a known digest nothing is downloaded unless ``allow_unverified=True``; the computed
  digest is then reported (a :class:`UserWarning`) so it can be pinned, and recorded;
* **safe extraction** - every entry is checked before anything is written: absolute paths,
  drive letters, ``..`` components, links of any kind (a data set needs none: refusing them
  closes the symlink-chain / ``realpath`` escapes of CVE-2025-4517), devices and pipes are
  refused, and so are archives expanding beyond the size and compression-ratio caps of
  :mod:`cellrobust._limits` (zip/tar bombs). Files are then written by fetch itself, one
  ``O_EXCL | O_NOFOLLOW`` file at a time, each path resolved against the destination on the
  real file system, with ordinary permissions (the umask, never the archive's modes);
* **atomic** - the archive is extracted into a hidden temporary folder that is renamed to its
  final name only when complete; a failure leaves no half-written data set, and a folder left
  by a killed fetch is removed by the next one. An existing folder that fetch did not create
  is never touched. Concurrent fetches into one destination are serialised by a lock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from cellrobust._io import write_json
from cellrobust._limits import limit
from cellrobust._lock import run_lock
from cellrobust._validation import DataError, InputError, check_choice
from cellrobust.data._archive import UnsafeArchiveError, safe_extract

__all__ = ["SOURCES", "Source", "fetch", "download", "safe_extract", "sha256sum",
           "check_url", "check_sha256", "default_dest", "UnsafeArchiveError", "MARKER"]

MARKER = ".cellrobust-fetch.json"


CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """One downloadable archive: where it is and what it must hash to."""

    name: str
    url: str
    sha256: str | None
    size: int | None
    folder: str
    description: str


SOURCES: dict[str, Source] = {
    "psc": Source(
        name="psc",
        url="https://data.celltrackingchallenge.net/training-datasets/PhC-C2DL-PSC.zip",
        sha256=None,  # none published yet: pass the digest a verified download reported
        size=None,
        folder="PhC-C2DL-PSC",
        description="PhC-C2DL-PSC training data (Cell Tracking Challenge layout, sequences "
        "01 and 02, gold + silver truth)",
    ),
}


def default_dest() -> Path:
    """``$CELLROBUST_DATA``, else ``$XDG_CACHE_HOME/cellrobust``, else ``~/.cache/cellrobust``."""
    if os.environ.get("CELLROBUST_DATA"):
        return Path(os.environ["CELLROBUST_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "cellrobust"


def fetch(
    source: str | Source = "psc",
    *,
    dest: str | os.PathLike | None = None,
    sha256: str | None = None,
    allow_unverified: bool = False,
    progress: bool = True,
    keep_archive: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download, verify and extract a data set; return the folder to open.

    Parameters
    ----------
    source : str or Source
        A name in :data:`SOURCES` (``"psc"``) or a :class:`Source` (e.g. a mirror).
    dest : path-like, optional
        Folder under which the data set folder is created (default :func:`default_dest`).
    sha256 : str, optional
        Expected SHA-256 (64 hex digits) of the archive; overrides the source table's.
    allow_unverified : bool
        Download even though no digest is known; the computed one is reported to be pinned.
    progress : bool
        Show a progress bar on stderr.
    keep_archive : bool
        Keep the verified archive in ``<dest>/.downloads`` after extraction.
    timeout : float
        Seconds to wait for the server before giving up.

    Returns
    -------
    Path
        ``<dest>/<source.folder>``; if it already holds a completed fetch nothing is downloaded.

    Raises
    ------
    InputError
        A URL that is not http(s), a digest that is not 64 hex digits, or no known digest
        without ``allow_unverified`` - before anything is downloaded.
    DataError
        Network failure, checksum mismatch, unsafe archive, or an existing folder in the way.
    """
    src = source if isinstance(source, Source) else SOURCES[check_choice("source", source, SOURCES)]
    src = dataclasses.replace(src, url=check_url(src.url),
                              sha256=check_sha256(sha256 if sha256 is not None else src.sha256))
    if src.sha256 is None and not allow_unverified:
        raise InputError(
            f"{src.name}: no SHA-256 is known for {src.url}, so the download cannot be "
            "verified; give the archive's expected SHA-256, or explicitly allow an unverified "
            "download (its digest is then reported so you can pin it)"
        )
    root = Path(dest).expanduser() if dest is not None else default_dest()
    target = root / src.folder
    if (target / MARKER).is_file():
        return target
    with run_lock(root / ".downloads"):
        _remove_interrupted(root, target.name)
        if target.exists():
            raise DataError(
                f"{target}: already exists and was not created by fetch; expected an empty "
                "place for the data set - choose another destination or move that folder away"
            )
        archive = root / ".downloads" / _archive_name(src.url)
        digest = _download_verified(src, archive, progress=progress, timeout=timeout)
        try:
            _extract_atomically(archive, target, src, digest)
        except UnsafeArchiveError:
            archive.unlink(missing_ok=True)  # an unsafe or unreadable archive is useless
            raise
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return target


def check_url(url: str) -> str:
    """Validate a download URL (``http://`` or ``https://`` with a host); return it."""
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"url: expected an http:// or https:// address such as "
                         f"https://host/path/archive.zip, got {url!r}")
    _archive_name(url)
    return str(url)


def check_sha256(digest: str | None) -> str | None:
    """Validate a SHA-256 digest (64 hexadecimal digits, any case); return it lower-cased."""
    if digest is None:
        return None
    text = str(digest).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise InputError(f"sha256: expected 64 hexadecimal digits, got {digest!r}")
    return text


def _remove_interrupted(root: Path, name: str) -> None:
    """Delete extraction folders a killed fetch left (``.<name>.extract-*``); we hold the lock."""
    for stale in root.glob(f".{name}.extract-*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def _archive_name(url: str) -> str:
    name = PurePosixPath(urlsplit(str(url)).path).name
    if not re.fullmatch(r"[\w.\-]+", name or "") or name.strip(".") == "":
        raise InputError(f"url: cannot derive an archive file name from {url!r}; expected an "
                         "address ending in the archive's file name (.zip, .tar.gz)")
    return name


def _download_verified(src: Source, archive: Path, *, progress: bool, timeout: float) -> str:
    if archive.is_file():
        return _verify(archive, src)
    archive.parent.mkdir(parents=True, exist_ok=True)
    part = archive.with_name(archive.name + ".part")
    download(src.url, part, progress=progress, timeout=timeout, size=src.size)
    digest = _verify(part, src)
    os.replace(part, archive)
    return digest


def _verify(file: Path, src: Source) -> str:
    digest = sha256sum(file)
    if src.sha256 is None:
        warnings.warn(
            f"{src.name}: downloaded {src.url} without verification (no SHA-256 was given); "
            f"its SHA-256 is {digest} - pin this digest for later downloads",
            UserWarning,
            stacklevel=3,
        )
    elif digest != src.sha256:
        file.unlink(missing_ok=True)
        raise DataError(
            f"{src.url}: checksum mismatch - expected SHA-256 {src.sha256}, got {digest}; the "
            "corrupted download was deleted, nothing was extracted - run the fetch again"
        )
    return digest


def sha256sum(file: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, part: Path, *, progress: bool = True, timeout: float = 60.0,
             size: int | None = None) -> None:
    """Download ``url`` into ``part``, resuming from its current length with HTTP ``Range``.

    A ``part`` longer than the known ``size``, or than the remote file (HTTP 416 with another
    length), is stale: it is discarded and the download starts again.
    """
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start > size:
        part.unlink()
        start = 0
    if size is not None and start == size:
        return
    try:
        response = _open(url, start, timeout)
    except _RangeNotSatisfiable as exc:
        if exc.total == start:  # the part is exactly the remote file: complete
            return
        part.unlink(missing_ok=True)
        start, response = 0, _open(url, 0, timeout)
    with response:
        if start and not _resumes_at(response, start):
            start = 0  # the server ignored Range: start again
        total = _total_length(response, start)
        _copy(response, part, append=bool(start), start=start, total=total, progress=progress,
              url=url)


class _RangeNotSatisfiable(Exception):
    def __init__(self, total: int | None) -> None:
        super().__init__(total)
        self.total = total


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": "cellrobust-fetch"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        return urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        if exc.code == 416 and start:
            match = re.match(r"bytes \*/(\d+)", exc.headers.get("Content-Range", "") or "")
            raise _RangeNotSatisfiable(int(match.group(1)) if match else None) from exc
        raise DataError(f"{url}: download failed: HTTP {exc.code} {exc.reason}") from exc
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"{url}: cannot connect ({reason}); check the network or use a mirror"
        ) from exc


def _resumes_at(response, start: int) -> bool:
    if response.status != 206:
        return False
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return bool(match) and int(match.group(1)) == start


def _total_length(response, start: int) -> int | None:
    length = response.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def _copy(response, part: Path, *, append: bool, start: int, total: int | None,
          progress: bool, url: str) -> None:
    from tqdm.auto import tqdm

    cap = limit("extract_bytes")
    if total is not None and total > cap:
        raise DataError(f"{url}: the server announces {total} bytes, above the cap of {cap} "
                        "bytes for one archive; use another source")
    written = start
    with open(part, "ab" if append else "wb") as out, tqdm(
        total=total, initial=start, unit="B", unit_scale=True, disable=not progress,
        desc=part.name.removesuffix(".part"),
    ) as bar:
        try:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                written += len(block)
                bar.update(len(block))
                if written > cap:
                    break
        except Exception as exc:  # socket errors (OSError), http.client.IncompleteRead, ...
            raise _interrupted(url, part, written, total) from exc
    if written > cap:
        part.unlink(missing_ok=True)
        raise DataError(f"{url}: the download exceeds the cap of {cap} bytes for one archive "
                        "and was deleted; use another source")
    if total is not None and written < total:
        raise _interrupted(url, part, written, total)


def _interrupted(url: str, part: Path, written: int, total: int | None) -> DataError:
    expected = f"{total} bytes" if total is not None else "the complete file"
    return DataError(
        f"{url}: download interrupted after {written} bytes (expected {expected}); the partial "
        f"file {part} is kept and the next fetch resumes it"
    )


def _folder_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def _extract_atomically(archive: Path, target: Path, src: Source, digest: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract-", dir=target.parent))
    try:
        safe_extract(archive, tmp)
        top = list(tmp.iterdir())
        single = len(top) == 1 and top[0].is_dir() and top[0].name == target.name
        content = top[0] if single else tmp
        os.chmod(content, _folder_mode())  # mkdtemp makes 0700; a data set is ordinary
        write_json(content / MARKER, {"source": src.name, "url": src.url, "sha256": digest,
                                      "verified": src.sha256 is not None})
        os.replace(content, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
