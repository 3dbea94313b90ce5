"""The DeepImageJ U-Net: exact architecture, variants, config validation, normalisation,
checkpoints."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cellrobust import DataError, InputError
from cellrobust.models.layers import Dropout
from cellrobust.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from cellrobust.models.unet import (NormalisedUNet, UNetConfig, build_unet, count_parameters,
                                    normalise)

torch.set_num_threads(1)


def test_deepimagej_unet_has_exactly_481745_parameters():
    assert count_parameters(build_unet(UNetConfig(in_channels=1))) == 481_745


def test_epfl_variant_same_parameters_but_dropout_after_second_conv():
    dij, epfl = build_unet(), build_unet(UNetConfig(variant="epfl"))
    assert count_parameters(epfl) == 481_745
    kinds = lambda block: [type(m).__name__ for m in block]  # noqa: E731
    assert kinds(dij.down[0]) == ["Conv2d", "ELU", "Dropout", "Conv2d", "ELU"]
    assert kinds(epfl.down[0]) == ["Conv2d", "ELU", "Conv2d", "ELU", "Dropout"]


def test_dropout_rates_follow_deepimagej():
    net = build_unet()
    rates = [m.p for m in net.modules() if isinstance(m, Dropout)]
    assert rates == [0.1, 0.1, 0.2, 0.2, 0.2, 0.1, 0.1]


def test_layers_pooling_upsampling_and_filters():
    net = build_unet()
    assert isinstance(net.pool, nn.AvgPool2d)
    assert [u.out_channels for u in net.up] == [64, 32, 16]
    assert all(u.kernel_size == (2, 2) and u.stride == (2, 2) for u in net.up)
    assert net.bottom[0].out_channels == 128 and net.head.kernel_size == (1, 1)


@pytest.mark.parametrize("variant", ["deepimagej", "epfl"])
def test_skip_is_encoder_block_output_concatenated_in_variant_order(variant):
    net = build_unet(UNetConfig(variant=variant)).eval()
    seen = {}
    net.down[2].register_forward_hook(lambda m, i, o: seen.__setitem__("skip", o))
    net.up[0].register_forward_hook(lambda m, i, o: seen.__setitem__("up", o))
    net.dec[0].register_forward_hook(lambda m, i, o: seen.__setitem__("dec_in", i[0]))
    net(torch.rand(1, 1, 32, 32))
    parts = [seen["up"], seen["skip"]] if variant == "deepimagej" else [seen["skip"], seen["up"]]
    assert torch.equal(seen["dec_in"], torch.cat(parts, dim=1))


def test_output_shape_for_multiples_of_eight_and_configurable_architecture():
    net = build_unet(UNetConfig(width=8, depth=2, batchnorm=True, activation="relu"))
    assert net(torch.zeros(2, 1, 24, 40)).shape == (2, 1, 24, 40)
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert count_parameters(net) < 481_745
    assert UNetConfig(depth=2).multiple == 4 and UNetConfig().multiple == 8


def test_he_normal_initialisation_scale():
    net = build_unet()
    w = net.bottom[3].weight  # 128 -> 128 3x3 conv: std sqrt(2 / (128 * 9))
    assert abs(float(w.detach().std()) - np.sqrt(2 / (128 * 9))) < 0.004
    assert float(net.bottom[0].bias.abs().max()) == 0.0


def test_config_reports_every_invalid_field_at_once():
    with pytest.raises(InputError) as err:
        UNetConfig(width=0, variant="keras", normalisation="zscore", activation="tanh")
    message = str(err.value)
    for field in ("width", "variant", "normalisation", "activation"):
        assert field in message
    with pytest.raises(InputError, match="dropout"):
        UNetConfig(dropout=(0.1, 0.2))


def test_config_dict_round_trip():
    config = UNetConfig(width=8, dropout=(0.0,) * 7, normalisation="percentile")
    assert UNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InputError, match="unknown"):
        UNetConfig.from_dict({**config.to_dict(), "colour": 3})


@settings(max_examples=20, deadline=None)
@given(method=st.sampled_from(["max", "minmax", "none", "percentile"]),
       seed=st.integers(0, 2**16))
def test_normalise_numpy_and_torch_agree(method, seed):
    x = np.random.default_rng(seed).integers(0, 256, (2, 9, 11)).astype(np.float32)
    a = normalise(x, method)
    b = normalise(torch.from_numpy(x), method).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    if method in ("max", "minmax"):
        assert np.allclose(a.reshape(2, -1).max(1), 1.0, atol=1e-5)
    if method == "minmax":
        assert np.allclose(a.reshape(2, -1).min(1), 0.0, atol=1e-6)


def test_normalise_max_known_answer_and_per_image():
    x = np.array([[[0, 50], [100, 200]], [[1, 1], [2, 4]]], dtype=np.uint8)
    out = normalise(x, "max")
    np.testing.assert_allclose(out[0], [[0, 0.25], [0.5, 1.0]], atol=1e-5)
    np.testing.assert_allclose(out[1], [[0.25, 0.25], [0.5, 1.0]], atol=1e-5)
    with pytest.raises(InputError, match="did you mean"):
        normalise(x, "minmx")


def test_checkpoint_round_trip_is_self_describing(tmp_path):
    config = UNetConfig(normalisation="minmax", width=8)
    net = build_unet(config).eval()
    path = save_checkpoint(tmp_path / "m.pt", net, config, meta={"epoch": 3, "best": 0.5})
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left behind
    loaded, cfg, meta = load_checkpoint(path)
    assert cfg == config and meta["epoch"] == 3 and meta["format_version"] == 1
    assert read_checkpoint(path)["normalisation"] == "minmax"
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(loaded(x), net(x))
    assert torch.allclose(NormalisedUNet(loaded)(x * 255), torch.sigmoid(net(normalise(
        x * 255, "minmax"))))


def test_checkpoint_refuses_pickled_objects_and_foreign_files(tmp_path):
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as handle:
        pickle.dump({"format": "cellrobust-unet", "obj": _Evil()}, handle, protocol=2)
    with pytest.raises(DataError, match="cannot read checkpoint"):
        read_checkpoint(evil)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(DataError, match="not a cellrobust"):
        load_checkpoint(other)
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))
