"""Shared fixtures: paths to the real data beside the clone, tiny synthetic inputs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_configure(config):
    """Tests (and the CLI subprocesses they start) keep their caches out of ``~/.cache``."""
    root = tempfile.mkdtemp(prefix="cellrobust-test-cache-")
    os.environ.setdefault("CELLROBUST_CACHE_DIR", root)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(root, "inductor"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the clone (skips when absent, e.g. outside CI)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def psc_dir(shared_data: Path) -> Path:
    return shared_data / "psc"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
