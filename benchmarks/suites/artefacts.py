"""``artefacts``: patches/s per artefact, cellrobust vs imagecorruptions' nearest equivalent.

Input: 256x256 uint8 gray patches. imagecorruptions (the maintained ``imagecorruptions-imaug``
fork; 1.1.2 breaks on current numpy) works on 8-bit RGB: a gray patch is replicated to three
channels inside ``corrupt`` and the result is 8-bit RGB — that conversion is part of its cost,
as it is for a microscopy user. Our side is timed twice: per patch through
``cellrobust.artefacts.apply`` (one Sample at a time, like ``corrupt``) and on the whole stack
through ``apply_batch`` with one stream per image, as the sweep corrupts its stacks (the
streams' construction is timed too; a single stream for a whole stack is one sequential draw,
so only per-image streams can spread over the cores). Strengths are each library's middle setting (our ladder level 3,
their severity 3): the pairing compares throughput of the same kind of corruption, not
identical outputs.
"""

from __future__ import annotations

import numpy as np

from ..harness import Comparison, Side

# ours (name, options) -> imagecorruptions corruption name, speed goal (issue #18)
PAIRS = [
    ("gaussian_noise", {}, "gaussian_noise", 5.0),
    ("speckle", {}, "speckle_noise", 5.0),
    ("poisson", {}, "shot_noise", 5.0),
    ("defocus", {}, "gaussian_blur", 5.0),
    ("defocus", {"psf": "disk"}, "defocus_blur", 5.0),
    ("jpeg", {}, "jpeg_compression", 3.0),
]
LEVEL = 3


class OursPerPatch:
    def __init__(self, *, path: str, name: str, options: dict):
        from cellrobust import artefacts
        from cellrobust.data import Sample
        self.apply, self.name, self.options = artefacts.apply, name, options
        self.value = artefacts.get(name).value_at(LEVEL)
        self.samples = [Sample(image=p, labels=None, name=f"p{i}")
                        for i, p in enumerate(np.load(path))]
        self.info = {"versions": _our_versions(), "value": self.value, "level": LEVEL}

    def step(self) -> dict:
        for i, s in enumerate(self.samples):
            self.apply(s, self.name, self.value, rng=i, **self.options)
        return {"units": len(self.samples)}


class OursBatch:
    def __init__(self, *, path: str, name: str, options: dict):
        from cellrobust import artefacts
        self.apply_batch, self.name, self.options = artefacts.apply_batch, name, options
        self.value = artefacts.get(name).value_at(LEVEL)
        self.images = np.load(path)
        self.info = {"versions": _our_versions(), "value": self.value, "level": LEVEL}

    def step(self) -> dict:
        streams = [np.random.default_rng(i) for i in range(len(self.images))]
        self.apply_batch(self.images, self.name, self.value, rng=streams, **self.options)
        return {"units": len(self.images)}


def _our_versions() -> dict:
    import cellrobust
    return {"cellrobust": cellrobust.__version__, "numpy": np.__version__}


class ImageCorruptions:
    def __init__(self, *, path: str, corruption: str):
        from importlib.metadata import version

        from imagecorruptions import corrupt
        self.corrupt, self.corruption = corrupt, corruption
        self.images = np.load(path)
        np.random.seed(0)  # imagecorruptions draws from numpy's global generator
        self.info = {"versions": {"imagecorruptions-imaug": version("imagecorruptions-imaug")},
                     "severity": LEVEL}

    def step(self) -> dict:
        for p in self.images:
            self.corrupt(p, corruption_name=self.corruption, severity=LEVEL)
        return {"units": len(self.images)}


def ours_per_patch(**kw):
    return OursPerPatch(**kw)


def ours_batch(**kw):
    return OursBatch(**kw)


def imagecorruptions(**kw):
    return ImageCorruptions(**kw)


def run(ctx) -> dict:
    from ._data import save_images
    n = 2 if ctx.smoke else 32
    path = save_images(str(ctx.work_dir / "artefact_patches.npy"), n, (256, 256), seed=3)
    rows = []
    with ctx.shared_workers():
        _compare_all(ctx, path, n, rows)
    return {"title": "artefacts on 256×256 patches vs imagecorruptions", "rows": rows,
            "notes": [(f"{n} uint8 gray 256×256 patches per timed call; our ladder level {LEVEL} "
                      f"vs imagecorruptions severity {LEVEL} (throughput of the same kind of "
                      "corruption, not identical strengths)."),
                      ("imagecorruptions requires 8-bit RGB: a gray patch is replicated to 3 "
                      "channels and processed as colour inside `corrupt`; that cost is included."),
                      "Worker processes are reused across the rows of this suite."]}


def _compare_all(ctx, path: str, n: int, rows: list) -> None:
    for name, options, peer, goal in PAIRS:
        label = name + ("(" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")"
                        if options else "")
        peer_side = Side(f"imagecorruptions {peer}", "benchmarks.suites.artefacts:imagecorruptions",
                         {"path": path, "corruption": peer}, "classic")
        ours = {"path": path, "name": name, "options": options}
        rows.append(ctx.compare(Comparison(
            f"{label}, per patch (apply)", "patches/s",
            Side("cellrobust apply", "benchmarks.suites.artefacts:ours_per_patch", ours),
            (peer_side,), goal=goal, rounds=3)))
        rows.append(ctx.compare(Comparison(
            f"{label}, stack of {n} (apply_batch, a stream per image)", "patches/s",
            Side("cellrobust apply_batch", "benchmarks.suites.artefacts:ours_batch", ours),
            (peer_side,), goal=goal, rounds=3)))
