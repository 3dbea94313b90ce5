"""Every Python block of README.md runs as written (from the repository root, the shared data
beside it), so the documentation cannot drift from the API."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path):
    code = BLOCKS[index]
    if "../shared/data" in code and not (ROOT.parent / "shared" / "data").is_dir():
        pytest.skip("the shared data set is not beside the checkout")
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(code, f"README.md block {index}", "exec"), {"__name__": "readme"})
    finally:
        os.chdir(cwd)
