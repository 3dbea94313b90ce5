"""``py:MODULE:FACTORY`` through the ``cellrobust`` console script finds a module in the working
directory (as ``python -m cellrobust`` does), and only with ``--allow-code``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

MODULE = '''
import numpy as np


class Half:
    name = "factory"

    def segment(self, images):
        return (np.asarray(images) > 0.5).astype(np.int32)


def build(**options):
    return Half()
'''


def _script() -> str:
    found = Path(sys.executable).with_name("cellrobust")
    if not found.is_file():
        found = shutil.which("cellrobust")
    if not found:
        pytest.skip("the cellrobust console script is not installed")
    return str(found)


@pytest.mark.parametrize("allow, rc", [(True, 0), (False, 2)])
def test_py_module_in_the_working_directory(tmp_path, allow, rc):
    (tmp_path / "cwd_segmenter_mod.py").write_text(MODULE)
    image = np.zeros((32, 40), np.float32)
    image[8:20, 10:30] = 1
    tifffile.imwrite(tmp_path / "frame.tif", image)
    command = [_script(), "predict", "half=py:cwd_segmenter_mod:build", "--data", "frame.tif",
               "--out", "out", "--quiet"] + (["--allow-code"] if allow else [])
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == rc, done.stderr
    if allow:
        written = sorted((tmp_path / "out").rglob("*.tif"))
        assert written, "predict wrote no labels"
        labels = tifffile.imread(written[0])
        assert labels.shape == image.shape and (labels > 0).sum() == 12 * 20
    else:
        assert done.stderr.count("\n") == 1 and "--allow-code" in done.stderr
