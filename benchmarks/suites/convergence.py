"""``convergence``: validation Jaccard after the same training steps, cellrobust vs Keras/TF.

Issue #18 asks for training steps/s >= 1.25x Keras *at equal validation Jaccard after the same
number of steps*: a faster step is worth nothing if it learns less. Both sides build the
DeepImageJ U-Net of the ``unet`` suite with their framework's default initialisation, train it
with Adam(1e-3) and binary cross-entropy on the same sequence of real PhC-C2DL-PSC patches
(256 px crops of the training sequence's first 81 frames, each scaled by its maximum as the
studies do, batch 2), and then segment the same validation crops (the last 20 frames) at 0.5.
Each round is one complete run from a fresh initialisation with its own seed (rounds are seeds),
so the rounds' spread is the seed-to-seed noise the difference is judged against. The timed
unit is the training step; each round's time includes its validation pass.

Without the shared PSC copy (``../shared/data/psc``) the patches come from the synthetic cell
images of :mod:`benchmarks.suites._data`; the row says which.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from ..harness import Comparison, Side

PSC = Path(__file__).resolve().parents[3] / "shared" / "data" / "psc" / "train"
N_TRAIN_FRAMES = 81  # the default contiguous split of the 101 frames: 81 train, 20 validation


def _sizes(smoke: bool) -> dict:
    if smoke:
        return {"size": 64, "batch": 2, "steps": 2, "val": 2}
    return {"size": 256, "batch": 2, "steps": 150, "val": 40}


def _psc_frames() -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """The training sequence's frames and binary masks, read by cellrobust (harness side)."""
    if not PSC.is_dir():
        return None
    from cellrobust.data import open_dataset
    samples = list(open_dataset(PSC))
    if len(samples) <= N_TRAIN_FRAMES:
        return None
    return [np.asarray(s.image) for s in samples], [np.asarray(s.labels) > 0 for s in samples]


def _synthetic_frames(n: int, shape: tuple[int, int]) -> tuple[list, list]:
    from ._data import cell_images
    images = cell_images(n, shape, seed=3)
    return list(images), [img > 140 for img in images]


def _crops(images, masks, n: int, size: int, rng) -> tuple[np.ndarray, np.ndarray]:
    x = np.empty((n, size, size), np.float32)
    y = np.empty((n, size, size), np.float32)
    for i in range(n):
        k = int(rng.integers(len(images)))
        h, w = images[k].shape
        r, c = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        patch = images[k][r:r + size, c:c + size].astype(np.float32)
        x[i] = patch / max(float(patch.max()), 1e-6)
        y[i] = masks[k][r:r + size, c:c + size]
    return x, y


def write_patches(path: Path, *, size: int, batch: int, steps: int, val: int) -> str:
    """The shared training sequence and validation crops as one ``.npz``; returns its source."""
    frames = None if size < 256 else _psc_frames()  # smoke sizes: the synthetic images
    source = "PhC-C2DL-PSC training sequence" if frames else "synthetic cell images"
    images, masks = frames or _synthetic_frames(N_TRAIN_FRAMES + 20, (size * 2, size * 2))
    rng = np.random.default_rng(0)
    xt, yt = _crops(images[:N_TRAIN_FRAMES], masks[:N_TRAIN_FRAMES], steps * batch, size, rng)
    xv, yv = _crops(images[N_TRAIN_FRAMES:], masks[N_TRAIN_FRAMES:], val, size, rng)
    np.savez(path, x_train=xt, y_train=yt, x_val=xv, y_val=yv)
    return source


def _jaccard(prob: np.ndarray, truth: np.ndarray) -> float:
    pred, true = prob > 0.5, truth > 0.5
    union = np.logical_or(pred, true).sum()
    return float(np.logical_and(pred, true).sum() / union) if union else 1.0


class _Fit:
    """One full training run per ``step()``, from a fresh init seeded by the round index."""

    def __init__(self, *, data: str, batch: int, seed: int = 0):
        arrays = np.load(data)
        self.x, self.y = arrays["x_train"], arrays["y_train"]
        self.xv, self.yv = arrays["x_val"], arrays["y_val"]
        self.batch, self.seed, self.values = batch, seed, []

    def step(self) -> dict:
        prob = self.fit_and_predict(self.seed + len(self.values))
        self.values.append(_jaccard(prob, self.yv))
        return {"units": len(self.x) // self.batch}


class KerasFit(_Fit):
    def __init__(self, *, threads: int | None = None, **kw):
        super().__init__(**kw)
        from .unet import _keras_info, _keras_unet, _tf_threads
        _tf_threads(threads)
        import keras
        self.keras, self.build = keras, lambda: _keras_unet(self.x.shape[-1])
        self.info = _keras_info(self.build())

    def fit_and_predict(self, seed: int) -> np.ndarray:
        self.keras.utils.set_random_seed(seed)  # this worker process only
        model = self.build()
        model.compile(optimizer=self.keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        for i in range(0, len(self.x), self.batch):
            model.train_on_batch(self.x[i:i + self.batch, ..., None],
                                 self.y[i:i + self.batch, ..., None])
        return np.concatenate([model.predict_on_batch(self.xv[i:i + 8, ..., None])[..., 0]
                               for i in range(0, len(self.xv), 8)])


class OursFit(_Fit):
    def __init__(self, *, channels_last: bool = True, bf16: bool = False,
                 threads: int | None = None, **kw):
        super().__init__(**kw)
        import torch
        if threads:
            torch.set_num_threads(threads)
        from .unet import _torch_info
        self.torch, self.channels_last, self.bf16 = torch, channels_last, bf16
        self.info = _torch_info({"channels_last": channels_last, "bf16_autocast": bf16})

    def fit_and_predict(self, seed: int) -> np.ndarray:
        from .unet import _autocast, _our_model
        torch = self.torch
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, run, fmt = _our_model(channels_last=self.channels_last, compile=False,
                                         train=True)
            opt = torch.optim.Adam(model.parameters(), 1e-3)
            loss_fn = torch.nn.BCEWithLogitsLoss()
            for i in range(0, len(self.x), self.batch):
                x = torch.from_numpy(self.x[i:i + self.batch, None]).contiguous(
                    memory_format=fmt)
                y = torch.from_numpy(self.y[i:i + self.batch, None])
                opt.zero_grad(set_to_none=True)
                with _autocast("cpu", self.bf16):
                    logits = run(x)
                loss_fn(logits.float(), y).backward()
                opt.step()
        model.eval()
        with torch.inference_mode(), _autocast("cpu", self.bf16):
            return np.concatenate([torch.sigmoid(run(torch.from_numpy(
                self.xv[i:i + 8, None]).contiguous(memory_format=fmt)).float())[:, 0].numpy()
                for i in range(0, len(self.xv), 8)])


def keras_fit(**kw):
    return KerasFit(**kw)


def ours_fit(**kw):
    return OursFit(**kw)


def comparisons(smoke: bool, data: str, source: str) -> list[Comparison]:
    from .unet import our_settings
    s = _sizes(smoke)
    opts = our_settings()
    params = {"data": data, "batch": s["batch"]}
    threads = {"threads": 1} if smoke else {}
    return [Comparison(
        f"validation Jaccard after {s['steps']} steps (batch {s['batch']} of {s['size']}², "
        f"{source})", "steps/s",
        Side("cellrobust (PyTorch)", "benchmarks.suites.convergence:ours_fit",
             {**params, **opts, **threads}),
        (Side("Keras/TensorFlow", "benchmarks.suites.convergence:keras_fit",
              {**params, **threads}, "tf"),),
        rounds=2 if smoke else 3, warmup=False)]


def jaccard_lines(rows: list[dict]) -> list[str]:
    """Each side's validation Jaccard per seed, the mean difference and the seeds' spread."""
    lines = []
    for row in rows:
        sides = [row["ours"], *row["peers"]]
        got = {s["label"]: s.get("values") for s in sides if s.get("values")}
        for label, vals in got.items():
            per_seed = ", ".join(f"{v:.3f}" for v in vals)
            lines.append(f"- {row['name']}, {label}: validation Jaccard {per_seed} "
                         f"(mean {statistics.mean(vals):.3f})")
        if len(got) == 2:
            (a, va), (b, vb) = got.items()
            spread = max(max(va) - min(va), max(vb) - min(vb))
            diff = statistics.mean(va) - statistics.mean(vb)
            verdict = "equal within the seeds' spread" if abs(diff) <= spread else (
                "ours higher" if diff > 0 else "ours LOWER")
            lines.append(f"- {a} minus {b}: {diff:+.3f} (largest seed-to-seed spread of one "
                         f"side {spread:.3f}): {verdict}")
    return lines


def run(ctx) -> dict:
    s = _sizes(ctx.smoke)
    data = ctx.work_dir / "convergence-patches.npz"
    source = write_patches(data, size=s["size"], batch=s["batch"], steps=s["steps"],
                           val=s["val"])
    rows = [ctx.compare(c) for c in comparisons(ctx.smoke, str(data), source)]
    return {"title": "Training: validation Jaccard at equal steps vs Keras/TensorFlow",
            "rows": rows, "markdown": jaccard_lines(rows), "notes": [
                "Rounds are seeds: every round trains a fresh network on the same patch "
                "sequence; steps/s include each round's validation pass."]}
