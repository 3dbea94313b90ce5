"""probabilities_to_labels: threshold, connectivity, holes, minimum size, watershed split."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from cellrobust._components import label_components
from cellrobust._validation import InputError
from cellrobust.models.postprocess import (
    probabilities_to_labels,
    relabel_sequential,
    remove_small,
)


def disk(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_threshold_is_strict_and_labels_are_sequential_int32():
    prob = np.zeros((8, 8), np.float32)
    prob[1:3, 1:3] = 0.5  # not > 0.5
    prob[5:7, 5:7] = 0.51
    prob[1:3, 5:7] = 0.9
    labels = probabilities_to_labels(prob)
    assert labels.dtype == np.int32
    assert set(np.unique(labels)) == {0, 1, 2}
    assert labels[1, 5] == 1 and labels[5, 5] == 2  # raster order
    assert probabilities_to_labels(prob, threshold=0.4).max() == 3


def test_connectivity_4_and_8():
    prob = np.zeros((5, 5))
    prob[1, 1] = prob[2, 2] = 1
    assert probabilities_to_labels(prob).max() == 1
    assert probabilities_to_labels(prob, connectivity=4).max() == 2


def test_fill_holes_and_min_size():
    prob = np.zeros((12, 12))
    prob[1:8, 1:8] = 1
    prob[4, 4] = 0  # a hole
    prob[10, 10] = 1  # one-pixel object
    plain = probabilities_to_labels(prob)
    assert plain[4, 4] == 0 and plain.max() == 2
    filled = probabilities_to_labels(prob, fill_holes=True, min_size=2)
    assert filled[4, 4] == 1 and filled.max() == 1 and filled[10, 10] == 0


def test_watershed_splits_touching_discs():
    shape = (40, 60)
    prob = (disk(shape, (20, 20), 9) | disk(shape, (20, 36), 9)).astype(float)
    assert probabilities_to_labels(prob).max() == 1
    split = probabilities_to_labels(prob, watershed=True, watershed_min_distance=5)
    assert split.max() == 2
    assert split[20, 18] != split[20, 38] and split[20, 18] > 0
    assert np.array_equal(split > 0, prob > 0.5)  # no pixel lost or added


def test_stack_input_and_nan():
    prob = np.zeros((3, 6, 6))
    prob[1, 2:4, 2:4] = 1
    prob[2, 0, 0] = np.nan
    labels = probabilities_to_labels(prob)
    assert labels.shape == (3, 6, 6) and labels[0].max() == 0 and labels[1].max() == 1
    assert labels[2].max() == 0


def test_invalid_options_reported_together():
    with pytest.raises(InputError) as err:
        probabilities_to_labels(np.zeros((4, 4)), threshold="x", connectivity=6, min_size=-1)
    message = str(err.value)
    assert "threshold" in message and "connectivity" in message and "min_size" in message
    with pytest.raises(InputError, match="prob"):
        probabilities_to_labels(np.zeros(4))


def test_helpers():
    labels = np.array([[0, 9, 9], [4, 0, 7], [4, 4, 0]])
    np.testing.assert_array_equal(relabel_sequential(labels), [[0, 1, 1], [2, 0, 3], [2, 2, 0]])
    np.testing.assert_array_equal(remove_small(labels, 2), [[0, 2, 2], [1, 0, 0], [1, 1, 0]])


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 60), st.integers(1, 60), st.floats(0.05, 0.95), st.sampled_from([4, 8]),
       st.integers(0, 2**31 - 1))
def test_label_components_numbers_exactly_like_ndimage_label(h, w, density, connectivity, seed):
    mask = np.random.default_rng(seed).random((h, w)) < density
    structure = ndi.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    expected, n = ndi.label(mask, structure=structure)
    labels, count = label_components(mask, connectivity)
    assert labels.dtype == np.int32 and count == n
    np.testing.assert_array_equal(labels, expected)


@pytest.mark.parametrize("threads", [1, 2])
def test_label_components_on_a_full_frame_with_opencvs_strips(threads):
    import cv2

    mask = ndi.binary_dilation(np.random.default_rng(3).random((576, 720)) < 0.2)
    before = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        labels, count = label_components(mask, 8)
    finally:
        cv2.setNumThreads(before)
    expected, n = ndi.label(mask, structure=np.ones((3, 3)))
    assert count == n
    np.testing.assert_array_equal(labels, expected)
