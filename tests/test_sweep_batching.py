"""The sweep corrupts a cell's images in batches: the table equals the per-image streams' one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellrobust import artefacts
from cellrobust.sweep import SweepConfig, engine, run_cell

sys.path.insert(0, str(Path(__file__).parent))
from _sweep_fakes import ThresholdSegmenter, discs

PATCH_LEVEL = [a for a in artefacts.names() if artefacts.get(a).frame_kernel is None]


def _per_image(samples, artefact, value, config):
    """Today's path: ``apply`` on each sample with its own documented stream."""
    out = []
    for s in samples:
        rng = artefacts.stream(config.seed, s.name, artefact, value)
        corrupted, params = artefacts.apply(s, artefact, value, rng=rng,
                                            normalise=config.normalise)
        out.append((corrupted.with_(name=s.name),
                    json.dumps(params, sort_keys=True, default=engine._jsonable)))
    return out


def _samples():
    """Mixed shapes and dtypes (uint8 48², uint16 40x56, float32 48²), interleaved."""
    a, b = discs(3, size=48, seed=1), discs(2, size=56, seed=2)
    out = []
    for i, s in enumerate(a):
        out.append(s)
        if i < len(b):
            t = b[i]
            out.append(t.with_(image=(t.image[:40].astype(np.uint16) * 200),
                               labels=t.labels[:40], name=f"u16_{i}"))
    out.append(a[0].with_(image=a[0].image.astype(np.float32) + 0.25, name="float"))
    return out


def _table(config, samples, segs, monkeypatch, corrupt) -> pd.DataFrame:
    monkeypatch.setattr(engine, "_corrupt", corrupt)
    parts = [run_cell(config, samples, a, i, segmenters=segs)
             for a in config.artefacts for i in range(6)]
    return pd.concat(parts, ignore_index=True).drop(columns=["runtime_s"])


def test_batched_corruption_gives_the_per_image_table(monkeypatch):
    config = SweepConfig(segmenters=("thresh=py:_sweep_fakes:thresh",), artefacts=PATCH_LEVEL,
                         batch_size=3)
    segs = {"thresh": ThresholdSegmenter("thresh")}
    samples = _samples()
    batched = _table(config, samples, segs, monkeypatch, engine._corrupt)
    reference = _table(config, samples, segs, monkeypatch, _per_image)
    pd.testing.assert_frame_equal(batched, reference, check_exact=True)
    assert len(batched) == len(PATCH_LEVEL) * 6 * len(samples)


@pytest.mark.parametrize("artefact", ["gaussian_noise", "zoom", "debris"])
def test_batched_images_and_labels_are_bit_identical(artefact):
    config = SweepConfig(segmenters=("otsu",), artefacts=(artefact,))
    samples = _samples()
    value = artefacts.get(artefact).ladder[4]
    for (got, gp), (want, wp) in zip(engine._corrupt(samples, artefact, value, config),
                                     _per_image(samples, artefact, value, config)):
        assert got.name == want.name and gp == wp
        assert got.image.dtype == want.image.dtype == np.float32
        np.testing.assert_array_equal(got.image, want.image)
        np.testing.assert_array_equal(got.labels, want.labels)
        assert got.meta == want.meta
