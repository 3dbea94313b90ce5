"""Data-loading workers: started with spawn, so a parent that already ran OpenCV's thread pool
(as ``cellrobust study`` does before training) cannot deadlock them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).parent

SCRIPT = """
import sys
import cv2
import numpy as np
sys.path.insert(0, {tests!r})
from test_training import synthetic_samples
from cellrobust.training import recipe_config, train

def main():
    # Parallel OpenCV code in the parent starts its thread pool; a forked worker inherited that
    # pool's locks and hung in cv2.setNumThreads (the study deadlock this test guards).
    cv2.GaussianBlur(np.random.default_rng(0).random((2048, 2048), np.float32), (31, 31), 5)
    config = recipe_config("augmented", patch_size=32, patches_per_frame=2, epochs=1,
                           workers=1, threads=1, model={{"width": 4}})
    print(train(config, synthetic_samples(2), synthetic_samples(1, seed=1),
                run_dir=sys.argv[1], progress=False))
{entry}
"""


def _run(tmp_path: Path, entry: str) -> subprocess.CompletedProcess:
    script = tmp_path / "train_script.py"
    script.write_text(textwrap.dedent(SCRIPT).format(tests=str(TESTS), entry=entry))
    return subprocess.run([sys.executable, str(script), str(tmp_path / "run")], text=True,
                          capture_output=True, timeout=180)


def test_worker_trains_after_the_parent_used_opencv_threads(tmp_path):
    done = _run(tmp_path, 'if __name__ == "__main__":\n    main()')
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "best.pt").is_file()
    assert (tmp_path / "run" / "history.csv").read_text().count("\n") == 2  # header + 1 epoch


def test_unguarded_script_gets_a_clear_error_not_a_hang(tmp_path):
    done = _run(tmp_path, "main()")
    assert done.returncode != 0
    assert "if __name__ == '__main__':" in done.stderr
    assert "workers=0" in done.stderr
