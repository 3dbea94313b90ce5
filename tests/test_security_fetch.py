"""Hostile archives and servers for `fetch`: every archive is generated here, offline."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import re
import stat
import tarfile
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from cellrobust._validation import DataError, InputError
from cellrobust.cli import main
from cellrobust.data.fetch import MARKER, SOURCES, fetch, safe_extract

FOLDER = "PhC-C2DL-PSC"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range`` and answers 416 past the end like real servers."""

    def do_GET(self):  # noqa: N802 - http.server API
        self.server.requests.append((self.path, self.headers.get("Range")))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match.group(1)) if match else 0
        if start >= len(body) and match:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests = {}, []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def make_zip(files: dict[str, bytes], *, modes: dict[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (modes or {}).get(name, 0o100644) << 16
            zf.writestr(info, data)
    return buf.getvalue()


def _ok_zip(top: str = FOLDER) -> bytes:
    return make_zip({f"{top}/01/t000.txt": b"frame", f"{top}/01_GT/SEG/a.txt": b"mask"})


def _serve(server, body: bytes, name: str = "PhC-C2DL-PSC.zip", sha: bool = True):
    server.files[f"/{name}"] = body
    url = f"http://127.0.0.1:{server.server_address[1]}/{name}"
    return replace(SOURCES["psc"], url=url,
                   sha256=hashlib.sha256(body).hexdigest() if sha else None)


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def cve_2025_4517_tar() -> bytes:
    """Lexically harmless symlink chain whose real path exceeds PATH_MAX (CVE-2025-4517)."""
    comp, steps, path, entries = "d" * 247, "abcdefghijklmnop", "", []
    for step in steps:
        folder = tarfile.TarInfo(os.path.join(path, comp))
        folder.type = tarfile.DIRTYPE
        link = tarfile.TarInfo(os.path.join(path, step))
        link.type, link.linkname = tarfile.SYMTYPE, comp
        entries += [(folder, None), (link, None)]
        path = os.path.join(path, comp)
    linkpath = os.path.join(*steps, "l" * 254)
    deep = tarfile.TarInfo(linkpath)
    deep.type, deep.linkname = tarfile.SYMTYPE, "../" * len(steps)
    escape = tarfile.TarInfo("escape")
    escape.type, escape.linkname = tarfile.SYMTYPE, linkpath + "/../"
    entries += [(deep, None), (escape, None), (tarfile.TarInfo("escape/pwned"), b"pwned")]
    return _tar(entries)


def _nothing_outside(root: Path, dest: Path) -> None:
    """No file appeared beside ``dest`` and ``dest`` holds no link."""
    outside = [p for p in root.iterdir() if p != dest and p.name != "archive"]
    assert outside == []
    assert not any(p.is_symlink() for p in dest.rglob("*")) if dest.exists() else True


def test_cve_2025_4517_symlink_chain_refused(server, tmp_path: Path):
    src = _serve(server, cve_2025_4517_tar(), name="PhC-C2DL-PSC.tar")
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="symbolic link.*links and special files are refused"):
        fetch(src, dest=dest, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["dest"]  # nothing escaped beside dest
    left = [p for p in dest.rglob("*") if p.name not in (".downloads", ".cellrobust.lock")]
    assert left == [] and not (dest / FOLDER).exists()


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo", "chardev", "dotdot", "abs"])
def test_tar_special_and_escaping_entries_refused(tmp_path: Path, kind: str):
    info = tarfile.TarInfo("set/x")
    data = None
    if kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "inside.txt"  # even a harmless link
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, "set/inside.txt"
    elif kind == "fifo":
        info.type = tarfile.FIFOTYPE
    elif kind == "chardev":
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    else:
        info.name, data = ("../x" if kind == "dotdot" else "/tmp/x"), b"pwned"
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar([(tarfile.TarInfo("set/inside.txt"), b"ok"), (info, data)]))
    with pytest.raises(DataError, match="unsafe archive"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()


def test_zip_bomb_refused_before_writing(tmp_path: Path):
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(make_zip({"set/zeros.bin": bytes(80 * 2**20)}))  # 80 MiB -> ~80 KB
    assert archive.stat().st_size < 2**20
    with pytest.raises(DataError, match="decompression bomb"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tar_gz_bomb_and_caps_refused(tmp_path: Path):
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(_tar([(tarfile.TarInfo("set/zeros.bin"), bytes(80 * 2**20))], "w:gz"))
    with pytest.raises(DataError, match="decompression bomb"):
        safe_extract(archive, tmp_path / "out")
    small = tmp_path / "many.zip"
    small.write_bytes(make_zip({f"set/{i}.txt": b"x" * 100 for i in range(20)}))
    with pytest.raises(DataError, match="above the caps of 10 entries"):
        safe_extract(small, tmp_path / "out2", max_members=10)
    with pytest.raises(DataError, match="/ 1000 bytes"):
        safe_extract(small, tmp_path / "out3", max_bytes=1000)
    assert not any((tmp_path / n).exists() for n in ("out", "out2", "out3"))


def test_extracted_permissions_are_ordinary(server, tmp_path: Path):
    flat = make_zip({"01/t000.txt": b"frame", "01/evil.txt": b"x"},
                    modes={"01/evil.txt": 0o104777})  # setuid + world-writable in the archive
    path = fetch(_serve(server, flat), dest=tmp_path, progress=False)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert stat.S_IMODE((path / "01" / "evil.txt").stat().st_mode) == 0o666 & ~umask
    assert (path / "01" / "t000.txt").read_bytes() == b"frame"


def test_unknown_digest_refused_unless_allowed(server, tmp_path: Path):
    src = _serve(server, _ok_zip(), sha=False)
    with pytest.raises(InputError, match="no SHA-256 is known"):
        fetch(src, dest=tmp_path, progress=False)
    assert server.requests == []  # refused before any download
    with pytest.warns(UserWarning, match=f"SHA-256 is {hashlib.sha256(_ok_zip()).hexdigest()}"):
        path = fetch(src, dest=tmp_path, progress=False, allow_unverified=True)
    assert '"verified": false' in (path / MARKER).read_text()
    other = fetch(src, dest=tmp_path / "b", progress=False,
                  sha256=hashlib.sha256(_ok_zip()).hexdigest().upper())
    assert '"verified": true' in (other / MARKER).read_text()


def test_default_source_is_https():
    assert SOURCES["psc"].url.startswith("https://")


def test_stale_oversize_part_discarded_on_416(server, tmp_path: Path):
    body = _ok_zip()
    src = _serve(server, body)
    part = tmp_path / ".downloads" / "PhC-C2DL-PSC.zip.part"
    part.parent.mkdir()
    part.write_bytes(b"stale" * len(body))  # longer than the remote file
    path = fetch(src, dest=tmp_path, progress=False)
    assert (path / "01" / "t000.txt").read_bytes() == b"frame"
    assert [r[1] for r in server.requests] == [f"bytes={len(body) * 5}-", None]


def test_part_of_remote_length_but_wrong_content_fails_digest(server, tmp_path: Path):
    body = _ok_zip()
    src = _serve(server, body)
    part = tmp_path / ".downloads" / "PhC-C2DL-PSC.zip.part"
    part.parent.mkdir()
    part.write_bytes(bytes(len(body)))  # 416 says "complete", the digest says otherwise
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(src, dest=tmp_path, progress=False)
    assert not part.exists()
    assert (fetch(src, dest=tmp_path, progress=False) / "01").is_dir()


def test_interrupted_extraction_folder_removed_next_run(server, tmp_path: Path):
    stale = tmp_path / f".{FOLDER}.extract-killed"
    (stale / FOLDER / "01").mkdir(parents=True)
    (stale / FOLDER / "01" / "big.bin").write_bytes(bytes(1000))
    path = fetch(_serve(server, _ok_zip()), dest=tmp_path, progress=False)
    assert not stale.exists() and (path / MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".downloads", FOLDER]


@pytest.mark.parametrize("flags, expected", [
    (["--url", "notaurl"], "url: expected an http:// or https://"),
    (["--url", "ftp://host/a.zip"], "url: expected an http:// or https://"),
    (["--sha256", "nothex"], "sha256: expected 64 hexadecimal digits"),
    ([], "no SHA-256 is known"),
])
def test_cli_usage_errors_at_once(server, tmp_path: Path, capsys, flags, expected):
    code = main(["data", "fetch", "psc", "--dest", str(tmp_path), "--quiet", *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and expected in err
    assert server.requests == [] and not (tmp_path / FOLDER).exists()


def test_cli_allow_unverified_prints_digest_to_pin(server, tmp_path: Path, capsys):
    src = _serve(server, _ok_zip(), sha=False)
    code = main(["data", "fetch", "psc", "--dest", str(tmp_path), "--url", src.url, "--quiet",
                 "--allow-unverified"])
    out, err = capsys.readouterr()
    assert code == 0 and out.strip() == str(tmp_path / FOLDER)
    assert hashlib.sha256(_ok_zip()).hexdigest() in err and err.count("\n") == 1
    code = main(["data", "fetch", "psc", "--dest", str(tmp_path / "x"), "--url", src.url,
                 "--quiet", "--sha256", "0" * 64])
    assert code == 1 and "checksum mismatch" in capsys.readouterr().err
