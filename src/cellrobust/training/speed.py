"""Measure how fast the U-Net trains and infers on this machine under each CPU/GPU option.

``python -m cellrobust.training.speed`` times, side by side in one process, a training step
(batch 2 of 256 x 256 by default) and inference (batch 16) for the combinations of memory
format (NCHW / channels-last), bfloat16 autocast and ``torch.compile``; the numbers behind the
defaults chosen in :func:`cellrobust.training.loop.select_device_options` are recorded in
``docs/training.md``. Timings are medians over ``repeats`` after ``warmup`` calls.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from cellrobust.models.unet import UNetConfig, build_unet


def _median_time(fn: Callable[[], None], *, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_train_step(*, batch: int = 2, size: int = 256, channels_last: bool = False,
                    bf16: bool = False, compile: bool = False, warmup: int = 2,
                    repeats: int = 5) -> float:
    """Median seconds per Adam training step of the default U-Net (BCE loss)."""
    model = build_unet(UNetConfig())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    step_model = torch.compile(model) if compile else model
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(batch, 1, size, size).contiguous(memory_format=fmt)
    y = (torch.rand(batch, 1, size, size) > 0.9).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = step_model(x)
        loss = loss_fn(logits.float(), y)
        loss.backward()
        opt.step()

    return _median_time(step, warmup=warmup, repeats=repeats)


def time_inference(*, batch: int = 16, size: int = 256, channels_last: bool = False,
                   bf16: bool = False, compile: bool = False, warmup: int = 1,
                   repeats: int = 3) -> float:
    """Median seconds per inference batch (eval mode, no grad)."""
    model = build_unet(UNetConfig()).eval()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    run_model = torch.compile(model) if compile else model
    x = torch.rand(batch, 1, size, size).contiguous(memory_format=fmt)

    def run() -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            run_model(x)

    return _median_time(run, warmup=warmup, repeats=repeats)


def main(argv: list[str] | None = None) -> None:
    """Print a table of timings for every option combination."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--infer-batch", type=int, default=16)
    args = parser.parse_args(argv)
    combos = [(cl, bf) for cl in (False, True) for bf in (False, True)]
    for threads in args.threads:
        torch.set_num_threads(threads)
        for cl, bf in combos:
            train = time_train_step(channels_last=cl, bf16=bf)
            infer = time_inference(batch=args.infer_batch, channels_last=cl, bf16=bf)
            print(f"threads={threads} channels_last={cl!s:5} bf16={bf!s:5} "
                  f"train_step_b2={train * 1e3:7.1f} ms  infer_b{args.infer_batch}="
                  f"{infer * 1e3:7.1f} ms ({args.infer_batch / infer:5.1f} patches/s)", flush=True)
        if args.compile:
            train = time_train_step(channels_last=True, compile=True, warmup=3)
            infer = time_inference(batch=args.infer_batch, channels_last=True, compile=True)
            print(f"threads={threads} channels_last=True compile=True "
                  f"train_step_b2={train * 1e3:7.1f} ms  infer={infer * 1e3:7.1f} ms", flush=True)


if __name__ == "__main__":
    main()
