"""``unet``: training steps/s and inference patches/s, cellrobust (PyTorch) vs Keras/TensorFlow.

Both sides build the DeepImageJ U-Net (481,745 parameters; conv3x3-dropout-conv3x3 with ELU,
He-normal, "same" padding; 16/32/64 filters, 128 bottleneck; 2x2 average pooling; 2x2 stride-2
transposed convolutions; concat [up, skip]; 1x1 sigmoid), train with Adam(1e-3) and binary
cross-entropy at batch 2 of 256x256, and infer batches of 16 patches. The peer is Keras 3 with
the TensorFlow backend at its defaults (``compile(jit_compile="auto")``, i.e. XLA where
supported); our side uses the CPU options cellrobust's training and inference pick.
Achieved GFLOP/s use an analytic FLOP count of the architecture (training = 3x forward).
"""

from __future__ import annotations

import numpy as np

from ..harness import Comparison, Side
from ._variants import train_variants

WIDTHS = (16, 32, 64)
BOTTLENECK = 128
DROPOUT = (0.1, 0.1, 0.2, 0.2, 0.2, 0.1, 0.1)
N_PARAMS = 481_745


def forward_flops(h: int, w: int) -> float:
    """Multiply-add FLOPs (2 per MAC) of one forward pass of the U-Net on an (h, w) image."""
    macs, cin = 0, 1
    for level, c in enumerate(WIDTHS):
        px = (h >> level) * (w >> level)
        macs += px * 9 * (cin * c + c * c)
        cin = c
    px = (h >> 3) * (w >> 3)
    macs += px * 9 * (cin * BOTTLENECK + BOTTLENECK * BOTTLENECK)
    cin = BOTTLENECK
    for level in reversed(range(len(WIDTHS))):
        c, px = WIDTHS[level], (h >> level) * (w >> level)
        macs += px * 4 * cin * c / 4  # transposed 2x2 stride 2: each input pixel -> 4 outputs
        macs += px * 9 * (2 * c * c + c * c)
        cin = c
    macs += h * w * cin
    return 2.0 * macs


# --------------------------------------------------------------------------------- Keras side
def _keras_unet(size: int, width: int | None = None):
    import keras
    from keras import layers

    def block(x, c, rate):
        x = layers.Conv2D(c, 3, activation="elu", kernel_initializer="he_normal",
                          padding="same")(x)
        x = layers.Dropout(rate)(x)
        return layers.Conv2D(c, 3, activation="elu", kernel_initializer="he_normal",
                             padding="same")(x)

    inputs = keras.Input((size, width or size, 1))
    x, skips = inputs, []
    for c, rate in zip(WIDTHS, DROPOUT[:3]):
        x = block(x, c, rate)
        skips.append(x)
        x = layers.AveragePooling2D(2)(x)
    x = block(x, BOTTLENECK, DROPOUT[3])
    for c, rate, skip in zip(reversed(WIDTHS), DROPOUT[4:], reversed(skips)):
        x = layers.Conv2DTranspose(c, 2, strides=2, padding="same")(x)
        x = block(layers.concatenate([x, skip]), c, rate)
    outputs = layers.Conv2D(1, 1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def _keras_info(model) -> dict:
    import keras
    import tensorflow as tf
    return {"versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
            "params": int(model.count_params()), "jit_compile": str(model.jit_compile),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}


def _tf_threads(threads: int | None) -> None:
    """Limit TensorFlow's intra- and inter-op pools (before any op runs)."""
    if threads:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


class KerasTrain:
    def __init__(self, *, size: int, batch: int, steps: int, threads: int | None = None):
        import keras
        _tf_threads(threads)
        self.model = _keras_unet(size)
        self.model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        rng = np.random.default_rng(0)
        self.x = rng.random((batch, size, size, 1), dtype=np.float32)
        self.y = (rng.random((batch, size, size, 1)) > 0.9).astype(np.float32)
        self.steps = steps
        self.info = _keras_info(self.model)

    def step(self) -> dict:
        for _ in range(self.steps):
            self.model.train_on_batch(self.x, self.y)
        return {"units": self.steps}


class KerasInfer:
    def __init__(self, *, size: int, batch: int, batches: int, threads: int | None = None):
        _tf_threads(threads)
        self.model = _keras_unet(size)
        self.model.compile()
        self.x = np.random.default_rng(0).random((batch, size, size, 1), dtype=np.float32)
        self.batches = batches
        self.info = _keras_info(self.model)

    def step(self) -> dict:
        for _ in range(self.batches):
            self.model.predict_on_batch(self.x)
        return {"units": self.batches * len(self.x)}


def keras_train(**kw):
    return KerasTrain(**kw)


def keras_infer(**kw):
    return KerasInfer(**kw)


# ------------------------------------------------------------------------------ our side
def _torch_info(options: dict) -> dict:
    import torch
    return {"versions": {"torch": torch.__version__}, "threads": torch.get_num_threads(),
            "options": options}


def _our_model(*, channels_last: bool, compile: bool, train: bool):
    import torch

    from cellrobust.models.unet import UNetConfig, build_unet, count_parameters

    model = build_unet(UNetConfig())
    assert count_parameters(model) == N_PARAMS, count_parameters(model)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train(train)
    return model, (torch.compile(model) if compile else model), fmt


def _sync(device: str) -> None:
    if device == "cuda":
        import torch
        torch.cuda.synchronize()


def _autocast(device: str, bf16: bool):
    """bf16 autocast on CPU when asked; fp16 autocast on CUDA (mixed precision)."""
    import torch
    if device == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


class OursTrain:
    def __init__(self, *, size: int, batch: int, steps: int, channels_last: bool = True,
                 bf16: bool = False, threads: int | None = None, compile: bool = False,
                 device: str = "cpu", adam: str | None = None):
        import torch
        if threads:
            torch.set_num_threads(threads)
        model, self.run_model, fmt = _our_model(channels_last=channels_last, compile=compile,
                                                train=True)
        model.to(device)
        impl = {"foreach": {"foreach": True}, "fused": {"fused": True}}.get(adam or "", {})
        self.opt = torch.optim.Adam(model.parameters(), 1e-3, **impl)
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(batch, 1, size, size, generator=g).contiguous(
            memory_format=fmt).to(device)
        self.y = (torch.rand(batch, 1, size, size, generator=g) > 0.9).float().to(device)
        self.loss = torch.nn.BCEWithLogitsLoss()
        self.scaler = torch.amp.GradScaler("cuda", enabled=device == "cuda")
        self.bf16, self.steps, self.device = bf16, steps, device
        self.info = _torch_info({"channels_last": channels_last, "bf16_autocast": bf16,
                                 "compile": compile, "device": device, "adam": adam})

    def step(self) -> dict:
        for _ in range(self.steps):
            self.opt.zero_grad(set_to_none=True)
            with _autocast(self.device, self.bf16):
                logits = self.run_model(self.x)
            self.scaler.scale(self.loss(logits.float(), self.y)).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        _sync(self.device)
        return {"units": self.steps}


class OursInfer:
    def __init__(self, *, size: int, batch: int, batches: int, channels_last: bool = True,
                 bf16: bool = False, threads: int | None = None, compile: bool = False,
                 chunk: int | None = None, device: str = "cpu"):
        import torch
        if threads:
            torch.set_num_threads(threads)
        model, self.run_model, fmt = _our_model(channels_last=channels_last, compile=compile,
                                                train=False)
        model.to(device)
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(batch, 1, size, size, generator=g).contiguous(
            memory_format=fmt).to(device)
        self.bf16, self.batches, self.chunk = bf16, batches, chunk or batch
        self.device = device
        self.info = _torch_info({"channels_last": channels_last, "bf16_autocast": bf16,
                                 "compile": compile, "chunk": self.chunk, "device": device})

    def step(self) -> dict:
        import torch
        with torch.inference_mode(), _autocast(self.device, self.bf16):
            for _ in range(self.batches):
                for i in range(0, len(self.x), self.chunk):
                    torch.sigmoid(self.run_model(self.x[i:i + self.chunk]))
        _sync(self.device)
        return {"units": self.batches * len(self.x)}


def ours_train(**kw):
    return OursTrain(**kw)


def ours_infer(**kw):
    return OursInfer(**kw)


# --------------------------------------------------------------------------------- the suite
def our_settings() -> dict:
    """CPU options for our side: what cellrobust's training loop picks on this machine."""
    try:
        import torch

        from cellrobust.training.config import TrainConfig
        from cellrobust.training.loop import select_device_options
        _, dtype, channels_last = select_device_options(TrainConfig())
        return {"channels_last": bool(channels_last), "bf16": dtype is torch.bfloat16}
    except Exception:  # noqa: BLE001 - training not importable: the documented fast CPU default
        return {"channels_last": True, "bf16": False}


def our_inference_chunk() -> int | None:
    """Patches per forward pass in cellrobust's tiled inference (``predict_tiled`` default)."""
    try:
        import inspect

        from cellrobust.models.inference import predict_tiled
        return int(inspect.signature(predict_tiled).parameters["batch_size"].default)
    except Exception:  # noqa: BLE001 - inference not importable: one forward pass per batch
        return None


def _sizes(smoke: bool) -> dict:
    if smoke:
        return {"size": 64, "train_batch": 2, "steps": 1, "infer_batch": 2, "batches": 1,
                "mm_n": 256, "mm_reps": 2, "conv_size": 32, "conv_reps": 1}
    return {"size": 256, "train_batch": 2, "steps": 3, "infer_batch": 16, "batches": 1,
            "mm_n": 2048, "mm_reps": 8, "conv_size": 128, "conv_reps": 4}


def comparisons(smoke: bool, threads: int | None = None) -> list[Comparison]:
    s, opts = _sizes(smoke), our_settings()
    if smoke:  # one thread: tiny work, and no OpenMP thrashing on a loaded test machine
        threads = 1
    if threads:
        opts = {**opts, "threads": threads}
    train = {"size": s["size"], "batch": s["train_batch"], "steps": s["steps"]}
    infer = {"size": s["size"], "batch": s["infer_batch"], "batches": s["batches"]}
    return [
        Comparison(f"train step, batch {s['train_batch']} of {s['size']}²", "steps/s",
                   Side("cellrobust (PyTorch)", "benchmarks.suites.unet:ours_train",
                        {**train, **opts}),
                   # issue #18: >= 1.25x Keras (at equal validation Jaccard after the same
                   # number of steps, which this throughput row does not measure)
                   _keras_peers("keras_train", train, threads, smoke), goal=1.25, rounds=4),
        Comparison(f"inference, batch {s['infer_batch']} of {s['size']}²", "patches/s",
                   Side("cellrobust (PyTorch)", "benchmarks.suites.unet:ours_infer",
                        {**infer, **opts, "chunk": our_inference_chunk()}),
                   _keras_peers("keras_infer", infer, threads, smoke), goal=1.5, rounds=4),
        *train_variants(train, opts, smoke),
        Comparison(f"fp32 matmul {s['mm_n']}²", "GFLOP/s",
                   Side("torch.mm (MKL)", "benchmarks.suites.rates:matmul_rate",
                        {"n": s["mm_n"], "reps": s["mm_reps"]}), (), rounds=3),
        Comparison(f"fp32 conv3x3 64→64, 2×{s['conv_size']}²", "GFLOP/s",
                   Side("torch conv2d (oneDNN)", "benchmarks.suites.rates:conv_rate",
                        {"size": s["conv_size"], "reps": s["conv_reps"]}), (), rounds=3),
    ] + (_gpu_comparisons(s) if _has_cuda() else [])


def _keras_peers(target: str, params: dict, threads: int | None,
                 smoke: bool) -> tuple[Side, ...]:
    """Keras at its defaults; when our side runs on fewer threads, also Keras on as many."""
    peers = (Side("Keras/TensorFlow", f"benchmarks.suites.unet:{target}", params, "tf"),)
    if threads and not smoke:
        peers += (Side(f"Keras/TensorFlow, {threads} thread(s)",
                       f"benchmarks.suites.unet:{target}", {**params, "threads": threads},
                       "tf"),)
    return peers


def _has_cuda() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def _gpu_comparisons(s: dict) -> list[Comparison]:
    """Our side on the GPU (fp16 mixed precision), with the GPU's measured matmul rates."""
    train = {"size": s["size"], "batch": s["train_batch"], "steps": 10 * s["steps"],
             "device": "cuda"}
    infer = {"size": s["size"], "batch": s["infer_batch"], "batches": 10 * s["batches"],
             "device": "cuda"}
    mm = {"n": 8192 if s["size"] >= 256 else 512, "reps": 20, "device": "cuda"}
    t, r = "benchmarks.suites.unet:", "benchmarks.suites.rates:"
    return [
        Comparison(f"GPU train step, batch {s['train_batch']} of {s['size']}²", "steps/s",
                   Side("cellrobust (PyTorch, CUDA fp16 autocast)", t + "ours_train", train), ()),
        Comparison(f"GPU inference, batch {s['infer_batch']} of {s['size']}²", "patches/s",
                   Side("cellrobust (PyTorch, CUDA fp16 autocast)", t + "ours_infer", infer), ()),
        Comparison(f"GPU fp32 matmul {mm['n']}²", "GFLOP/s",
                   Side("torch.mm (cuBLAS, TF32 off)", r + "matmul_rate", mm), ()),
        Comparison(f"GPU fp16 matmul {mm['n']}²", "GFLOP/s",
                   Side("torch.mm (cuBLAS)", r + "matmul_rate", {**mm, "dtype": "float16"}), ()),
    ]


def _gflops_lines(rows: list[dict], smoke: bool) -> list[str]:
    s = _sizes(smoke)
    fwd = forward_flops(s["size"], s["size"])
    per_unit = {"steps/s": 3 * fwd * s["train_batch"], "patches/s": fwd}
    lines = [(f"- FLOPs (analytic, 2 per multiply-add): forward {fwd / 1e9:.2f} GFLOP per "
             f"{s['size']}² patch; training step ≈ 3 × forward × batch = "
             f"{per_unit['steps/s'] / 1e9:.1f} GFLOP")]
    for gpu in (False, True):
        group = [r for r in rows if r["name"].startswith("GPU") == gpu]
        ceilings = {" ".join(r["name"].split()[:3 if gpu else 2]): r["ours"]["summary"]["median"]
                    for r in group if r["unit"] == "GFLOP/s" and r["ours"].get("summary")}
        for row in group:
            if row["unit"] not in per_unit or row["name"].startswith("thread calibration"):
                continue
            for side in [row["ours"], *row["peers"]]:
                med = (side.get("summary") or {}).get("median")
                if med is None:
                    continue
                achieved = med * per_unit[row["unit"]] / 1e9
                shares = ", ".join(f"{100 * achieved / v:.0f} % of measured {k}"
                                   for k, v in ceilings.items() if v)
                lines.append(f"- {row['name']}, {side['label']}: {achieved:.3g} GFLOP/s "
                             f"({shares})")
    return lines


def calibrate_threads(ctx) -> tuple[int | None, dict | None]:
    """Pick torch's intra-op threads for our side by measurement (``TrainConfig.threads``).

    On a shared machine, OpenMP with one thread per core can collapse when the cores are
    oversubscribed; one thread may then be faster. Two interleaved rounds of one training step
    with torch's default (all cores) against ``threads=1`` decide; the row is reported.
    """
    if ctx.smoke:
        return 1, None
    s, opts = _sizes(False), our_settings()
    p = {"size": s["size"], "batch": s["train_batch"], "steps": 1, **opts}
    row = ctx.compare(Comparison(
        "thread calibration: train step, torch default threads vs threads=1", "steps/s",
        Side("default threads", "benchmarks.suites.unet:ours_train", p),
        (Side("threads=1", "benchmarks.suites.unet:ours_train", {**p, "threads": 1}),),
        rounds=2))
    ratio = (row["peers"][0].get("ratio") or {}).get("median")
    return (1 if ratio is not None and ratio < 1.0 else None), row


def run(ctx) -> dict:
    threads, calibration = calibrate_threads(ctx)
    rows = [ctx.compare(c) for c in comparisons(ctx.smoke, threads)]
    notes = _settings_notes(rows)
    if calibration is not None:
        ratio = (calibration["peers"][0].get("ratio") or {}).get("median")
        notes.append(f"Thread choice measured at the start of this suite: default threads / "
                     f"threads=1 = {ratio if ratio is None else round(ratio, 2)} (training "
                     f"steps/s) -> our side ran with "
                     f"{'threads=1' if threads == 1 else 'torch default threads'}.")
        rows = [*rows, calibration]
    return {"title": "U-Net training and inference vs Keras/TensorFlow", "rows": rows,
            "markdown": _gflops_lines(rows, ctx.smoke), "notes": notes}


def _settings_notes(rows: list[dict]) -> list[str]:
    ours = next((r["ours"]["info"] for r in rows if r["ours"].get("info", {}).get("options")),
                None)
    keras = next((p["info"] for r in rows for p in r["peers"] if p.get("info")), None)
    notes = []
    if ours:
        notes.append(f"Our side's settings (as cellrobust's training picks them on this "
                     f"machine): {ours['options']}, torch intra-op threads {ours['threads']}, "
                     "eager mode, BCE on logits (equivalent to Keras's sigmoid + BCE).")
        infer = next((r["ours"]["info"]["options"] for r in rows
                      if "chunk" in r["ours"].get("info", {}).get("options", {})), None)
        if infer:
            notes.append(f"Inference: each batch is run in forward passes of "
                         f"{infer['chunk']} patches, as cellrobust's tiled inference does "
                         "(`predict_tiled(batch_size=...)` default), under torch.inference_mode.")
    if keras:
        notes.append(f"Keras at its defaults: compile(jit_compile='auto') resolved to "
                     f"jit_compile={keras['jit_compile']}; TF intra-op threads "
                     f"{keras['intra_op_threads'] or 'default (all cores)'}; train_on_batch / "
                     "predict_on_batch; model parameters "
                     f"{keras['params']:,} (ours asserted {N_PARAMS:,}).")
    return notes
