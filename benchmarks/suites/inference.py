"""``inference``: the user-facing U-Net path against Keras/TensorFlow and the conv ceiling.

Our side is ``UNetSegmenter.predict_proba`` exactly as ``predict``/``evaluate``/``sweep``/
``study`` run it (default options: automatic execution path, probed and cached at first use,
whole patches in one pass): 16 patches of 256², and whole 576x720 frames, with the shipped
``psc-original`` weights on crops of the PhC-C2DL-PSC training frames (where ``../shared/data``
has them; synthetic cell images otherwise) - the correctness gate of a bf16 or fused path is
judged on the labels a user would get, which a randomly initialised network on noise does not
show. The warm-up call includes the probe (and any graph build); the chosen path is recorded in
the row's info. The peer is the same network in Keras 3 / TensorFlow (``predict_on_batch`` on
the same shapes; its speed does not depend on the weights). The ceilings are the measured 3x3 conv rates (oneDNN, channels-last) in fp32 and
bf16; FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the forward pass.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..harness import Comparison, Side
from .unet import _keras_info, _tf_threads, _torch_info


class OursPredict:
    """``UNetSegmenter.predict_proba`` on ``n`` images of ``h`` x ``w``: the shipped
    ``psc-original`` model on PSC crops (a fresh default U-Net on synthetic images when
    ``trained`` is false: the smoke sizes)."""

    def __init__(self, *, n: int, h: int, w: int, threads: int | None = None,
                 options: dict | None = None, trained: bool = True):
        import torch

        from cellrobust.segmenters.unet import UNetSegmenter
        if threads:
            torch.set_num_threads(threads)
        path = ZOO_MODEL if trained else _fresh_checkpoint()
        self.seg = UNetSegmenter.from_checkpoint(path, device="cpu", **(options or {}))
        self.images, source = _images(n, h, w)
        self.info = {**_torch_info(options or {}), "model": path.name, "images": source,
                     "settle_calls": self._settle()}

    def _settle(self, max_calls: int = 40, max_s: float = 60.0) -> int:
        """Call until the execution path stops changing (a cached graph plan is built once
        its saving repays the build, i.e. after some work): the rows measure the steady
        path a long job runs on, whatever this machine's path cache held before."""
        import time
        start, calls = time.perf_counter(), 0
        while calls < max_calls and time.perf_counter() - start < max_s:
            self.seg.predict_proba(self.images)
            calls += 1
            if not self.seg.runner.waiting:
                break
        return calls

    def step(self) -> dict:
        self.seg.predict_proba(self.images)
        self.info["inference_path"] = self.seg.runner.describe()
        return {"units": len(self.images)}


class KerasPredict:
    """The Keras U-Net on ``n`` images of ``h`` x ``w`` in one ``predict_on_batch``."""

    def __init__(self, *, n: int, h: int, w: int, threads: int | None = None):
        _tf_threads(threads)
        self.model = _keras_unet_hw(h, w)
        self.model.compile()
        self.x = np.random.default_rng(0).random((n, h, w, 1), dtype=np.float32)
        self.info = _keras_info(self.model)

    def step(self) -> dict:
        self.model.predict_on_batch(self.x)
        return {"units": len(self.x)}


ZOO_MODEL = Path(__file__).resolve().parents[2] / "src" / "cellrobust" / "zoo" / "psc-original.pt"
PSC_TRAIN = Path(__file__).resolve().parents[3] / "shared" / "data" / "psc" / "train"


def _fresh_checkpoint() -> Path:
    from cellrobust.models.checkpoint import save_checkpoint
    from cellrobust.models.unet import UNetConfig, build_unet
    config = UNetConfig()
    path = Path(tempfile.mkdtemp(prefix="bench-infer-")) / "unet.pt"
    save_checkpoint(path, build_unet(config), config)
    return path


def _images(n: int, h: int, w: int) -> tuple[np.ndarray, str]:
    """``n`` seeded ``h`` x ``w`` crops of the PSC training frames, or synthetic cell images."""
    rng = np.random.default_rng(0)
    if PSC_TRAIN.is_dir():
        from cellrobust.data import open_dataset
        frames = [np.asarray(s.image, np.float32) for s in open_dataset(PSC_TRAIN)]
        if frames and all(f.shape[0] >= h and f.shape[1] >= w for f in frames):
            out = np.empty((n, h, w), np.float32)
            for i in range(n):
                f = frames[int(rng.integers(len(frames)))]
                r, c = int(rng.integers(f.shape[0] - h + 1)), int(rng.integers(f.shape[1] - w + 1))
                out[i] = f[r:r + h, c:c + w]
            return out, "PhC-C2DL-PSC training frames"
    from ._data import cell_images
    return cell_images(n, (h, w), seed=0).astype(np.float32), "synthetic cell images"


def _keras_unet_hw(h: int, w: int):
    """The suite's Keras U-Net for an (h, w) input."""
    from .unet import _keras_unet
    return _keras_unet(h, w)


def ours_predict(**kw):
    return OursPredict(**kw)


def keras_predict(**kw):
    return KerasPredict(**kw)


def counted_flops(h: int, w: int) -> float:
    """Forward FLOPs of the default U-Net on one (h, w) image, counted by torch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cellrobust.models.unet import UNetConfig, build_unet
    model = build_unet(UNetConfig()).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, h, w))
    return float(counter.get_total_flops())


def _sizes(smoke: bool) -> dict:
    if smoke:
        return {"patch": 64, "patches": 2, "frame": (64, 80), "frames": 1, "conv": 32,
                "conv_reps": 1}
    return {"patch": 256, "patches": 16, "frame": (576, 720), "frames": 2, "conv": 128,
            "conv_reps": 4}


def comparisons(smoke: bool) -> list[Comparison]:
    s = _sizes(smoke)
    opts = {"threads": 1, "options": {"path_cache": "off"}, "trained": False} if smoke else {}
    patch = {"n": s["patches"], "h": s["patch"], "w": s["patch"]}
    frame = {"n": s["frames"], "h": s["frame"][0], "w": s["frame"][1]}
    me, peer = "benchmarks.suites.inference:", "benchmarks.suites.inference:keras_predict"
    conv = "benchmarks.suites.rates:conv_rate"
    rows = [
        Comparison(f"predict_proba, {s['patches']} patches of {s['patch']}²", "patches/s",
                   Side("cellrobust UNetSegmenter", me + "ours_predict", {**patch, **opts}),
                   (Side("Keras/TensorFlow", peer, patch, "tf"),), goal=1.5, rounds=5),
        Comparison(f"predict_proba, {s['frames']} frames of {s['frame'][0]}×{s['frame'][1]}",
                   "frames/s",
                   Side("cellrobust UNetSegmenter", me + "ours_predict", {**frame, **opts}),
                   (Side("Keras/TensorFlow", peer, frame, "tf"),), goal=1.5, rounds=5),
        Comparison(f"conv3x3 ceiling fp32, 64→64, 2×{s['conv']}²", "GFLOP/s",
                   Side("torch conv2d (oneDNN)", conv,
                        {"size": s["conv"], "reps": s["conv_reps"]}), (), rounds=3),
        Comparison(f"conv3x3 ceiling bf16, 64→64, 2×{s['conv']}²", "GFLOP/s",
                   Side("torch conv2d (oneDNN, bf16)", conv,
                        {"size": s["conv"], "reps": s["conv_reps"], "bf16": True}), (),
                   rounds=3),
    ]
    return rows


def _ceiling_lines(rows: list[dict], smoke: bool) -> list[str]:
    s = _sizes(smoke)
    per_unit = {"patches/s": counted_flops(s["patch"], s["patch"]),
                "frames/s": counted_flops(*s["frame"])}
    ceilings = {("bf16" if "bf16" in r["name"] else "fp32"): r["ours"]["summary"]["median"]
                for r in rows if r["unit"] == "GFLOP/s" and r["ours"].get("summary")}
    lines = [f"- FLOPs counted by torch.utils.flop_counter: {per_unit['patches/s'] / 1e9:.2f} "
             f"GFLOP per {s['patch']}² patch, {per_unit['frames/s'] / 1e9:.2f} GFLOP per "
             f"{s['frame'][0]}×{s['frame'][1]} frame (forward)"]
    for row in rows:
        if row["unit"] not in per_unit:
            continue
        for side in [row["ours"], *row["peers"]]:
            med = (side.get("summary") or {}).get("median")
            if med is None:
                continue
            achieved = med * per_unit[row["unit"]] / 1e9
            shares = ", ".join(f"{100 * achieved / v:.0f} % of the {k} ceiling"
                               for k, v in ceilings.items() if v)
            lines.append(f"- {row['name']}, {side['label']}: {achieved:.3g} GFLOP/s ({shares})")
        path = (row["ours"].get("info") or {}).get("inference_path")
        if path:
            lines.append(f"- {row['name']}: chosen path {path.get('plans')}")
    return lines


def run(ctx) -> dict:
    rows = [ctx.compare(c) for c in comparisons(ctx.smoke)]
    return {"title": "U-Net inference through the user-facing path vs Keras and the ceiling",
            "rows": rows, "markdown": _ceiling_lines(rows, ctx.smoke)}
