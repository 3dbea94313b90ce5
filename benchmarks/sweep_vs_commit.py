"""The paper preset's sweep, side by side with an older checkout of cellrobust (issue #18).

Issue #18 asks for the paper preset's sweep to be >= 3x faster than "today" (the code when the
issue was filed) with the table identical except ``runtime_s``. This script measures both
halves on the same machine, interleaved, one process at a time:

- **speed**: ``cellrobust sweep`` with the paper preset's segmenters and grids (a U-Net
  checkpoint, ``dog_otsu``, ``nlm_otsu``; illumination, gaussian noise, cell size and patch zoom
  on the ``study`` grids; 6 patches of 256 px per frame) run by the old checkout
  (``--old-src``, its ``src`` folder, on this environment's packages) and by this one, in
  alternating rounds; the median wall time of each and their ratio, with the load average
  before and after every run. Each side runs with its own defaults (workers, batch size,
  inference path), as a user would get them.
- **table**: this checkout's default run against its own reference run (one worker, one image
  per call, ``backend=eager,precision=fp32``): the results tables must agree in every column but
  ``runtime_s``. An older checkout's crops can differ from today's (the crop stream was
  re-keyed in between), so identity is checked within one checkout, and the speed comparison
  counts the same number of patch-evaluations on both sides.

Run alone (nothing else on the cores)::

    git worktree add /tmp/old-533 533a06b
    python -m benchmarks.sweep_vs_commit --old-src /tmp/old-533/src --frames 1 --rounds 2 \
        --out benchmarks/results/paper-sweep
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.machine import load_average, machine_info

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "psc"
MODEL = REPO / "src" / "cellrobust" / "zoo" / "psc-original.pt"
ARTEFACTS = "illumination,gaussian_noise,cell_size,zoom"  # the paper preset's artefacts
KEY = ["segmenter", "artefact", "severity_index", "sample"]


def sweep_args(out: Path, *, frames: int, unet_options: str = "", extra=()) -> list[str]:
    """``cellrobust sweep`` arguments of the paper preset's grid on ``frames`` frames."""
    return ["sweep", "--data", str(DATA), "--split", "validation",
            "--segmenter", f"unet={MODEL}{unet_options}", "--segmenter", "dog_otsu",
            "--segmenter", "nlm_otsu", "--artefacts", ARTEFACTS, "--severities", "study",
            "--patches", "6", "--patch-size", "256", "--frames", str(frames), "--seed", "0",
            "--out", str(out), "--quiet", *extra]


def run_sweep(src: Path, args: list[str]) -> dict:
    """Run one sweep with ``src`` first on the path; its wall time, rows and load."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    before = load_average()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cellrobust", *args], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"sweep with {src} failed:\n{done.stderr[-2000:]}")
    out = Path(args[args.index("--out") + 1])
    rows = pd.read_csv(out / "results.csv")
    return {"seconds": seconds, "rows": len(rows),
            "evaluations": int(rows["artefact"].ne("none").sum()),
            "load_before": before, "load_after": load_average(), **_settings(out)}


def _settings(out: Path) -> dict:
    """The worker processes and malloc policy a run recorded in its ``config.json`` (an
    older checkout may record neither)."""
    try:
        config = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return {key: config[key] for key in ("worker_processes", "allocator") if key in config}


def table_differences(a: Path, b: Path) -> dict:
    """Columns (other than ``runtime_s``) in which two results tables differ, with counts."""
    left, right = pd.read_csv(a / "results.csv"), pd.read_csv(b / "results.csv")
    merged = left.merge(right, on=KEY, suffixes=("_a", "_b"), how="outer", indicator=True)
    unmatched = int((merged["_merge"] != "both").sum())
    diffs = {}
    for col in left.columns:
        if col in KEY or col == "runtime_s":
            continue
        x, y = merged[f"{col}_a"], merged[f"{col}_b"]
        differ = ~((x == y) | (x.isna() & y.isna()))
        if differ.any():
            diffs[col] = int(differ.sum())
    return {"rows": len(left), "unmatched_rows": unmatched, "differing_columns": diffs}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-src", type=Path, required=True,
                        help="src folder of the old checkout")
    parser.add_argument("--frames", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not (args.old_src / "cellrobust" / "__init__.py").is_file():
        parser.error(f"--old-src: {args.old_src} holds no cellrobust package; give the src "
                     "folder of an older checkout (git worktree add DIR COMMIT)")
    args.out.mkdir(parents=True, exist_ok=True)
    sides = {"old": args.old_src.resolve(), "new": REPO / "src"}
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for side in (("old", "new") if r % 2 == 0 else ("new", "old")):
                out = Path(tmp) / f"{side}-{r}"
                runs[side].append(run_sweep(sides[side], sweep_args(out, frames=args.frames)))
        ref = Path(tmp) / "reference"
        runs["reference"] = [run_sweep(sides["new"], sweep_args(
            ref, frames=args.frames, unet_options=",backend=eager,precision=fp32",
            extra=("--workers", "1", "--batch-size", "1")))]
        identity = table_differences(Path(tmp) / "new-0", ref)
    result = {"machine": machine_info(), "old_src": str(sides["old"]),
              "old_commit": _commit(sides["old"]), "frames": args.frames, "runs": runs,
              "median_s": {k: statistics.median(x["seconds"] for x in v) for k, v in runs.items()},
              "identity_vs_reference": identity}
    result["speedup"] = result["median_s"]["old"] / result["median_s"]["new"]
    (args.out / "paper-sweep.json").write_text(json.dumps(result, indent=2, default=str))
    (args.out / "paper-sweep.md").write_text(markdown(result))
    print(markdown(result))


def _commit(src: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return done.stdout.strip() or None


def markdown(result: dict) -> str:
    m, runs, mach = result["median_s"], result["runs"], result["machine"]
    loads = [x["load_before"][0] for v in runs.values() for x in v if x["load_before"]]
    lines = [f"# Paper-preset sweep: this checkout vs {result['old_commit']}", "",
             f"Machine: {mach['cpu_model']}, {mach['usable_cores']} cores, flags "
             f"{', '.join(mach['cpu_flags'])}; {mach['date_utc']}, commit {mach['git_commit']}; "
             f"load (1 min) before the runs "
             f"{min(loads):.2f}-{max(loads):.2f}.",
             f"Work: {runs['new'][0]['evaluations']} patch-evaluations per run "
             f"({result['frames']} frame(s) x 6 patches x the study grids x 3 segmenters).", "",
             "| side | runs (s) | median (s) | worker processes; malloc policy |",
             "|---|---|---|---|"]
    for side, v in runs.items():
        times = ", ".join(f"{x['seconds']:.1f}" for x in v)
        settings = " / ".join(f"{x.get('worker_processes', '?')}; "
                             f"{(x.get('allocator') or {}).get('policy', '?')}" for x in v)
        lines.append(f"| {side} | {times} | {m[side]:.1f} | {settings} |")
    ident = result["identity_vs_reference"]
    lines += ["", f"**Speed-up: {result['speedup']:.2f}x** (old median / new median).", "",
              f"Table of the default run vs the reference run (1 worker, 1 image per call, eager "
              f"fp32): {ident['rows']} rows, {ident['unmatched_rows']} unmatched, differing "
              f"columns other than runtime_s: {ident['differing_columns'] or 'none'}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
