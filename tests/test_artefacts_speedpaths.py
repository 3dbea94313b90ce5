"""The fast paths of issue #18: per-image streams, table Poisson, FFT disk, threaded JPEG, DoG."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy import stats
from scipy.ndimage import gaussian_filter

from cellrobust import artefacts
from cellrobust.artefacts._sampling import inverse_table, sample_table
from cellrobust.artefacts._streams import Streams
from cellrobust.artefacts.blur import disk_blur, disk_kernel
from cellrobust.artefacts.compression import jpeg_roundtrip
from cellrobust.artefacts.normalise import minmax
from cellrobust.data import Sample
from test_artefacts import synthetic


def _stack(dtype):
    s = synthetic(dtype)
    third = (s.image[:, ::-1] * 0.5).astype(dtype)
    images = np.stack([s.image, s.image[::-1].copy(), third])
    labels = np.stack([s.labels, s.labels[::-1].copy(), np.zeros_like(s.labels)])
    return images, labels


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("name", artefacts.names())
def test_per_image_streams_equal_apply_bit_for_bit(name, dtype):
    images, labels = _stack(dtype)
    value = artefacts.get(name).ladder[3]
    seeds = [3, 4, 5]
    out, lab, params = artefacts.apply_batch(images, name, value, rng=seeds, labels=labels)
    for i, seed in enumerate(seeds):
        one, p = artefacts.apply(Sample(images[i], labels[i], "x"), name, value, rng=seed)
        np.testing.assert_array_equal(out[i], one.image)
        np.testing.assert_array_equal(lab[i], one.labels)
        assert params[i] == p


def test_single_stream_stack_is_one_draw_for_the_stack():
    images, _ = _stack(np.uint8)
    out, _, _ = artefacts.apply_batch(images, "gaussian_noise", 20.0, rng=7)
    noise = np.random.default_rng(7).standard_normal(images.shape, dtype=np.float32)
    expected = minmax(noise * np.float32(20.0) + images.astype(np.float32))
    np.testing.assert_array_equal(out, expected)
    out, _, _ = artefacts.apply_batch(images, "speckle", 0.05, rng=7)
    noise = np.random.default_rng(7).standard_normal(images.shape, dtype=np.float32)
    x = images.astype(np.float32)
    np.testing.assert_array_equal(out, np.clip(x + x * (noise * np.float32(np.sqrt(0.05))),
                                               0, 255))


def test_streams_reject_draws_without_batch_axis():
    streams = Streams([np.random.default_rng(0), np.random.default_rng(1)])
    with pytest.raises(TypeError):
        streams.random()
    with pytest.raises(TypeError):
        streams.standard_normal((3, 4))
    np.testing.assert_array_equal(streams.random((2, 3))[1],
                                  np.random.default_rng(1).random(3))


@pytest.mark.parametrize("level, scale", [(1, 0.5), (3, 1.0), (60, 0.55), (255, 0.13),
                                          (200, 5.0), (1000, 3.0)])
def test_table_poisson_has_the_poisson_distribution(level, scale):
    levels = np.full((400, 500), level, dtype=np.intp)
    levels[::7] = 0  # a second law in the same table; zero photons give zero counts
    table = inverse_table(levels, scale)
    counts = sample_table(table, levels, np.random.default_rng(level).random(levels.shape))
    assert counts.dtype == np.float32 and np.all(counts[::7] == 0)
    sample = np.delete(counts, np.s_[::7], axis=0).ravel().astype(np.int64)
    lam = float(np.float32(level) * np.float32(scale))
    se = math.sqrt(lam / sample.size)
    assert abs(sample.mean() - lam) < 5 * se
    assert abs(sample.var() / lam - 1) < 5 * math.sqrt(2 / sample.size) + 1 / lam / 10
    ks = np.arange(sample.min(), sample.max() + 1)
    observed = np.bincount(sample - sample.min())
    expected = stats.poisson.pmf(ks, lam) * sample.size
    keep = expected > 5
    expected = expected[keep] * observed[keep].sum() / expected[keep].sum()
    assert stats.chisquare(observed[keep], expected).pvalue > 1e-3


def test_table_poisson_inverts_the_cdf_exactly():
    levels = np.tile(np.arange(0, 256, dtype=np.intp), 40)[None]
    u = np.random.default_rng(1).random(levels.shape)
    counts = sample_table(inverse_table(levels, 0.3), levels, u)
    lam = (levels.astype(np.float32) * np.float32(0.3)).astype(np.float64)
    expected = stats.poisson.ppf(u, lam)  # smallest k with CDF(k) >= u
    mismatch = counts != expected
    # ties at float rounding of the CDF only: the two CDFs agree to 1e-12 there
    assert mismatch.mean() < 1e-3
    k = counts[mismatch].astype(np.float64)
    cdf_at = stats.poisson.cdf(np.minimum(k, expected[mismatch]), lam[mismatch])
    np.testing.assert_allclose(cdf_at, u[mismatch], atol=1e-12)


def test_poisson_float_input_still_uses_generator_poisson():
    x = synthetic(np.float32).image
    out, params = artefacts.apply(Sample(x, None, "x"), "poisson", 33.0, rng=2, normalise="none")
    scale = np.float32(1.0 / params["gray_per_photon"])
    counts = np.random.default_rng(2).poisson(x * scale).astype(np.float32)
    np.testing.assert_array_equal(out.image, counts / scale)


def test_poisson_integer_input_matches_the_float_path_in_distribution():
    img = synthetic(np.uint8, shape=(256, 256)).image
    fast = [artefacts.apply(Sample(img, None, "x"), "poisson", 25.0, rng=s)[0].image
            for s in range(4)]
    slow = [artefacts.apply(Sample(img.astype(np.float32), None, "x"), "poisson", 25.0,
                            rng=s)[0].image for s in range(4)]
    resid_fast = np.concatenate([f - img for f in fast]).ravel()
    resid_slow = np.concatenate([s - img for s in slow]).ravel()
    assert stats.ks_2samp(resid_fast, resid_slow).pvalue > 1e-3
    assert resid_fast.std() == pytest.approx(resid_slow.std(), rel=0.02)


@pytest.mark.parametrize("radius", [5.0, 6.0, 7.6, 20.0])
def test_fft_disk_blur_equals_filter2d(radius):
    images = np.stack([synthetic(np.float32, shape=(70, 90)).image] * 2)
    images[1] = images[1][::-1]
    kern = disk_kernel(radius)
    exact = np.stack([cv2.filter2D(im, -1, kern, borderType=cv2.BORDER_REFLECT_101)
                      for im in images])
    got = disk_blur(images, kern)
    assert got.dtype == np.float32
    assert np.abs(got - exact).max() <= 1e-4 * np.abs(exact).max()


def test_fft_disk_blur_of_one_image_equals_its_row_of_a_stack_and_caches_the_spectrum():
    """One image runs in one thread, a chunk of several in the compute threads: the same
    numbers; the kernel's spectrum is computed once per kernel and size, and read-only."""
    from cellrobust.artefacts.blur import _kernel_spectrum

    images = np.stack([synthetic(np.float32, shape=(64, 80)).image * (1 + k) for k in range(3)])
    kern = disk_kernel(6.0)
    _kernel_spectrum.cache_clear()
    stack = disk_blur(images, kern)
    for i in range(3):
        np.testing.assert_allclose(disk_blur(images[i:i + 1], kern)[0], stack[i], rtol=0,
                                   atol=1e-6 * np.abs(stack[i]).max())
    info = _kernel_spectrum.cache_info()
    assert (info.misses, info.hits) == (1, 3)
    spectrum = _kernel_spectrum(kern.tobytes(), kern.shape[0], (90, 108))
    assert not spectrum.flags.writeable


def test_threaded_jpeg_stack_is_bit_identical_to_one_by_one():
    images, _ = _stack(np.uint8)
    out, _, params = artefacts.apply_batch(images, "jpeg", 4.0, rng=0)
    for i, img in enumerate(images):
        expected, nbytes = jpeg_roundtrip(img, 4)
        np.testing.assert_array_equal(out[i], expected.astype(np.float32))
        assert params[i]["bytes"] == nbytes


def test_float32_dog_is_as_close_to_the_exact_dog_as_float64_scipy():
    """The cascaded float32 DoG (the wide Gaussian as the narrow one blurred again) against
    the float64 DoG with kernels cut at 8 sigma (exact to float rounding): at least as close
    as scipy's default float64 result (kernels cut at 4 sigma), and the same Otsu mask."""
    from cellrobust.data.synthetic import simulate_frame
    from cellrobust.segmenters.baselines import _dog, _otsu_mask

    frame = simulate_frame(rng=np.random.default_rng(4)).image.astype(np.float64)
    low, high = 3.5, 3.5 * math.sqrt(2)

    def dog64(truncate):
        return (gaussian_filter(frame, low, mode="reflect", truncate=truncate)
                - gaussian_filter(frame, high, mode="reflect", truncate=truncate))

    exact, scipy_default = dog64(8.0), dog64(4.0)
    fast = _dog(frame, low, high)
    assert fast.dtype == np.float32
    err_fast = np.abs(fast - exact).max() / np.ptp(exact)
    err_scipy = np.abs(scipy_default - exact).max() / np.ptp(exact)
    assert err_fast <= err_scipy and err_fast < 1e-4
    for reference in (exact, scipy_default):
        assert (_otsu_mask(fast, 1024) == _otsu_mask(reference, 1024)).mean() >= 0.9999


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_jpeg_takes_the_raw_stack_and_scales_each_image_back_as_before(dtype):
    # the JPEG kernel gets the caller's array (raw_input): never written, and every image goes
    # to 8 bits, through libjpeg and back with _to_8bit's float32 arithmetic, thread-independent
    from cellrobust.artefacts.compression import _to_8bit

    rng = np.random.default_rng(11)
    images = (rng.random((6, 40, 56)) * (250 if dtype == np.uint8 else 3000) - (
        500 if np.issubdtype(dtype, np.floating) else 0)).astype(dtype)
    before = images.copy()
    out, _, params = artefacts.apply_batch(images, "jpeg", 5.0, rng=0, normalise="none")
    np.testing.assert_array_equal(images, before)
    img8, lo, scale = _to_8bit(images.astype(np.float32), images.dtype)
    for i in range(len(images)):
        decoded, nbytes = jpeg_roundtrip(img8[i], 5)
        expected = decoded.astype(np.float32)
        if scale is not None:
            expected = expected * scale[i] + lo[i]
        np.testing.assert_array_equal(out[i], expected)
        assert params[i]["bytes"] == nbytes


def test_clip_is_skipped_only_where_the_integer_output_cannot_leave_the_range():
    from cellrobust.artefacts.normalise import normalise
    u8 = np.array([[[0, 7, 255]]], dtype=np.uint8)
    out = normalise(u8, "clip", dtype=np.uint8)
    assert out.dtype == np.float32 and out.tolist() == [[[0.0, 7.0, 255.0]]]
    wide = np.array([[[-5, 7, 300]]], dtype=np.int16)  # int16 exceeds the uint8 range
    assert normalise(wide, "clip", dtype=np.uint8).tolist() == [[[0.0, 7.0, 255.0]]]
    signed = np.array([[[-5, 7]]], dtype=np.int8)  # below 0 of non-negative float input
    assert normalise(signed, "clip", dtype=np.float32,
                     clean=np.ones((1, 1, 2), np.float32)).tolist() == [[[0.0, 7.0]]]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_a_deterministic_artefact_ignores_its_rng_but_still_checks_it(dtype):
    assert not artefacts.get("jpeg").draws
    images, _ = _stack(dtype)
    a, _, _ = artefacts.apply_batch(images, "jpeg", 5, rng=0)
    b, _, _ = artefacts.apply_batch(images, "jpeg", 5, rng=[np.random.default_rng(9), 3, None])
    assert a.dtype == np.float32 and np.array_equal(a, b)
    with pytest.raises(TypeError, match="rng: expected None, an int or numpy.random.Generator"):
        artefacts.apply_batch(images, "jpeg", 5, rng="seed")
