"""``study``: what a robustness study costs — wall time, peak memory, growth with its size.

1. ``cellrobust study --preset quick`` end to end (a subprocess in a scratch folder): wall
   time and peak resident memory of its whole process tree (sampled every 0.1 s with psutil).
2. Sweep scaling: ``cellrobust.sweep.run_sweep`` on synthetic 256x256 patches at four sizes
   (images, severities and segmenters all grow); the time-growth exponent b of
   time ~ evaluations^b is fitted by least squares on log-log (b ≈ 1 means linear).
3. Per 1,000 patch-evaluations of a paper-style sweep (the ``paper`` preset's segmenters and
   artefacts: U-Net + DoG/NLM baselines on illumination, gaussian noise and zoom, 256x256
   patches): seconds per 1,000 (segmenter, image, artefact, severity) evaluations. The
   U-Net checkpoint is freshly initialised (weights do not change its cost).
There is no peer: these rows are absolute and carry the machine's load noise.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..harness import Comparison, Side

#: Wall-clock cap of the quick study inside a full benchmark run (keeps `make bench` bounded);
#: override with the environment variable BENCH_QUICK_STUDY_TIMEOUT_S.
QUICK_TIMEOUT_S = float(os.environ.get("BENCH_QUICK_STUDY_TIMEOUT_S", "300"))


class Sweep:
    """One sweep of ``n_images`` patches x ``n_severities`` x segmenters, fresh each step."""

    def __init__(self, *, n_images: int, n_severities: int, segmenters: list[str],
                 artefacts: list[str], size: int = 256, unet: bool = False, seed: int = 0):
        from cellrobust import artefacts as arts
        from cellrobust.data import Sample
        from cellrobust.sweep import SweepConfig

        from .metrics import make_pair
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
        segs = list(segmenters) + ([f"unet={self._checkpoint()}"] if unet else [])
        rng = np.random.default_rng(seed)
        self.samples = []
        for i in range(n_images):
            labels, _ = make_pair((size, size), 30, 7.0, rng)
            image = 90 + 70.0 * (labels > 0) + rng.normal(0, 6, labels.shape)
            self.samples.append(Sample(image=np.clip(image, 0, 255).astype(np.uint8),
                                       labels=labels.astype(np.int32), name=f"s{i}"))
        sev = {a: tuple(arts.get(a).ladder[:n_severities]) for a in artefacts}
        self.config = SweepConfig(segmenters=tuple(segs), artefacts=tuple(artefacts),
                                  severities=sev, thresholds=(0.5, 0.75, 0.9))
        self.evaluations = n_images * n_severities * len(artefacts) * len(segs)
        self.info = {"evaluations": self.evaluations,
                     "segmenters": [g.split("=")[0] for g in segs]}
        self._n = 0

    def _checkpoint(self) -> str:
        from cellrobust.models.checkpoint import save_checkpoint
        from cellrobust.models.unet import UNetConfig, build_unet
        config = UNetConfig()
        return str(save_checkpoint(self.tmp / "unet.pt", build_unet(config), config))

    def step(self) -> dict:
        from cellrobust.sweep import Execution, run_sweep
        self._n += 1
        out = self.tmp / f"run{self._n}"
        run_sweep(self.config, self.samples, out, execution=Execution(overwrite=True))
        shutil.rmtree(out, ignore_errors=True)
        return {"units": self.evaluations}


def sweep(**kw):
    return Sweep(**kw)


def fit_exponent(sizes: list[float], seconds: list[float]) -> float | None:
    """Least-squares slope of log(seconds) against log(size)."""
    if len(sizes) < 2:
        return None
    x, y = np.log(sizes), np.log(seconds)
    return float(np.polyfit(x, y, 1)[0])


# --------------------------------------------------------------------- the quick study (CLI)
def _peak_tree_rss(proc: subprocess.Popen, timeout: float) -> tuple[int, float, int]:
    """Wait for ``proc`` while sampling its process tree's RSS; return (rc, wall, peak)."""
    import psutil
    t0, peak = time.perf_counter(), 0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            break
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    return proc.wait(), time.perf_counter() - t0, peak


def quick_study(work_dir: Path, *, timeout: float) -> dict:
    """Run ``cellrobust study --preset quick`` in a scratch folder; wall time and peak RSS."""
    cmd = [sys.executable, "-m", "cellrobust", "study", "--preset", "quick"]
    help_ = subprocess.run(cmd[:4] + ["--help"], capture_output=True, text=True, timeout=120,
                           check=False)
    if help_.returncode != 0:
        return {"measured": False,
                "reason": "`cellrobust study` is not available in this build "
                          f"({(help_.stderr or help_.stdout).strip().splitlines()[-1:]})"}
    scratch = work_dir / "quick-study"
    scratch.mkdir(exist_ok=True)
    if "--out" in help_.stdout:
        cmd += ["--out", str(scratch / "out")]
    log = open(scratch / "study.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=scratch, stdout=log, stderr=subprocess.STDOUT)
    rc, wall, peak = _peak_tree_rss(proc, timeout)
    log.close()
    text = (scratch / "study.log").read_text(errors="replace")
    tail = text.replace("\r", "\n").strip().splitlines()[-1:]
    out = {"measured": rc == 0, "rc": rc, "wall_s": round(wall, 1),
           "peak_rss_mib": round(peak / 2**20), "command": " ".join(cmd[1:])}
    if wall >= timeout:
        out["reason"] = (f"stopped after the {timeout:.0f} s cap of this benchmark run "
                         f"(peak RSS so far {out['peak_rss_mib']} MiB; last progress: "
                         f"{' | '.join(tail)[-160:]})")
    elif rc != 0:
        out["reason"] = f"exit {rc}: {' | '.join(tail)[-300:]}"
    return out


@contextlib.contextmanager
def busy_loops(n: int):
    """``n`` CPU-bound competing processes (pure-Python busy loops) for the block's duration."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def idle_and_loaded(work_dir: Path, *, timeout: float, smoke: bool, busy: int = 2) -> dict:
    """The quick study idle, then beside ``busy`` busy loops; the slowdown ratio.

    Smoke mode times a trivial command instead (exercises the busy-loop machinery only).
    """
    def once(folder: Path, cap: float) -> dict:
        folder.mkdir(parents=True, exist_ok=True)
        if smoke:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "sum(range(10**6))"], check=True)
            return {"measured": True, "wall_s": round(time.perf_counter() - t0, 2),
                    "command": "python -c sum(range(10**6)) (smoke stand-in)"}
        return quick_study(folder, timeout=cap)

    from ..machine import load_average
    out = {"idle": {**once(work_dir / "idle", timeout), "load_before": load_average()}}
    # the loaded run may take 3x the idle time (past the 2.5x goal), so a miss is a ratio
    cap = max(timeout, 3.0 * out["idle"].get("wall_s", 0.0))
    with busy_loops(busy) as pids:
        time.sleep(0.5)
        loaded = once(work_dir / "loaded", cap)
        out["loaded"] = {**loaded, "busy_loops": len(pids), "load_after": load_average()}
    if out["idle"].get("measured") and out["loaded"].get("measured"):
        out["slowdown"] = round(out["loaded"]["wall_s"] / max(out["idle"]["wall_s"], 1e-9), 2)
    return out


# --------------------------------------------------------------------------------- the suite
def _sizes(smoke: bool) -> list[tuple[int, int, int]]:
    """(images, severities, segmenters) per scaling point; 2 artefacts throughout."""
    if smoke:
        return [(1, 2, 1), (2, 2, 2), (2, 3, 2)]
    return [(2, 2, 1), (4, 3, 2), (8, 6, 2), (16, 6, 2)]


SCALING_SEGMENTERS = ("otsu", "dog_otsu")


def run(ctx) -> dict:
    target = "benchmarks.suites.study:sweep"
    base = {"artefacts": ["gaussian_noise", "illumination"], "size": 64 if ctx.smoke else 256}
    rows = []
    with ctx.shared_workers():
        for n_img, n_sev, n_seg in _sizes(ctx.smoke):
            segs = list(SCALING_SEGMENTERS[:n_seg])
            rows.append(ctx.compare(Comparison(
                f"sweep {n_img} images × {n_sev} severities × 2 artefacts × {n_seg} segmenters",
                "evaluations/s",
                Side("cellrobust run_sweep", target, {**base, "n_images": n_img,
                                                      "n_severities": n_sev,
                                                      "segmenters": segs}), (), rounds=2)))
    paper = {**base, "n_images": 2 if ctx.smoke else 3, "n_severities": 2 if ctx.smoke else 3,
             "unet": True, "segmenters": ["dog_otsu", "nlm_otsu"],
             "artefacts": ["illumination", "gaussian_noise", "zoom"]}
    rows.append(ctx.compare(Comparison(
        "sweep alone, paper-style: U-Net + dog_otsu + nlm_otsu, illumination + "
        "gaussian_noise + zoom",
        "evaluations/s", Side("cellrobust run_sweep", target, paper), (), rounds=2,
        warmup=False)))
    quick = (quick_study(ctx.work_dir, timeout=QUICK_TIMEOUT_S) if not ctx.smoke
             else {"measured": False, "reason": "not run in smoke mode"})
    load = idle_and_loaded(ctx.work_dir / "load", timeout=QUICK_TIMEOUT_S, smoke=ctx.smoke)
    return {"title": "study cost: quick preset, sweep scaling, per 1,000 evaluations",
            "rows": rows, "quick_study": quick, "quick_study_load": load,
            "markdown": _lines(rows, quick) + _load_lines(load, ctx.smoke)}


def _load_lines(load: dict, smoke: bool) -> list[str]:
    idle, loaded = load["idle"], load["loaded"]
    what = "smoke stand-in command" if smoke else "`cellrobust study --preset quick`"
    if "slowdown" not in load:
        why = idle.get("reason") or loaded.get("reason") or "not measured"
        return [f"- {what} idle vs beside {loaded.get('busy_loops', 2)} busy loops: {why}"]
    return [f"- {what}: {idle['wall_s']} s idle (load {idle['load_before']}), "
            f"{loaded['wall_s']} s beside {loaded['busy_loops']} CPU-bound busy loops (load "
            f"after {loaded['load_after']}): {load['slowdown']}× (goal ≤ 2.5×)"]


def _lines(rows: list[dict], quick: dict) -> list[str]:
    ok = [r for r in rows[:-1] if r["ours"].get("summary")]
    evals = [r["ours"]["info"]["evaluations"] for r in ok]
    secs = [e / r["ours"]["summary"]["median"] for e, r in zip(evals, ok)]
    b = fit_exponent(evals, secs)
    lines = []
    if quick.get("measured"):
        lines.append(f"- `cellrobust study --preset quick`: {quick['wall_s']} s wall, peak RSS "
                     f"{quick['peak_rss_mib']} MiB (whole process tree)")
    else:
        lines.append(f"- `cellrobust study --preset quick`: not measured — "
                     f"{quick.get('reason', 'unknown')}")
    if b is not None and not math.isnan(b):
        pts = ", ".join(f"{e} → {s:.2f} s" for e, s in zip(evals, secs))
        lines.append(f"- Time growth: time ∝ evaluations^{b:.2f} over {len(evals)} sizes "
                     f"({pts})")
    paper = rows[-1]["ours"]
    if paper.get("summary"):
        lines.append(f"- Paper-style sweep: {1000 / paper['summary']['median']:.0f} s per 1,000 "
                     f"patch-evaluations (segmenters {', '.join(paper['info']['segmenters'])}; "
                     "256² patches; U-Net freshly initialised, default width)")
    return lines
