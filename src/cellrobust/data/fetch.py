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
* **verification** - the SHA-256 of the complete archive is compared with the source table; a
  mismatch deletes the partial file and raises :class:`DataError`. Where the table has no digest
  a :class:`UserWarning` says so and the computed digest is recorded next to the data;
* **safe extraction** - every entry is checked before anything is written: absolute paths,
  drive letters, ``..`` components, links pointing outside the folder, and device files are
  rejected;
* **atomic** - the archive is extracted into a hidden temporary folder that is renamed to its
  final name only when complete; a failure leaves no half-written data set. An existing folder
  that fetch did not create is never touched.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tarfile
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from cellrobust._io import write_json
from cellrobust._validation import DataError, InputError, check_choice

MARKER = ".cellrobust-fetch.json"


class UnsafeArchiveError(DataError):
    """An archive holds entries that would escape its folder, or cannot be read at all."""

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
        url="http://data.celltrackingchallenge.net/training-datasets/PhC-C2DL-PSC.zip",
        sha256=None,  # not yet recorded: the first download prints the digest it computed
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
    DataError
        Network failure, checksum mismatch, unsafe archive, or an existing folder in the way.
    """
    src = source if isinstance(source, Source) else SOURCES[check_choice("source", source, SOURCES)]
    root = Path(dest).expanduser() if dest is not None else default_dest()
    target = root / src.folder
    if (target / MARKER).is_file():
        return target
    if target.exists():
        raise DataError(
            f"{target}: already exists and was not created by fetch; expected an empty place "
            "for the data set - choose another destination or move that folder away"
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


def _archive_name(url: str) -> str:
    name = PurePosixPath(url.split("?", 1)[0]).name
    if not re.fullmatch(r"[\w.\-]+", name or ""):
        raise InputError(f"url: cannot derive an archive file name from {url!r}")
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
            f"{src.name}: no SHA-256 recorded for {src.url}; the download could not be verified "
            f"(its SHA-256 is {digest})",
            UserWarning,
            stacklevel=3,
        )
    elif digest != src.sha256.lower():
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
    """Download ``url`` into ``part``, resuming from its current length with HTTP ``Range``."""
    start = part.stat().st_size if part.exists() else 0
    if size is not None and start == size:
        return
    headers = {"User-Agent": "cellrobust-fetch"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to send: the file is complete
            return
        raise DataError(f"{url}: download failed: HTTP {exc.code} {exc.reason}") from exc
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"{url}: cannot connect ({reason}); check the network or use a mirror"
        ) from exc
    with response:
        if start and not _resumes_at(response, start):
            start = 0  # the server ignored Range: start again
        total = _total_length(response, start)
        _copy(response, part, append=bool(start), start=start, total=total, progress=progress,
              url=url)


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
        except Exception as exc:  # socket errors (OSError), http.client.IncompleteRead, ...
            raise _interrupted(url, part, written, total) from exc
    if total is not None and written < total:
        raise _interrupted(url, part, written, total)


def _interrupted(url: str, part: Path, written: int, total: int | None) -> DataError:
    expected = f"{total} bytes" if total is not None else "the complete file"
    return DataError(
        f"{url}: download interrupted after {written} bytes (expected {expected}); the partial "
        f"file {part} is kept and the next fetch resumes it"
    )


def _extract_atomically(archive: Path, target: Path, src: Source, digest: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract-", dir=target.parent))
    try:
        safe_extract(archive, tmp)
        top = [p for p in tmp.iterdir()]
        single = len(top) == 1 and top[0].is_dir() and top[0].name == target.name
        content = top[0] if single else tmp
        write_json(content / MARKER, {"source": src.name, "url": src.url, "sha256": digest,
                                      "verified": src.sha256 is not None})
        os.replace(content, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a zip or tar archive into ``dest`` after checking every entry.

    Raises
    ------
    DataError
        Naming the first unsafe entries: absolute paths, ``..`` components, links escaping
        ``dest``, device files; or an archive that cannot be read. Nothing is extracted then.
    """
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _check_entries(archive, [_zip_entry(zf, i) for i in zf.infolist()])
                _check_space(archive, dest, sum(i.file_size for i in zf.infolist()))
                zf.extractall(dest)
            return
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                _check_entries(archive, [_tar_entry(m) for m in members])
                _check_space(archive, dest, sum(m.size for m in members))
                tf.extractall(dest, members=members, filter="data")
            return
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise UnsafeArchiveError(
            f"{archive}: cannot read archive ({exc}); it may be corrupted"
        ) from exc
    raise UnsafeArchiveError(
        f"{archive}: not a zip or tar archive; expected a .zip or .tar(.gz) file"
    )


def _check_space(archive: Path, dest: Path, needed: int) -> None:
    existing = next(p for p in (dest, *dest.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise DataError(
            f"{archive}: extracting needs {needed / 1e9:.2f} GB, only {free / 1e9:.2f} GB free "
            f"at {dest}; free some space or choose another destination"
        )


def _zip_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, str | None, bool]:
    # zip stores a symbolic link as a file whose mode says S_IFLNK and whose content is the target
    is_link = stat.S_ISLNK(info.external_attr >> 16)
    link = zf.read(info)[:4096].decode("utf-8", "replace") if is_link else None
    return info.filename, link, False


def _tar_entry(member: tarfile.TarInfo) -> tuple[str, str | None, bool]:
    link = member.linkname if (member.issym() or member.islnk()) else None
    special = member.ischr() or member.isblk() or member.isfifo() or member.isdev()
    return member.name, link, special


def _check_entries(archive: Path, entries: list[tuple[str, str | None, bool]]) -> None:
    bad = [f"{name!r} ({why})" for name, link, special in entries
           if (why := _unsafe(name, link, special))]
    if bad:
        raise UnsafeArchiveError(
            f"{archive}: unsafe archive, refusing to extract {len(bad)} entr"
            f"{'y' if len(bad) == 1 else 'ies'}: {', '.join(bad[:5])}; expected relative paths "
            "inside the archive folder - the archive was deleted, nothing was extracted"
        )


def _unsafe(name: str, link: str | None, special: bool) -> str | None:
    path = name.replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "absolute path"
    if ".." in PurePosixPath(path).parts:
        return "'..' component"
    if special:
        return "device or pipe"
    if link is not None:
        target = link.replace("\\", "/")
        joined = PurePosixPath(path).parent / target
        if target.startswith("/") or _escapes(joined):
            return f"link to {link!r} outside the folder"
    return None


def _escapes(path: PurePosixPath) -> bool:
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else (0 if part in (".", "") else 1)
        if depth < 0:
            return True
    return False
