"""Safe extraction of downloaded data archives (zip, tar, tar.gz/bz2/xz).

Only regular files and folders are extracted; every entry is checked before anything is
written (names, kinds, sizes, entry count, compression ratio), then fetch writes each file
itself - never through ``extractall`` - so no link ever exists in the destination and each
path is resolved against the destination on the real file system. This closes the
link-chain / ``realpath`` (PATH_MAX) escapes of CVE-2025-4517 on any Python version.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cellrobust._limits import check_ratio, limit
from cellrobust._validation import DataError

CHUNK = 1 << 20

__all__ = ["UnsafeArchiveError", "safe_extract"]


class UnsafeArchiveError(DataError):
    """An archive holds entries that would escape its folder, or cannot be read at all."""


def safe_extract(archive: Path, dest: Path, *, max_bytes: int | None = None,
                 max_ratio: int | None = None, max_members: int | None = None) -> None:
    """Extract a zip or tar archive into ``dest`` after checking every entry.

    Only regular files and folders are extracted; links, devices and pipes are refused. The
    declared sizes are checked against ``max_bytes`` (cap ``extract_bytes``), the ratio of
    extracted to archive bytes against ``max_ratio`` (cap ``compression_ratio``) and the
    number of entries against ``max_members`` (cap ``extract_members``) before anything is
    written; while writing, no file may grow past its declared size.

    Raises
    ------
    DataError
        Naming the first unsafe entries: absolute paths, ``..`` components, links, device
        files; an archive beyond the caps; or one that cannot be read. Nothing is extracted
        then (an error while writing leaves a partial ``dest`` for the caller to remove).
    """
    archive = Path(archive)
    caps = (limit("extract_bytes", max_bytes), limit("compression_ratio", max_ratio),
            limit("extract_members", max_members))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                entries = [_zip_entry(zf, info) for info in zf.infolist()]
                _check_all(archive, dest, entries, caps)
                _write_all(archive, dest, entries, lambda info: zf.open(info))
            return
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                entries = _tar_entries(archive, tf, caps)
                _check_all(archive, dest, entries, caps)
                _write_all(archive, dest, entries, tf.extractfile)
            return
    except OSError as exc:
        if exc.errno is None:  # gzip.BadGzipFile and friends: a damaged archive
            raise _unreadable(archive, exc) from exc
        raise DataError(f"{archive}: cannot extract into {dest} ({exc.strerror}); check "
                        "the destination and its free space") from exc
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, RuntimeError, zlib.error) as exc:
        raise _unreadable(archive, exc) from exc
    raise UnsafeArchiveError(
        f"{archive}: not a zip or tar archive; expected a .zip or .tar(.gz) file"
    )


def _unreadable(archive: Path, exc: Exception) -> UnsafeArchiveError:
    return UnsafeArchiveError(
            f"{archive}: cannot read archive ({type(exc).__name__}: {exc}); it may be "
            "corrupted - delete it and fetch again"
    )


@dataclass(frozen=True)
class _Entry:
    name: str
    kind: str  # "file", "dir", or why it is refused ("symbolic link", "device", ...)
    size: int
    handle: object  # ZipInfo / TarInfo


def _zip_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Entry:
    mode = info.external_attr >> 16
    if info.is_dir():
        kind = "dir"
    elif stat.S_IFMT(mode) in (0, stat.S_IFREG):
        kind = "file"
    elif stat.S_ISLNK(mode):  # zip stores a link as a file whose content is the target
        with zf.open(info) as handle:
            kind = f"symbolic link to {handle.read(4096).decode('utf-8', 'replace')!r}"
    else:
        kind = _kind_of_mode(mode)
    return _Entry(info.filename, kind, info.file_size, info)


def _kind_of_mode(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return "pipe or socket"
    return "special file"


def _tar_entries(archive: Path, tf: tarfile.TarFile, caps) -> list[_Entry]:
    entries, total = [], 0
    while (member := tf.next()) is not None:  # headers only; stop at the first cap hit
        entries.append(_tar_entry(member))
        total += max(member.size, 0)
        if len(entries) > caps[2] or total > caps[0]:
            break
    return entries


def _tar_entry(member: tarfile.TarInfo) -> _Entry:
    if member.isreg():
        kind = "file"
    elif member.isdir():
        kind = "dir"
    elif member.issym():
        kind = f"symbolic link to {member.linkname!r}"
    elif member.islnk():
        kind = f"hard link to {member.linkname!r}"
    elif member.ischr() or member.isblk():
        kind = "device"
    elif member.isfifo():
        kind = "pipe"
    else:
        kind = "special file"
    return _Entry(member.name, kind, member.size, member)


def _check_all(archive: Path, dest: Path, entries: list[_Entry], caps) -> None:
    max_bytes, max_ratio, max_members = caps
    bad = [f"{e.name!r} ({why})" for e in entries if (why := _unsafe(e))]
    if bad:
        raise UnsafeArchiveError(
            f"{archive}: unsafe archive, refusing to extract {len(bad)} entr"
            f"{'y' if len(bad) == 1 else 'ies'}: {', '.join(bad[:5])}; expected relative "
            "paths of plain files and folders - the archive was deleted, nothing was extracted"
        )
    total = sum(e.size for e in entries)
    if len(entries) > max_members or total > max_bytes:
        raise UnsafeArchiveError(
            f"{archive}: refusing to extract {len(entries)}+ entries / {total}+ bytes, above "
            f"the caps of {max_members} entries / {max_bytes} bytes (a decompression bomb?); "
            "the archive was deleted, nothing was extracted"
        )
    try:
        check_ratio(str(archive), total, archive.stat().st_size, max_ratio=max_ratio)
    except DataError as exc:
        raise UnsafeArchiveError(f"{exc}; the archive was deleted, nothing was extracted") \
            from None
    _check_space(archive, dest, total)


def _check_space(archive: Path, dest: Path, needed: int) -> None:
    existing = next(p for p in (dest, *dest.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise DataError(
            f"{archive}: extracting needs {needed / 1e9:.2f} GB, only {free / 1e9:.2f} GB free "
            f"at {dest}; free some space or choose another destination"
        )


def _parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", "."))


def _unsafe(entry: _Entry) -> str | None:
    if entry.kind not in ("file", "dir"):
        return f"{entry.kind}: links and special files are refused, a data archive holds " \
            "only files and folders"
    path = entry.name.replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "absolute path"
    if "\0" in path:
        return "NUL in name"
    parts = _parts(path)
    if ".." in parts:
        return "'..' component"
    if not parts:
        return "empty name" if entry.kind == "file" else None
    return None


def _write_all(archive: Path, dest: Path, entries: list[_Entry], opener) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    root = Path(os.path.realpath(dest))
    for entry in entries:
        parts = _parts(entry.name)
        if not parts:
            continue
        if entry.kind == "dir":
            _make_dirs(archive, root, parts)
            continue
        folder = _make_dirs(archive, root, parts[:-1])
        _write_file(archive, entry, folder / parts[-1], opener)


def _make_dirs(archive: Path, root: Path, parts: tuple[str, ...]) -> Path:
    """Create ``root/parts`` one component at a time; refuse anything that is not a real
    folder inside ``root`` (a link planted by any means, a file in the way)."""
    here = root
    for part in parts:
        here = here / part
        try:
            os.mkdir(here, 0o777)  # the umask applies: ordinary permissions
        except FileExistsError:
            pass
        info = os.lstat(here)
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafeArchiveError(f"{archive}: entry path {here.relative_to(root)} is not a "
                                     "folder (a file or link is in the way); the archive is "
                                     "malformed - nothing usable was extracted")
    if os.path.commonpath([os.path.realpath(here), root]) != str(root):
        raise UnsafeArchiveError(f"{archive}: {here} resolves outside the destination; "
                                 "refusing to extract")
    return here


def _write_file(archive: Path, entry: _Entry, path: Path, opener) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o666)  # the umask applies; archive modes are ignored
    except FileExistsError:
        raise UnsafeArchiveError(f"{archive}: entry {entry.name!r} appears twice or collides "
                                 "with a folder; the archive is malformed") from None
    written = 0
    with os.fdopen(fd, "wb") as out, opener(entry.handle) as source:
        for block in iter(lambda: source.read(CHUNK), b""):
            written += len(block)
            if written > entry.size:
                raise UnsafeArchiveError(f"{archive}: entry {entry.name!r} holds more than "
                                         f"its declared {entry.size} bytes; refusing it")
            out.write(block)
