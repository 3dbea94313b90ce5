"""Table-driven bad-input suite: the real CLI over generated bad files and option values.

Every case must end with the expected exit status (2 usage, 1 runtime), exactly one line on
stderr, and never ``internal error``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from cellrobust.cli import main
from test_security_limits import make_npz_header_bomb, make_tiff_header_bomb


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    f = {"root": root}
    f["img"] = root / "img.tif"
    tifffile.imwrite(f["img"], rng.integers(0, 255, (32, 32), dtype=np.uint8))
    data = f["img"].read_bytes()
    f["trunc"] = root / "trunc.tif"
    f["trunc"].write_bytes(data[: len(data) // 2])
    f["bomb"] = make_tiff_header_bomb(root / "bomb.tif")
    f["text_npz"] = root / "text.npz"
    f["text_npz"].write_text("not an archive\n")
    np.savez_compressed(root / "ok.npz", images=np.zeros((2, 8, 8), np.uint8))
    whole = (root / "ok.npz").read_bytes()
    f["cut_npz"] = root / "cut.npz"
    f["cut_npz"].write_bytes(whole[: len(whole) // 2])
    f["npz_bomb"] = make_npz_header_bomb(root / "npzbomb.npz")
    f["nan"] = root / "nan.tif"
    tifffile.imwrite(f["nan"], np.full((32, 32), np.nan, np.float32))
    f["bool"] = root / "bool.tif"
    tifffile.imwrite(f["bool"], rng.random((32, 32)) > 0.5)
    f["odd"] = root / os.fsdecode(b"caf\xe9.tif")  # not UTF-8: a surrogate-escaped name
    tifffile.imwrite(f["odd"], rng.integers(0, 255, (32, 32), dtype=np.uint8))
    f.update(_checkpoints(root))
    return f


def _checkpoints(root: Path) -> dict[str, Path]:
    import torch

    from cellrobust.models.checkpoint import save_checkpoint
    from cellrobust.models.unet import UNetConfig, build_unet

    config = UNetConfig(width=2, depth=1)
    good = save_checkpoint(root / "good.pt", build_unet(config), config)
    edits = {
        "ck_no_config": lambda p: p.pop("model_config"),
        "ck_no_state": lambda p: p.pop("state_dict"),
        "ck_version": lambda p: p.update(format_version="x"),
        "ck_meta": lambda p: p.update(meta="text"),
        "ck_huge": lambda p: p["model_config"].update(width=2048, depth=6),
        "ck_mismatch": lambda p: p["model_config"].update(width=3),
        "ck_nan": lambda p: p["state_dict"]["head.weight"].fill_(float("nan")),
    }
    out = {}
    for name, edit in edits.items():
        payload = torch.load(good, weights_only=True)
        edit(payload)
        torch.save(payload, root / f"{name}.pt")
        out[name] = root / f"{name}.pt"
    return out


def _predict(ck: str):
    return lambda f, out: ["predict", str(f[ck]), "--data", str(f["img"]), "--out", out,
                           "--quiet"]


def _corrupt(src: str, *extra: str, severity: str = "10"):
    return lambda f, out: ["corrupt", str(f[src]), "--artefact", "gaussian_noise",
                           "--severity", severity, "--out", out, *extra]


CASES = [
    # name, argv(files, out), expected exit status, marks
    ("tiff-header-bomb", _corrupt("bomb"), 1, ()),
    ("truncated-tiff", _corrupt("trunc"), 1, ()),
    ("predict-truncated-tiff",
     lambda f, o: ["predict", "dog_otsu", "--data", str(f["trunc"]), "--out", o, "--quiet"], 1, ()),
    ("severity-inf", _corrupt("img", severity="inf"), 2, ()),
    ("severity-1e308", _corrupt("img", severity="1e308"), 2, ()),
    ("severity-nan", _corrupt("img", severity="nan"), 2, ()),
    ("nan-image-corrupt", _corrupt("nan"), 1,
     ()),
    ("nan-image-predict",
     lambda f, o: ["predict", "dog_otsu", "--data", str(f["nan"]), "--out", o, "--quiet"], 1,
     ()),
    ("bool-image-predict",
     lambda f, o: ["predict", "dog_otsu", "--data", str(f["bool"]), "--out", o, "--quiet"], 1,
     ()),
    ("text-npz", lambda f, o: ["data", "info", str(f["text_npz"])], 1, ()),
    ("truncated-npz", lambda f, o: ["data", "info", str(f["cut_npz"])], 1,
     ()),
    ("npz-header-bomb", lambda f, o: ["data", "info", str(f["npz_bomb"])], 1,
     ()),
    ("ckpt-missing-config", _predict("ck_no_config"), 1, ()),
    ("ckpt-missing-state", _predict("ck_no_state"), 1, ()),
    ("ckpt-bad-version", _predict("ck_version"), 1, ()),
    ("ckpt-meta-not-dict", _predict("ck_meta"), 1, ()),
    ("ckpt-huge-width", _predict("ck_huge"), 1, ()),
    ("ckpt-weights-mismatch", _predict("ck_mismatch"), 1, ()),
    ("ckpt-nan-weights", _predict("ck_nan"), 1, ()),
    ("threshold-2",
     lambda f, o: ["predict", str(f["root"] / "good.pt"), "--data", str(f["img"]), "--out", o,
                   "--threshold", "2", "--quiet"], 2, ()),
    ("batch-size-0",
     lambda f, o: ["predict", str(f["root"] / "good.pt"), "--data", str(f["img"]), "--out", o,
                   "--batch-size", "0", "--quiet"], 2,
     ()),
    ("workers-minus-2",
     lambda f, o: ["sweep", "--segmenter", "otsu", "--out", o, "--workers", "-2", "--quiet"], 2,
     ()),
    ("workers-many",
     lambda f, o: ["sweep", "--segmenter", "otsu", "--out", o, "--workers", "many", "--quiet"],
     2, ()),
    ("study-workers-0",
     lambda f, o: ["study", "--out", o, "--workers", "0", "--quiet"], 2, ()),
    ("thresholds-0-0-1",
     lambda f, o: ["evaluate", "--model", "otsu", "--thresholds", "0:0:1", "--quiet"], 2,
     ()),
    ("n-boot-1e8", lambda f, o: ["report", str(f["root"]), "--n-boot", "1e8"], 2,
     ()),
    ("non-utf8-name-corrupt", _corrupt("odd"), 0,
     ()),
    ("fetch-url-notaurl",
     lambda f, o: ["data", "fetch", "psc", "--dest", o, "--url", "notaurl", "--quiet"], 2, ()),
    ("fetch-sha256-nothex",
     lambda f, o: ["data", "fetch", "psc", "--dest", o, "--sha256", "nothex", "--quiet"], 2, ()),
    ("fetch-unverified",
     lambda f, o: ["data", "fetch", "psc", "--dest", o, "--quiet"], 2, ()),
    ("corrupt-out-is-input",
     lambda f, o: ["corrupt", str(f["img"]), "--artefact", "gaussian_noise", "--severity",
                   "10", "--out", str(f["root"])], 2,
     ()),
]


@pytest.mark.parametrize(
    "argv, expected",
    [pytest.param(argv, code, id=name, marks=marks) for name, argv, code, marks in CASES])
def test_bad_input_is_one_clear_line(files, tmp_path: Path, capsys, argv, expected):
    code = main(argv(files, str(tmp_path / "out")))
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err
    assert code == expected, err
    if expected:
        assert err.count("\n") == 1 and err.startswith("cellrobust: error: "), err
