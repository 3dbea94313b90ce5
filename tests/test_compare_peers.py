"""Agreement of cellrobust.metrics with StarDist, Cellpose and py-ctcmetrics.

The peers run in their own virtual environment (they pin other versions of numpy/torch), found
via ``CELLROBUST_PEER_PYTHON`` or the first ``.venv-peers-*/bin/python`` of the repository that
imports the peer; each peer's test is skipped with the reason when none does. One subprocess per
peer computes its numbers on >= 200 random label-image pairs written to an ``.npz``.

Known, documented differences (asserted, not hidden):

* StarDist computes scores in float32 (``_safe_divide``) and compares them with the threshold
  cast to float32, so a score within float32 rounding (~3e-8) of a threshold, but not equal to
  it, could be classified differently; such pairs would be left out of the StarDist comparison
  (Cellpose, float64, still checks them) — none of the 240 pairs is. Its summed scores are
  float32 sums, so ``mean_matched_score``/``panoptic_quality`` agree to ~1e-6, its ratios of
  counts to 1e-9.
* Cellpose counts ``max(label)`` objects (non-sequential labels inflate FN/FP), so it is given
  sequentially relabelled images; its ``ap`` is float32 (compared to 1e-6), counts exactly;
  for two empty images it reports NaN where cellrobust reports ``empty``.
* py-ctcmetrics SEG is 0 for a frame set without reference objects (cellrobust: ``empty``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cellrobust.metrics import match, match_dataset, seg_dataset, seg_score
from cellrobust.models.postprocess import relabel_sequential

pytestmark = pytest.mark.compare

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.1, 0.3, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
N_PAIRS = 240
N_OTHER = 80  # pairs also compared with the "iot" and "iop" criteria


PEER_PACKAGES = ("stardist", "cellpose", "ctc_metrics")


def _peer_python() -> str | None:
    """CELLROBUST_PEER_PYTHON, else the .venv-peers-*/bin/python holding most of the peers."""
    if os.environ.get("CELLROBUST_PEER_PYTHON"):
        python = os.environ["CELLROBUST_PEER_PYTHON"]
        return python if Path(python).is_file() else None
    best, best_n = None, 0
    for python in sorted(REPO.glob(".venv-peers-*/bin/python")):
        venv = python.parents[1]
        n = sum(any(venv.glob(f"lib/python*/site-packages/{pkg}")) for pkg in PEER_PACKAGES)
        if n > best_n:
            best, best_n = str(python), n
    return best


# ---------------------------------------------------------------- random label-image pairs
def _blobs(rng, shape, n, *, big_ids: bool) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    ids = rng.choice(np.arange(1, 60000), size=n, replace=False) if big_ids else np.arange(1, n + 1)
    for i in ids:
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        ry, rx = rng.uniform(0.5, 8, size=2)
        labels[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = i
    return labels


def _perturb(rng, true: np.ndarray) -> np.ndarray:
    pred = np.roll(true, tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
    ids = np.unique(pred[pred > 0])
    drop = ids[rng.random(ids.size) < 0.2]
    pred[np.isin(pred, drop)] = 0
    extra = _blobs(rng, true.shape, int(rng.integers(0, 4)), big_ids=False)
    pred[(extra > 0) & (pred == 0)] = extra[(extra > 0) & (pred == 0)] + 70000
    if rng.random() < 0.3:  # split objects along a line
        pred[:, int(rng.integers(1, true.shape[1]))] = 0
    if rng.random() < 0.3:  # merge: relabel some objects into one
        ids = np.unique(pred[pred > 0])
        if ids.size > 1:
            pred[np.isin(pred, ids[: ids.size // 2])] = ids[0]
    return pred


def make_pairs(seed: int = 0, n: int = N_PAIRS) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random pairs, with the corner cases listed first."""
    rng = np.random.default_rng(seed)
    shape = (40, 48)
    zero = np.zeros(shape, np.int32)
    one_px = zero.copy()
    one_px[3, 4], one_px[10, 20], one_px[30, 30] = 5, 9, 2
    one_px_pred = one_px.copy()
    one_px_pred[30, 30] = 0
    one_px_pred[30, 31] = 1
    some = _blobs(rng, shape, 6, big_ids=True)
    pairs = [(zero, zero), (zero, some), (some, zero), (one_px, one_px_pred), (one_px, one_px),
             (some, some), (np.zeros((1, 1), np.int32), np.zeros((1, 1), np.int32))]
    while len(pairs) < n:
        true = _blobs(rng, shape, int(rng.integers(0, 25)), big_ids=bool(rng.random() < 0.5))
        pairs.append((true, _perturb(rng, true)))
    return pairs


# ---------------------------------------------------------------- peer script
PEER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, traceback, numpy as np
    data = np.load(sys.argv[1]); out = {}; N_OTHER = int(data["n_other"])
    n = int(data["n"]); thr = tuple(float(t) for t in data["thresholds"])
    trues = [data[f"t{i}"] for i in range(n)]; preds = [data[f"p{i}"] for i in range(n)]

    def stardist():
        from stardist.matching import matching, matching_dataset
        res = {crit: [[m._asdict() for m in matching(t, p, thresh=thr, criterion=crit)]
                      for t, p in list(zip(trues, preds))[:count]]
               for crit, count in (("iou", n), ("iot", N_OTHER), ("iop", N_OTHER))}
        ok = [int(i) for i in data["ok"]]
        for by_image in (False, True):
            ds = matching_dataset([trues[i] for i in ok], [preds[i] for i in ok], thresh=thr,
                                  by_image=by_image, show_progress=False)
            res[f"dataset_{by_image}"] = [d._asdict() for d in ds]
        return res

    def cellpose():
        from cellpose.metrics import average_precision
        seq_t = [data[f"st{i}"] for i in range(n)]; seq_p = [data[f"sp{i}"] for i in range(n)]
        ap, tp, fp, fn = average_precision(seq_t, seq_p, threshold=list(thr))
        return dict(ap=ap.tolist(), tp=tp.tolist(), fp=fp.tolist(), fn=fn.tolist())

    def ctc():
        import tifffile
        from ctc_metrics.utils.representations import match
        from ctc_metrics.metrics import seg
        refs, ious, frames = [], [], []
        for i in (int(i) for i in data["ctc"]):
            rp = os.path.join(sys.argv[2], f"r{i}.tif"); cp = os.path.join(sys.argv[2], f"c{i}.tif")
            tifffile.imwrite(rp, trues[i]); tifffile.imwrite(cp, preds[i])
            lr, lc, mr, mc, iou = match(rp, cp)
            refs.append(lr); ious.append(iou); frames.append(seg([lr], [iou]))
        return dict(seg=seg(refs, ious), frames=frames)

    for name, fn in (("stardist", stardist), ("cellpose", cellpose), ("ctc", ctc)):
        try:
            out[name] = fn()
        except ImportError as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    """
)


def _ctc_usable(pairs) -> list[int]:
    """CTC masks always contain background; py-ctcmetrics assumes label 0 is present."""
    return [i for i, (t, p) in enumerate(pairs) if (t == 0).any() and (p == 0).any()]


def _run_peers(python: str, pairs, tmp_path: Path) -> dict:
    ok = [i for i, pair in enumerate(pairs) if not _float32_ambiguous(*pair, "iou")]
    arrays = {"n": len(pairs), "n_other": N_OTHER, "thresholds": np.asarray(THRESHOLDS),
              "ok": np.asarray(ok),
              "ctc": np.asarray(_ctc_usable(pairs))}
    for i, (t, p) in enumerate(pairs):
        arrays[f"t{i}"], arrays[f"p{i}"] = t, p
        arrays[f"st{i}"], arrays[f"sp{i}"] = relabel_sequential(t), relabel_sequential(p)
    npz, script = tmp_path / "pairs.npz", tmp_path / "peer.py"
    np.savez(npz, **arrays)
    script.write_text(PEER_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    done = subprocess.run([python, str(script), str(npz), str(tmp_path)],
                          capture_output=True, text=True, timeout=600, env=env)
    if done.returncode != 0 and "ModuleNotFoundError" in done.stderr:
        pytest.skip(f"peer environment {python} is incomplete: {done.stderr.splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def peers(pairs, tmp_path_factory) -> dict:
    python = _peer_python()
    if python is None:
        pytest.skip("no peer environment: set CELLROBUST_PEER_PYTHON or create a "
                    ".venv-peers-* virtual environment with stardist, cellpose and "
                    "py-ctcmetrics (make bench-setup)")
    return _run_peers(python, pairs, tmp_path_factory.mktemp("peers"))


def _peer(peers: dict, name: str) -> dict:
    result = peers[name]
    if "error" in result:
        pytest.skip(f"peer {name!r} not importable in the peer environment: {result['error']}")
    return result


@pytest.fixture(scope="module")
def pairs():
    return make_pairs()


def _float32_ambiguous(t, p, criterion: str) -> bool:
    """True when StarDist's float32 test ``float32(s) >= float32(τ)`` differs from ``s >= τ``.

    (StarDist's scores are float32 and NumPy casts the Python-float threshold to float32.)
    """
    from cellrobust.metrics import overlap

    s = overlap(t, p).scores(criterion)
    thr = np.asarray(THRESHOLDS)[:, None]
    return bool(np.any((s >= thr) != (s.astype(np.float32) >= thr.astype(np.float32))))


def test_match_equals_stardist(pairs, peers):
    peer = _peer(peers, "stardist")
    ambiguous = 0
    for crit in ("iou", "iot", "iop"):
        assert len(peer[crit]) == (len(pairs) if crit == "iou" else N_OTHER)
        for (t, p), theirs in zip(pairs, peer[crit]):
            ours = match(t, p, thresholds=THRESHOLDS, criterion=crit, empty=0.0)
            if _float32_ambiguous(t, p, crit):
                ambiguous += 1
                continue
            col = {k: np.array([row[k] for row in theirs], dtype=float) for k in theirs[0]
                   if k not in ("criterion",)}
            for mine, key in (("tp", "tp"), ("fp", "fp"), ("fn", "fn")):
                np.testing.assert_array_equal(getattr(ours, mine), col[key])
            assert (ours.n_true, ours.n_pred) == (theirs[0]["n_true"], theirs[0]["n_pred"])
            for mine, key in (("precision", "precision"), ("recall", "recall"),
                              ("ap", "accuracy"), ("f1", "f1")):
                np.testing.assert_allclose(getattr(ours, mine), col[key], rtol=0, atol=1e-9)
            for mine, key in (("mean_iou", "mean_matched_score"), ("pq", "panoptic_quality"),
                              ("mean_true_score", "mean_true_score")):  # float32 in StarDist
                np.testing.assert_allclose(getattr(ours, mine), col[key], rtol=0, atol=2e-6)
    assert ambiguous < 0.1 * (len(pairs) + 2 * N_OTHER)


def test_match_dataset_equals_stardist(pairs, peers):
    peer = _peer(peers, "stardist")
    # the peer summarised the pairs without float32-ambiguous IoUs (see module docstring)
    ok = [pair for pair in pairs if not _float32_ambiguous(*pair, "iou")]
    assert len(ok) >= 200
    for by_image, average in ((False, "micro"), (True, "macro")):
        ours = match_dataset(ok, thresholds=THRESHOLDS, average=average, empty=0.0)
        for i, s in enumerate(peer[f"dataset_{by_image}"]):
            assert int(ours.pooled.tp[i]) == s["tp"] and int(ours.pooled.fn[i]) == s["fn"]
            for mine, key in (("precision", "precision"), ("recall", "recall"),
                              ("ap", "accuracy"), ("f1", "f1")):
                assert ours.scores[mine][i] == pytest.approx(s[key], abs=1e-9), (average, key)
            assert ours.scores["pq"][i] == pytest.approx(s["panoptic_quality"], abs=2e-6)


def test_match_equals_cellpose(pairs, peers):
    peer = _peer(peers, "cellpose")
    for k, (t, p) in enumerate(pairs):
        ours = match(t, p, thresholds=THRESHOLDS)
        assert list(ours.tp) == peer["tp"][k]
        assert list(ours.fp) == peer["fp"][k]
        assert list(ours.fn) == peer["fn"][k]
        if ours.n_true == ours.n_pred == 0:
            assert np.all(np.isnan(peer["ap"][k]))  # Cellpose: 0/0 -> NaN; ours: `empty`
            assert np.all(ours.ap == 1.0)
        else:
            np.testing.assert_allclose(ours.ap, peer["ap"][k], atol=1e-6)  # float32 in Cellpose


def test_seg_equals_py_ctcmetrics(pairs, peers):
    peer = _peer(peers, "ctc")
    usable = [pairs[i] for i in _ctc_usable(pairs)]
    assert len(usable) >= 200
    assert seg_dataset(usable).seg == pytest.approx(peer["seg"], abs=1e-9)
    for (t, p), theirs in zip(usable, peer["frames"]):
        ours = seg_score(t, p)
        assert (ours.seg if ours.n_ref else 0.0) == pytest.approx(theirs, abs=1e-9)


def test_pairs_cover_corner_cases(pairs):
    assert len(pairs) >= 200
    assert any(not t.any() and not p.any() for t, p in pairs)  # label 0 only
    assert any(t.max() > len(np.unique(t)) for t, _ in pairs)  # non-sequential labels
    assert any((np.bincount(t.ravel()) == 1).any() for t, _ in pairs)  # one-pixel objects


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
