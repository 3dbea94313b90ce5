"""Machine ceilings for the ``unet`` suite: measured fp32 matmul and conv3x3 GFLOP/s (torch).

Units are GFLOP per call, so the harness's throughput is GFLOP/s.
"""

from __future__ import annotations

from .unet import _sync, _torch_info


class MatmulRate:
    """fp32 matrix multiply (torch/MKL); units are GFLOP, so throughput is GFLOP/s."""

    def __init__(self, *, n: int, reps: int, threads: int | None = None, device: str = "cpu",
                 dtype: str = "float32"):
        import torch
        if threads:
            torch.set_num_threads(threads)
        g = torch.Generator().manual_seed(0)
        self.a, self.b = (torch.rand(n, n, generator=g).to(device, getattr(torch, dtype))
                          for _ in range(2))
        self.reps, self.gflop, self.device = reps, 2.0 * n**3 / 1e9, device
        self.info = _torch_info({"n": n, "device": device, "dtype": dtype})

    def step(self) -> dict:
        import torch
        for _ in range(self.reps):
            torch.mm(self.a, self.b)
        _sync(self.device)
        return {"units": self.reps * self.gflop}


class ConvRate:
    """fp32 (or bf16) 3x3 convolution, 64 -> 64 channels, channels-last (oneDNN): GFLOP/s."""

    def __init__(self, *, size: int, reps: int, bf16: bool = False, threads: int | None = None):
        import torch
        if threads:
            torch.set_num_threads(threads)
        dtype = torch.bfloat16 if bf16 else torch.float32
        self.conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(dtype=dtype,
                                                              memory_format=torch.channels_last)
        self.x = torch.rand(2, 64, size, size, dtype=dtype).contiguous(
            memory_format=torch.channels_last)
        self.reps, self.gflop = reps, 2.0 * 2 * size * size * 64 * 64 * 9 / 1e9
        self.info = _torch_info({"size": size, "bf16": bf16})

    def step(self) -> dict:
        import torch
        with torch.inference_mode():
            for _ in range(self.reps):
                self.conv(self.x)
        return {"units": self.reps * self.gflop}


def matmul_rate(**kw):
    return MatmulRate(**kw)


def conv_rate(**kw):
    return ConvRate(**kw)
