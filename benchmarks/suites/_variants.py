"""Training-step candidates for the ``unet`` suite, measured in our own environment.

The full run compares cellrobust's training default (channels-last fp32, Adam's default
implementation) with each candidate in interleaved rounds: ratio = default / candidate, so a
ratio < 1 means the candidate is faster. Smoke runs time each candidate alone (no pairing,
no compile: compilation takes minutes), which exercises the same code paths.
"""

from __future__ import annotations

from ..harness import Comparison, Side

TARGET = "benchmarks.suites.unet:ours_train"


def _candidates(p: dict, smoke: bool) -> list[Side]:
    sides = [Side("Adam foreach", TARGET, {**p, "adam": "foreach"}),
             Side("Adam fused", TARGET, {**p, "adam": "fused"}),
             Side("contiguous (not channels-last)", TARGET, {**p, "channels_last": False}),
             Side("bf16 autocast, fp32 master weights", TARGET, {**p, "bf16": True})]
    if not smoke:
        sides.append(Side("torch.compile(model), Adam fused", TARGET,
                          {**p, "compile": True, "adam": "fused"}))
    return sides


def train_variants(train: dict, opts: dict, smoke: bool) -> list[Comparison]:
    """The comparison rows of the training-step candidates."""
    p = {**train, **opts}
    name = f"train step variants, batch {train['batch']} of {train['size']}²"
    if smoke:
        return [Comparison(f"{name}: {side.label} (alone)", "steps/s", side, (), rounds=1)
                for side in _candidates(p, smoke)]
    return [Comparison(f"{name} (ours default vs each; < 1: the variant is faster)",
                       "steps/s", Side("cellrobust training default", TARGET, p),
                       tuple(_candidates(p, smoke)), rounds=4)]
