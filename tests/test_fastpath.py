"""Inference path choice (fastpath), whole-patch single passes, batching across frames."""

from __future__ import annotations

import os

import json

import numpy as np
import pytest
import torch

from cellrobust import InputError
from cellrobust.models import fastpath
from cellrobust.models.fastpath import AGREEMENT, FastPathConfig, InferenceRunner, Plan
from cellrobust.models.inference import predict_tiled
from cellrobust.models.unet import UNetConfig, build_unet, normalise
from cellrobust.segmenters.unet import UNetSegmenter

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def net():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_unet(UNetConfig(width=4, depth=2, normalisation="minmax")).eval()


def _images(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w)).astype(np.float32)


def _single_pass(net, image: np.ndarray, p: int) -> np.ndarray:
    """One pass over the frame reflect-padded by ``p`` px and up to the pooling grid."""
    h, w = image.shape
    m = net.config.multiple
    canvas = np.pad(normalise(image, "minmax"), ((p, -h % m + p), (p, -w % m + p)),
                    mode="reflect")
    with torch.no_grad():
        prob = torch.sigmoid(net(torch.from_numpy(canvas.astype(np.float32))[None, None]))
    return prob[0, 0, p:p + h, p:p + w].numpy()


@pytest.mark.parametrize(("shape", "whole_halo", "pad"),
                         [((64, 64), 0, 0), ((37, 50), 0, 0), ((37, 50), 16, 16),
                          ((64, 64), 10, 12)])
def test_whole_patch_runs_as_one_pass_with_the_reduced_context(net, shape, whole_halo, pad):
    images = _images(3, *shape)
    fast = predict_tiled(net, images, tile=256, whole_halo=whole_halo)
    # channels-last batches and this contiguous single pass run different oneDNN kernels,
    # whose float32 sums round differently: up to 1.1e-6 in probability on an AVX2 CPU
    for img, prob in zip(images, fast):
        np.testing.assert_allclose(prob, _single_pass(net, img, pad), atol=1e-5)
    halo = predict_tiled(net, images, tile=256)
    np.testing.assert_allclose(halo[0], _single_pass(net, images[0], 48), atol=1e-5)
    assert np.abs(halo - fast).max() > 1e-4  # the full halo really differs at the border


def test_frames_larger_than_a_tile_keep_the_halo(net):
    images = _images(2, 150, 90, seed=1)
    np.testing.assert_array_equal(predict_tiled(net, images, tile=128, whole_halo=0),
                                  predict_tiled(net, images, tile=128))


def test_windows_of_all_frames_batch_together_like_one_at_a_time(net):
    images = _images(5, 48, 40, seed=2)
    batched = predict_tiled(net, images, tile=256, batch_size=4, whole_halo=16)
    alone = np.stack([predict_tiled(net, img, tile=256, batch_size=1, whole_halo=16)
                      for img in images])
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_label_agreement_and_the_stated_gate():
    assert AGREEMENT == 0.999
    ref = np.zeros((10, 100))
    other = ref.copy()
    other[0, :1] = 1.0  # 1 of 1000 pixels flips
    assert fastpath.label_agreement(other, ref, 0.5) == pytest.approx(0.999)
    other[0, :2] = 1.0
    assert fastpath.label_agreement(other, ref, 0.5) < AGREEMENT


def test_forced_reference_path_probes_nothing(net, tmp_path):
    cache = tmp_path / "paths.json"
    runner = InferenceRunner(net, FastPathConfig(backend="eager", precision="fp32",
                                                 cache=str(cache)))
    plan = runner.plan(_images(2, 32, 32), batch_size=3)
    assert (plan.backend, plan.precision, plan.batch_size) == ("eager", "fp32", 3)
    assert not cache.exists()


def test_auto_probe_is_gated_cached_and_reused(net, tmp_path):
    cache = tmp_path / "paths.json"
    config = FastPathConfig(cache=str(cache))
    sample = normalise(_images(4, 64, 64, seed=3), "minmax").astype(np.float32)
    plan = InferenceRunner(net, config).plan(sample, batch_size=2)
    assert plan.source == "probe" and plan.agreement >= AGREEMENT and plan.windows_per_s > 0
    entry = next(iter(json.loads(cache.read_text())["entries"].values()))
    assert entry["candidates"][0]["backend"] == "eager" and len(entry["candidates"]) >= 2
    again = InferenceRunner(net, config).plan(sample, batch_size=2)
    assert again.source == "cache" and again.batch_size == plan.batch_size


def test_a_candidate_that_changes_labels_is_rejected(net, tmp_path, monkeypatch):
    real = InferenceRunner.forward

    def broken(self, x, plan):
        out = real(self, x, plan)
        return out if plan.precision == "fp32" else -out  # bf16 "path" inverts the labels

    monkeypatch.setattr(InferenceRunner, "forward", broken)
    runner = InferenceRunner(net, FastPathConfig(backend="eager", precision="bf16",
                                                 cache="off"))
    plan = runner.plan(normalise(_images(2, 32, 32), "minmax"), batch_size=2)
    assert (plan.backend, plan.precision) == ("eager", "fp32")


def test_a_cached_choice_that_fails_the_recheck_is_probed_again(net, tmp_path):
    cache = tmp_path / "paths.json"
    config = FastPathConfig(backend="eager", precision="bf16", cache=str(cache))
    sample = normalise(_images(2, 32, 32), "minmax").astype(np.float32)
    runner = InferenceRunner(net, config)
    runner._write_cache(runner._key(sample.shape[-2:]), Plan("eager", "bf16", 2).to_dict())
    runner.forward = lambda x, plan: (-1 if plan.precision == "bf16" else 1) * \
        InferenceRunner.forward(runner, x, plan)
    assert runner.plan(sample, batch_size=2).precision == "fp32"


def test_auto_tries_compiling_only_after_enough_eager_work(net, tmp_path, monkeypatch):
    monkeypatch.setattr(fastpath, "_can_graph", lambda: False)  # the tier above eager only
    cache = tmp_path / "paths.json"
    runner = InferenceRunner(net, FastPathConfig(precision="fp32", cache=str(cache)))
    sample = normalise(_images(2, 32, 32), "minmax").astype(np.float32)
    first = runner.plan(sample, batch_size=2)
    assert first.backend == "eager" and not runner._compile_tried
    key = runner._key((32, 32))
    entry = json.loads(cache.read_text())["entries"][key]
    runner._write_cache(key, {**entry, "compiled": {"plan": None, "candidates": []}})
    monkeypatch.setattr(fastpath, "COMPILE_AFTER_S", 0.0)  # as if it had run long enough
    monkeypatch.setattr(fastpath, "_can_compile", lambda: True)
    assert runner.plan(sample, batch_size=2) == first  # cached: compiling did not win here
    assert runner._compile_tried == {(32, 32)}


def test_bf16_labels_agree_with_fp32_on_a_simulated_frame(net):
    from cellrobust.data.synthetic import simulate_frame

    frame = simulate_frame(rng=np.random.default_rng(0)).image[:128, :128].astype(np.float32)
    x = torch.from_numpy(normalise(frame, "minmax").astype(np.float32))[None, None]
    runner = InferenceRunner(net, FastPathConfig(cache="off"))
    with torch.inference_mode():
        ref = torch.sigmoid(runner.forward(x, Plan("eager", "fp32", 1))).numpy()
        bf16 = torch.sigmoid(runner.forward(x, Plan("eager", "bf16", 1))).numpy()
    assert np.abs(ref - bf16).max() < 0.05  # bf16 rounding, not a different network


def test_segmenter_records_the_chosen_path(net, tmp_path):
    seg = UNetSegmenter(net, backend="eager", precision="fp32", path_cache="off", tile=256)
    seg.segment(_images(2, 40, 48))
    path = seg.provenance()["inference_path"]
    # the plan is per window: the 40x48 image itself (whole_halo default 0, sides already on
    # the pooling grid)
    assert list(path["plans"]) == ["40x48"]
    assert path["plans"]["40x48"]["backend"] == "eager" and path["gate_agreement"] == AGREEMENT
    with pytest.raises(InputError, match="backend"):
        UNetSegmenter(net, backend="fast")


@pytest.mark.slow
def test_auto_upgrades_to_a_compiled_path_through_the_gate(net, tmp_path, monkeypatch):
    runner = InferenceRunner(net, FastPathConfig(precision="fp32", cache=str(tmp_path / "c")))
    sample = normalise(_images(2, 64, 64), "minmax").astype(np.float32)
    runner.plan(sample, batch_size=2)
    monkeypatch.setattr(fastpath, "COMPILE_AFTER_S", 0.0)
    plan = runner.plan(sample, batch_size=2)
    record = json.loads((tmp_path / "c").read_text())["entries"][runner._key((64, 64))]
    assert record["compiled"]["candidates"][0]["agreement"] >= AGREEMENT
    assert plan.backend in ("eager", "compile")  # whichever was faster, both gated


@pytest.mark.slow
def test_compiled_path_agrees_with_eager(net, tmp_path):
    runner = InferenceRunner(net, FastPathConfig(backend="compile", precision="fp32",
                                                 cache="off"))
    sample = normalise(_images(2, 64, 64), "minmax").astype(np.float32)
    plan = runner.plan(sample, batch_size=2)
    assert plan.backend == "compile" and plan.agreement >= AGREEMENT


def test_configure_threads_points_inductor_at_the_persistent_cache(monkeypatch, tmp_path):
    from cellrobust.models.fastpath import compile_cache_dir
    from cellrobust.stages._runtime import configure_threads

    monkeypatch.setenv("CELLROBUST_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "unset")  # restored after the test
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    for name in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS"):  # set: configure_threads keeps them
        monkeypatch.setenv(name, os.environ.get(name, "PASSIVE" if "WAIT" in name else "2"))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # no process-wide change
    configure_threads(threads=1)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    assert compile_cache_dir() == tmp_path / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")  # the user's choice is kept
    configure_threads(threads=1)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/elsewhere"


def test_graph_path_agrees_with_eager_and_leaves_torchs_fuser_switch_as_it_was(net):
    if not fastpath._can_graph():
        pytest.skip("torch without oneDNN")
    before = torch.jit.onednn_fusion_enabled()
    runner = InferenceRunner(net, FastPathConfig(backend="graph", precision="fp32", cache="off"))
    sample = normalise(_images(3, 64, 64), "minmax").astype(np.float32)
    plan = runner.plan(sample, batch_size=2)
    assert plan.backend == "graph" and plan.agreement >= AGREEMENT
    ref = runner._run_all(sample, Plan("eager", "fp32", 2))
    fused = runner._run_all(sample, plan)  # 3 windows in passes of 2: the last one padded
    assert np.abs(fused - ref).max() < 1e-4
    assert torch.jit.onednn_fusion_enabled() == before
    with torch.no_grad():  # weights changed in place (as by an optimizer step): graph follows
        weights = {k: v.clone() for k, v in net.state_dict().items()}
        net.head.bias.add_(3.0)
        try:
            moved = runner._run_all(sample, plan)
            assert np.abs(moved - runner._run_all(sample, Plan("eager", "fp32", 2))).max() < 1e-4
            assert np.abs(moved - ref).max() > 0.01
        finally:
            net.load_state_dict(weights)


def test_a_cached_graph_plan_waits_until_its_saving_repays_the_build(net, tmp_path):
    if not fastpath._can_graph():
        pytest.skip("torch without oneDNN")
    cache = tmp_path / "paths.json"
    runner = InferenceRunner(net, FastPathConfig(precision="fp32", cache=str(cache)))
    sample = normalise(_images(2, 32, 32), "minmax").astype(np.float32)
    key = runner._key((32, 32))
    eager = Plan("eager", "fp32", 2, windows_per_s=100.0, agreement=1.0, source="probe")
    graph = Plan("graph", "fp32", 2, windows_per_s=200.0, agreement=1.0, source="probe")
    runner._write_cache(key, {**graph.to_dict(), "fallback": eager.to_dict(), "build_s": 5.0,
                              "reference_window_s": 0.02})
    assert runner.plan(sample, batch_size=2).backend == "eager"  # a new process starts eager
    assert runner.waiting == [(32, 32)]
    # switching costs 5 s of build + a re-check of 2 windows (2 x (0.02 + 0.005) s) = 5.05 s
    runner._eager_s[(32, 32)] = 10.0  # graph would have saved half of it: 5.0 s, not yet
    assert runner.plan(sample, batch_size=2).backend == "eager"
    runner._eager_s[(32, 32)] = 10.2  # now it would have saved 5.1 s
    assert runner.plan(sample, batch_size=2).backend == "graph" and runner.waiting == []


def test_auto_probe_records_the_eager_start_beside_a_graph_winner(net, tmp_path, monkeypatch):
    if not fastpath._can_graph():
        pytest.skip("torch without oneDNN")
    real = InferenceRunner._timed

    def graph_wins(self, sample, plan, reps=2):  # timings are the machine's; fix the order
        prob, _ = real(self, sample, plan, reps=0)
        return prob, {"eager": 0.02, "graph": 0.01}[plan.backend] / plan.batch_size

    monkeypatch.setattr(InferenceRunner, "_timed", graph_wins)
    cache = tmp_path / "paths.json"
    runner = InferenceRunner(net, FastPathConfig(precision="fp32", cache=str(cache)))
    plan = runner.plan(normalise(_images(4, 32, 32), "minmax").astype(np.float32), batch_size=2)
    entry = json.loads(cache.read_text())["entries"][runner._key((32, 32))]
    assert plan.backend == "graph" and entry["fallback"]["backend"] == "eager"
    assert entry["reference_window_s"] > 0
    assert entry["fallback"]["batch_size"] == 4 and entry["build_s"] >= 0  # 4 windows a pass


def test_a_graph_that_cannot_be_built_is_skipped_not_fatal(net, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("oneDNN graph: unsupported on this CPU")

    monkeypatch.setattr(fastpath, "_build_graph", broken)
    monkeypatch.setattr(fastpath, "_can_graph", lambda: True)
    runner = InferenceRunner(net, FastPathConfig(precision="fp32", cache="off"))
    sample = normalise(_images(2, 32, 32), "minmax").astype(np.float32)
    assert runner.plan(sample, batch_size=2).backend == "eager"
    assert not runner._recheck(Plan("graph", "fp32", 2), sample)  # a cached graph plan
