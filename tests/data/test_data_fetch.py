"""`fetch` and `cellrobust data fetch`, offline against an HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import threading
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cellrobust._validation import DataError
from cellrobust.cli import main
from cellrobust.data import open_dataset
from cellrobust.data.fetch import MARKER, SOURCES, Source, fetch, safe_extract


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` with HTTP Range support; ``server.cut`` truncates a response once."""

    def do_GET(self):  # noqa: N802 - http.server API
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start, status = 0, 200
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and srv.ranges:
            start, status = int(match.group(1)), 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        cut = srv.cut.pop(self.path, None)
        self.wfile.write(body[start:cut])

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.cut, srv.ranges = {}, [], {}, True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _ctc_zip(extra: dict[str, bytes] | None = None, top: str = "PhC-C2DL-PSC") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for t in (150, 151):
            for sub, name in (("01", f"t{t:03d}.tif"), ("01_ST/SEG", f"man_seg{t:03d}.tif")):
                arr = io.BytesIO()
                tifffile.imwrite(arr, np.full((8, 8), t % 7 + 1, np.uint8))
                zf.writestr(f"{top}/{sub}/{name}", arr.getvalue())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def _source(server, name: str, body: bytes, sha=True) -> Source:
    server.files[f"/{name}"] = body
    url = f"http://127.0.0.1:{server.server_address[1]}/{name}"
    digest = hashlib.sha256(body).hexdigest() if sha else None
    return replace(SOURCES["psc"], url=url, sha256=digest, size=len(body))


def test_fetch_verifies_extracts_and_is_idempotent(server, tmp_path: Path):
    src = _source(server, "PhC-C2DL-PSC.zip", _ctc_zip())
    path = fetch(src, dest=tmp_path, progress=False)
    assert path == tmp_path / "PhC-C2DL-PSC" and (path / MARKER).is_file()
    ds = open_dataset(path, masks="st")
    assert ds.format == "ctc" and len(ds) == 2
    assert not (tmp_path / ".downloads" / "PhC-C2DL-PSC.zip").exists()  # archive removed
    assert fetch(src, dest=tmp_path, progress=False) == path and len(server.requests) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".PhC")] == []


def test_fetch_resumes_with_range(server, tmp_path: Path):
    body = _ctc_zip()
    src = _source(server, "PhC-C2DL-PSC.zip", body)
    server.cut["/PhC-C2DL-PSC.zip"] = len(body) // 2  # the connection drops half way
    with pytest.raises(DataError, match="interrupted after .* the next fetch resumes"):
        fetch(src, dest=tmp_path, progress=False)
    part = tmp_path / ".downloads" / "PhC-C2DL-PSC.zip.part"
    assert part.stat().st_size == len(body) // 2 and not (tmp_path / "PhC-C2DL-PSC").exists()
    path = fetch(src, dest=tmp_path, progress=False)
    assert server.requests[-1] == ("/PhC-C2DL-PSC.zip", f"bytes={len(body) // 2}-")
    assert len(open_dataset(path, masks="st")) == 2 and not part.exists()


def test_fetch_restarts_when_server_ignores_range(server, tmp_path: Path):
    body = _ctc_zip()
    src = _source(server, "PhC-C2DL-PSC.zip", body)
    server.ranges = False
    (tmp_path / ".downloads").mkdir()
    (tmp_path / ".downloads" / "PhC-C2DL-PSC.zip.part").write_bytes(b"garbage")
    assert (fetch(src, dest=tmp_path, progress=False) / "01").is_dir()


def test_corrupted_download_fails_checksum_and_leaves_nothing(server, tmp_path: Path):
    body = bytearray(_ctc_zip())
    src = _source(server, "PhC-C2DL-PSC.zip", bytes(body))
    body[len(body) // 3] ^= 0xFF  # the server now sends a corrupted copy
    server.files["/PhC-C2DL-PSC.zip"] = bytes(body)
    with pytest.raises(DataError, match="checksum mismatch - expected SHA-256"):
        fetch(src, dest=tmp_path, progress=False)
    assert not (tmp_path / "PhC-C2DL-PSC").exists()
    assert list((tmp_path / ".downloads").iterdir()) == []  # no partial file left to resume
    assert [p for p in tmp_path.iterdir() if p.name != ".downloads"] == []


@pytest.mark.parametrize("evil", ["../evil.txt", "/abs/evil.txt", "PhC-C2DL-PSC/../../evil.txt"])
def test_malicious_entry_rejected_nothing_extracted(server, tmp_path: Path, evil: str):
    src = _source(server, "PhC-C2DL-PSC.zip", _ctc_zip({evil: b"pwned"}))
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="unsafe archive.*evil.txt"):
        fetch(src, dest=dest, progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (dest / "PhC-C2DL-PSC").exists()
    assert [p.name for p in dest.iterdir() if p.name != ".downloads"] == []


def test_symlink_escaping_rejected(tmp_path: Path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("data/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "../../etc/passwd")
    with pytest.raises(DataError, match="symbolic link to '../../etc/passwd'"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_existing_user_folder_is_not_touched(server, tmp_path: Path):
    (tmp_path / "PhC-C2DL-PSC").mkdir()
    (tmp_path / "PhC-C2DL-PSC" / "mine.txt").write_text("keep")
    src = _source(server, "PhC-C2DL-PSC.zip", _ctc_zip())
    with pytest.raises(DataError, match="not created by fetch"):
        fetch(src, dest=tmp_path, progress=False)
    assert (tmp_path / "PhC-C2DL-PSC" / "mine.txt").read_text() == "keep"


def test_cli_fetch_prints_path_and_warns_without_digest(server, tmp_path: Path, capsys):
    src = _source(server, "PhC-C2DL-PSC.zip", _ctc_zip(), sha=False)
    assert main(["data", "fetch", "psc", "--dest", str(tmp_path), "--url", src.url,
                 "--quiet"]) == 2  # no digest known: refused before any download
    assert "allow an unverified download" in capsys.readouterr().err
    code = main(["data", "fetch", "psc", "--dest", str(tmp_path), "--url", src.url, "--quiet",
                 "--allow-unverified"])
    out, err = capsys.readouterr()
    assert code == 0 and out.strip() == str(tmp_path / "PhC-C2DL-PSC")
    assert "without verification" in err
    code = main(["data", "fetch", "psc", "--dest", str(tmp_path / "x"), "--url", src.url,
                 "--sha256", "0" * 64, "--quiet"])
    assert code == 1 and "checksum mismatch" in capsys.readouterr().err


def test_cli_fetch_unreachable_is_one_line(tmp_path: Path, capsys):
    code = main(["data", "fetch", "psc", "--dest", str(tmp_path), "--quiet",
                 "--allow-unverified", "--url", "http://127.0.0.1:9/PhC-C2DL-PSC.zip"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "cannot connect" in err


def test_tar_archives_checked_too(tmp_path: Path):
    import tarfile

    good, bad = tmp_path / "good.tar.gz", tmp_path / "bad.tar"
    payload = tmp_path / "payload.txt"
    payload.write_text("ok")
    with tarfile.open(good, "w:gz") as tf:
        tf.add(payload, arcname="set/01/readme.txt")
    safe_extract(good, tmp_path / "out")
    assert (tmp_path / "out" / "set" / "01" / "readme.txt").read_text() == "ok"
    with tarfile.open(bad, "w") as tf:
        link = tarfile.TarInfo("set/link")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        tf.addfile(link)
    with pytest.raises(DataError, match="symbolic link to '../../../etc/passwd'"):
        safe_extract(bad, tmp_path / "out2")
