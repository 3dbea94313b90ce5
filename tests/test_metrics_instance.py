"""Instance matching and SEG: known answers from construction, and properties (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cellrobust._validation import InputError
from cellrobust.metrics import (
    DEFAULT_THRESHOLDS,
    match,
    match_dataset,
    overlap,
    seg_dataset,
    seg_score,
)


def squares(shape, boxes, ids=None) -> np.ndarray:
    labels = np.zeros(shape, np.int32)
    for k, (y, x, h, w) in enumerate(boxes):
        labels[y:y + h, x:x + w] = ids[k] if ids else k + 1
    return labels


# ---------------------------------------------------------------- known answers
@pytest.mark.parametrize("shift", [1, 2, 3, 5, 8])
def test_shifted_squares_have_analytic_iou(shift):
    """A 10x10 square shifted by s px along x: IoU = (10 - s) / (10 + s)."""
    true = squares((40, 60), [(5, 5, 10, 10), (20, 30, 10, 10)])
    pred = np.roll(true, shift, axis=1)
    iou = (10 - shift) / (10 + shift)
    result = match(true, pred, thresholds=DEFAULT_THRESHOLDS)
    expected_tp = np.where(np.asarray(DEFAULT_THRESHOLDS) <= iou, 2, 0)
    np.testing.assert_array_equal(result.tp, expected_tp)
    np.testing.assert_allclose(result.sum_iou, expected_tp * iou, rtol=1e-12)
    np.testing.assert_allclose(result.mean_iou[expected_tp > 0], iou, rtol=1e-12)


def test_shifted_discs_iou_matches_lens_area():
    """Two discs of radius r, centres d apart: IoU from the circle-circle lens area."""
    r, d = 30.0, 12.0
    yy, xx = np.mgrid[:200, :200]
    true = (((yy - 100) ** 2 + (xx - 80) ** 2) <= r * r).astype(np.int32)
    pred = (((yy - 100) ** 2 + (xx - 80 - d) ** 2) <= r * r).astype(np.int32) * 7
    lens = 2 * r * r * np.arccos(d / (2 * r)) - d / 2 * np.sqrt(4 * r * r - d * d)
    analytic = lens / (2 * np.pi * r * r - lens)
    iou = overlap(true, pred).scores("iou")
    assert iou.shape == (1,)
    assert iou[0] == pytest.approx(analytic, abs=0.01)  # pixelisation error only


def test_counts_ap_and_pq_of_a_hand_made_case():
    true = squares((30, 30), [(0, 0, 10, 10), (15, 15, 10, 10), (0, 20, 5, 5)])
    pred = squares((30, 30), [(0, 0, 10, 10), (15, 16, 10, 10), (25, 0, 3, 3)], ids=[4, 9, 2])
    r = match(true, pred, thresholds=(0.5, 0.9))
    iou2 = 90 / 110
    np.testing.assert_array_equal(r.tp, [2, 1])
    np.testing.assert_array_equal(r.fp, [1, 2])
    np.testing.assert_array_equal(r.fn, [1, 2])
    np.testing.assert_allclose(r.ap, [2 / 4, 1 / 5])
    np.testing.assert_allclose(r.precision, [2 / 3, 1 / 3])
    np.testing.assert_allclose(r.f1, [4 / 6, 2 / 6])
    np.testing.assert_allclose(r.pq, [(1 + iou2) / 3, 1 / 3])
    rows = r.as_rows()
    assert rows[0]["tp"] == 2 and rows[1]["threshold"] == 0.9 and rows[0]["n_pred"] == 3


def test_hungarian_resolves_competition_like_stardist():
    """One true object split in two halves: IoT of both halves is 0.5, only one may match."""
    true = squares((10, 10), [(0, 0, 4, 4)])
    pred = squares((10, 10), [(0, 0, 4, 2), (0, 2, 4, 2)])
    r = match(true, pred, thresholds=(0.3, 0.5, 0.6), criterion="iot")
    np.testing.assert_array_equal(r.tp, [1, 1, 0])
    np.testing.assert_allclose(r.sum_iou, [0.5, 0.5, 0.0])
    r = match(pred, true, thresholds=(0.5,), criterion="iop")  # same with roles swapped
    np.testing.assert_array_equal(r.tp, [1])


def test_iou_exactly_half_with_two_candidates():
    true = squares((4, 8), [(0, 0, 4, 4)])
    pred = squares((4, 8), [(0, 0, 4, 2), (0, 2, 4, 2)])
    np.testing.assert_array_equal(match(true, pred, thresholds=(0.5, 0.51)).tp, [1, 0])


def test_empty_rules():
    zero = np.zeros((8, 8), np.int32)
    one = squares((8, 8), [(1, 1, 3, 3)])
    assert np.all(match(zero, zero).ap == 1.0)
    assert np.all(match(zero, zero, empty=0.0).ap == 0.0)  # StarDist's convention
    assert np.all(np.isnan(match(zero, zero, empty=np.nan).ap))  # Cellpose's convention
    missed = match(one, zero)
    assert np.all(missed.ap == 0) and np.all(missed.precision == 0) and np.all(missed.fn == 1)
    spurious = match(zero, one)
    assert np.all(spurious.recall == 0) and np.all(spurious.fp == 1)


def test_match_dataset_micro_pools_macro_averages():
    a = squares((20, 20), [(0, 0, 5, 5), (10, 10, 5, 5)])
    b = squares((20, 20), [(0, 0, 5, 5)])
    pairs = [(a, a), (a, b)]
    micro = match_dataset(pairs, thresholds=(0.5,))
    macro = match_dataset(pairs, thresholds=(0.5,), average="macro")
    assert micro.ap[0] == pytest.approx(3 / 4)
    assert macro.ap[0] == pytest.approx((1 + 1 / 2) / 2)
    assert int(micro.pooled.tp[0]) == 3 and micro.pooled.n_true == 4
    assert macro.as_rows()[0]["average"] == "macro"
    with pytest.raises(InputError, match="at least one"):
        match_dataset([])


def test_non_sequential_and_huge_ids_give_same_result():
    rng = np.random.default_rng(3)
    true = rng.integers(0, 6, (30, 30)).astype(np.int64)
    pred = np.roll(true, 1, axis=0)
    ref = match(true, pred, thresholds=(0.1, 0.5))
    remap = np.array([0, 10**9, 7, 123456, 5, 2**40])
    other = match(remap[true], remap[pred][::-1, ::-1][::-1, ::-1], thresholds=(0.1, 0.5))
    np.testing.assert_array_equal(ref.tp, other.tp)
    np.testing.assert_allclose(ref.sum_iou, other.sum_iou)


def test_bad_inputs_are_named():
    a = np.zeros((4, 4), np.int32)
    with pytest.raises(InputError, match="labels_pred: shape"):
        match(a, np.zeros((4, 5), np.int32))
    with pytest.raises(InputError, match="labels_true: labels must be >= 0"):
        match(a - 1, a)
    with pytest.raises(InputError, match="integer labels"):
        match(a.astype(float), a)
    with pytest.raises(InputError, match="thresholds"):
        match(a, a, thresholds=(0.0,))
    with pytest.raises(InputError, match="criterion"):
        match(a, a, criterion="dice")


# ---------------------------------------------------------------- SEG
def test_seg_known_answer():
    true = squares((20, 20), [(0, 0, 4, 4), (10, 10, 4, 4)])
    pred = squares((20, 20), [(0, 0, 4, 3), (10, 10, 4, 2)])  # 3/4 covered; exactly half
    counts = seg_score(true, pred)
    assert counts.n_ref == 2
    assert counts.seg == pytest.approx((12 / 16 + 0) / 2)  # |R∩S| > 0.5|R| is strict
    pooled = seg_dataset([(true, pred), (true, true)])
    assert pooled.seg == pytest.approx((0.75 + 0 + 1 + 1) / 4)
    assert np.isnan(seg_score(np.zeros((3, 3), int), np.zeros((3, 3), int)).seg)


# ---------------------------------------------------------------- properties
labels_2d = arrays(np.int32, st.tuples(st.integers(1, 12), st.integers(1, 12)),
                   elements=st.integers(0, 5))


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(true=labels_2d, data=st.data())
def test_permuting_ids_changes_nothing(true, data):
    pred = data.draw(arrays(np.int32, true.shape, elements=st.integers(0, 5)))
    perm = np.concatenate([[0], data.draw(st.permutations(range(1, 6)))]).astype(np.int32) * 3
    a = match(true, pred, thresholds=(0.2, 0.5, 0.7))
    b = match(perm[true], perm[pred], thresholds=(0.2, 0.5, 0.7))
    np.testing.assert_array_equal(a.tp, b.tp)
    np.testing.assert_allclose(a.sum_iou, b.sum_iou, rtol=1e-12)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(true=labels_2d)
def test_perfect_prediction_matches_everything(true):
    r = match(true, true)
    n = len(np.unique(true[true > 0]))
    assert r.n_true == n and np.all(r.tp == n) and np.all(r.fp == 0) and np.all(r.fn == 0)
    np.testing.assert_allclose(r.sum_iou, n)
    seg = seg_score(true, true).seg
    assert seg == 1.0 if n else np.isnan(seg)
    assert seg_score(true, true, empty=0.0).seg == (1.0 if n else 0.0)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(true=labels_2d, data=st.data())
def test_swapping_true_and_pred_swaps_fp_and_fn(true, data):
    pred = data.draw(arrays(np.int32, true.shape, elements=st.integers(0, 5)))
    a = match(true, pred, thresholds=(0.3, 0.5, 0.8))
    b = match(pred, true, thresholds=(0.3, 0.5, 0.8))
    np.testing.assert_array_equal(a.tp, b.tp)
    np.testing.assert_array_equal(a.fp, b.fn)
    np.testing.assert_array_equal(a.fn, b.fp)
    np.testing.assert_allclose(a.sum_iou, b.sum_iou, rtol=1e-12)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(true=labels_2d, data=st.data())
def test_tp_never_increases_with_threshold(true, data):
    pred = data.draw(arrays(np.int32, true.shape, elements=st.integers(0, 5)))
    r = match(true, pred, thresholds=np.linspace(0.05, 1, 20))
    assert np.all(np.diff(r.tp) <= 0)
    assert np.all(r.tp <= min(r.n_true, r.n_pred))


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(true=labels_2d, data=st.data())
def test_fast_path_equals_full_hungarian(true, data):
    """The shortcut (no Hungarian where partners are unique) equals a dense assignment."""
    from scipy.optimize import linear_sum_assignment

    pred = data.draw(arrays(np.int32, true.shape, elements=st.integers(0, 5)))
    crit = data.draw(st.sampled_from(["iou", "iot", "iop"]))
    ov = overlap(true, pred)
    dense = np.zeros((ov.n_true, ov.n_pred))
    dense[ov.rows, ov.cols] = ov.scores(crit)
    r = match(true, pred, thresholds=(0.1, 0.5, 0.75), criterion=crit)
    for i, t in enumerate(r.thresholds):
        if min(dense.shape) == 0:
            assert r.tp[i] == 0
            continue
        cost = -(dense >= t).astype(float) - dense / (2 * min(dense.shape))
        ri, ci = linear_sum_assignment(cost)
        ok = dense[ri, ci] >= t
        assert r.tp[i] == ok.sum()
        assert r.sum_iou[i] == pytest.approx(dense[ri, ci][ok].sum(), abs=1e-12)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int64])
def test_every_integer_dtype_gives_the_same_counts(dtype):
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, (20, 20))
    pred = np.roll(true, 1, axis=0)
    ref = match(true, pred, thresholds=(0.1, 0.5))
    mixed = match(true.astype(dtype), pred.astype(np.uint8), thresholds=(0.1, 0.5))
    same = match(true.astype(dtype), pred.astype(dtype), thresholds=(0.1, 0.5))
    np.testing.assert_array_equal(mixed.tp, ref.tp)
    np.testing.assert_array_equal(same.tp, ref.tp)
    np.testing.assert_array_equal(match(true > 0, pred > 0).n_true, 1 if true.any() else 0)


def test_pooling_refuses_mixed_thresholds():
    a = squares((10, 10), [(0, 0, 4, 4)])
    with pytest.raises(InputError, match="same thresholds"):
        match_dataset([match(a, a, thresholds=(0.5,)), match(a, a, thresholds=(0.7,))])
