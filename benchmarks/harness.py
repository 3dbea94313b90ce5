"""Interleaved A/B timing of two (or more) sides, each in its own long-lived process.

Every side of a :class:`Comparison` runs in its own worker process (``benchmarks._worker``)
started from its own environment: the project's ``.venv`` for cellrobust, a ``.venv-peers-*``
environment for a peer. After one untimed warm-up per side, rounds run strictly interleaved
(A B A B ...: one timed call per side per round, the other processes idle), so slow drifts of a
shared machine hit both sides alike. Each round gives one ratio ``throughput(ours) /
throughput(peer)``; the table quotes the median of these pairwise ratios with their min and max.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import peers

REPO = Path(__file__).resolve().parent.parent
MAIN_ENV = "main"
REPLY_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a bench factory ``target`` run in environment ``env``."""

    label: str
    target: str
    params: dict = field(default_factory=dict)
    env: str = MAIN_ENV
    environ: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """Our side against one or more peers on the same work; higher ``unit`` is better."""

    name: str
    unit: str
    ours: Side
    peers: tuple[Side, ...]
    goal: float | None = None
    check_values: bool = False
    note: str = ""
    rounds: int | None = None
    warmup: bool = True


class WorkerError(RuntimeError):
    """A worker process failed to start, crashed or replied with an error."""


class Worker:
    """A ``benchmarks._worker`` process for one side, spoken to in JSON lines."""

    def __init__(self, side: Side, log_dir: Path):
        python = sys.executable if side.env == MAIN_ENV else peers.peer_python(side.env)
        if python is None:
            raise WorkerError(peers.missing_reason(side.env))
        safe = "".join(c if c.isalnum() else "_" for c in side.label)
        self.log_path = log_dir / f"worker-{safe}-{time.monotonic_ns()}.log"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
               **side.environ}
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(python), "-m", "benchmarks._worker"], cwd=REPO, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)
        self._replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def request(self, message: dict, timeout: float = REPLY_TIMEOUT_S) -> dict:
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
            line = self._replies.get(timeout=timeout)
        except (BrokenPipeError, queue.Empty) as exc:
            raise WorkerError(f"worker did not answer ({type(exc).__name__}); "
                              f"{self._tail()}") from None
        if line is None:
            raise WorkerError(f"worker exited (code {self.proc.wait()}); {self._tail()}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise WorkerError(reply.get("error", "unknown error") + "\n"
                              + reply.get("traceback", ""))
        return reply

    def _tail(self, n: int = 8) -> str:
        self._log.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()[-n:]
        return "stderr tail: " + " | ".join(lines) if lines else "no stderr"

    def close(self) -> None:
        try:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (BrokenPipeError, OSError, subprocess.TimeoutExpired, ValueError):
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _start_side(side: Side, log_dir: Path, pool: dict | None, key: tuple,
                skip_peers: bool = False, warmup: bool = True) -> tuple[Worker | None, dict]:
    """Start (or reuse from ``pool``) and warm up one side; return (worker, result record)."""
    record = {"label": side.label, "env": side.env, "target": side.target,
              "params": side.params, "throughput": []}
    if skip_peers and side.env != MAIN_ENV:
        record["skipped"] = "peers disabled for this run (--no-peers)"
        return None, record
    worker = pool.get(key) if pool is not None else None
    if worker is None or worker.proc.poll() is not None:
        try:
            worker = Worker(side, log_dir)
        except WorkerError as exc:
            record["skipped"] = str(exc)
            return None, record
        if pool is not None:
            pool[key] = worker
    try:
        t0 = time.perf_counter()
        reply = worker.request({"op": "setup", "target": side.target, "params": side.params,
                                "warmup": warmup,
                                "process": "cellrobust" if side.env == MAIN_ENV else None})
        record["setup_s"] = round(time.perf_counter() - t0, 2)
        record["info"] = reply.get("info", {})
        record["values"] = reply.get("values")
    except WorkerError as exc:
        if pool is not None:
            pool.pop(key, None)
        worker.close()
        record["error"] = str(exc)
        return None, record
    return worker, record


def _timed_round(worker: Worker | None, record: dict) -> float | None:
    if worker is None:
        return None
    try:
        reply = worker.request({"op": "step"})
    except WorkerError as exc:
        record["error"] = str(exc)
        return None
    if reply.get("values") is not None:
        record["values"] = reply["values"]
    thr = reply["units"] / reply["seconds"]
    record["throughput"].append(thr)
    record.setdefault("cpu_share", []).append(reply["cpu_seconds"] / reply["seconds"])
    return thr


def _summarise(values: list[float]) -> dict:
    if not values:
        return {}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def _values_identical(ours: dict, others: list[dict]) -> bool | None:
    import math
    got = [r.get("values") for r in [ours, *others] if r.get("values") is not None]
    if len(got) < 2:
        return None
    ref = got[0]
    for vals in got[1:]:
        if len(vals) != len(ref):
            return False
        if any(not math.isclose(a, b, rel_tol=0, abs_tol=1e-9) for a, b in zip(ref, vals)):
            return False
    return True


def compare(cmp: Comparison, *, rounds: int, log_dir: Path, pool: dict | None = None,
            skip_peers: bool = False) -> dict:
    """Run ``cmp`` for ``rounds`` interleaved rounds; return its JSON-ready result row.

    With ``pool`` (a dict), worker processes are kept there and reused by later comparisons
    (one per environment and side position) instead of being started afresh: smoke mode
    uses this to stay within seconds; full runs start fresh processes for every comparison.
    """
    from .machine import load_average

    load_before = load_average()
    sides = [cmp.ours, *cmp.peers]
    started = [_start_side(side, log_dir, pool, (side.env, i), skip_peers, cmp.warmup)
               for i, side in enumerate(sides)]
    try:
        for _ in range(rounds):
            thr = [_timed_round(w if "error" not in rec else None, rec) for w, rec in started]
            ours_thr = thr[0]
            for (_, rec), other in zip(started[1:], thr[1:]):
                if ours_thr is not None and other is not None:
                    rec.setdefault("ratios", []).append(ours_thr / other)
    finally:
        for worker, _ in started:
            if worker is not None and pool is None:
                worker.close()
    records = [rec for _, rec in started]
    for rec in records:
        rec["summary"] = _summarise(rec["throughput"])
        rec["ratio"] = _summarise(rec.get("ratios", []))
    row = {"name": cmp.name, "unit": cmp.unit, "goal": cmp.goal, "note": cmp.note,
           "ours": records[0], "peers": records[1:], "load_before": load_before,
           "load_after": load_average()}
    if cmp.check_values:
        row["values_identical"] = _values_identical(records[0], records[1:])
    return row


@dataclass
class Context:
    """What a suite's ``run(ctx)`` gets: sizes, rounds and a scratch folder."""

    smoke: bool
    rounds: int
    work_dir: Path
    pool: dict | None = None
    skip_peers: bool = False

    def compare(self, cmp: Comparison) -> dict:
        print(f"  - {cmp.name} ...", flush=True)
        t0 = time.perf_counter()
        rounds = self.rounds if self.smoke else (cmp.rounds or self.rounds)
        row = compare(cmp, rounds=rounds, log_dir=self.work_dir, pool=self.pool,
                      skip_peers=self.skip_peers)
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        print(f"    {_one_line(row)}  [{row['wall_s']} s]", flush=True)
        return row


    @contextlib.contextmanager
    def shared_workers(self):
        """Within this block, comparisons reuse worker processes (cheap-setup suites)."""
        if self.pool is not None:
            yield
            return
        self.pool = {}
        try:
            yield
        finally:
            for worker in self.pool.values():
                worker.close()
            self.pool = None


def _one_line(row: dict) -> str:
    ours = row["ours"]
    if "error" in ours or "skipped" in ours:
        return "ours FAILED: " + (ours.get("error") or ours.get("skipped", ""))[:300]
    parts = [f"ours {ours['summary']['median']:.4g} {row['unit']}"]
    for peer in row["peers"]:
        if peer["ratio"]:
            parts.append(f"{peer['label']}: x{peer['ratio']['median']:.2f}")
        else:
            why = peer.get("skipped") or peer.get("error", "")
            parts.append(f"{peer['label']}: n/a ({why.splitlines()[0][:160] if why else ''})")
    return "; ".join(parts)


def run_suites(suites: list[str], *, smoke: bool = False, rounds: int | None = None,
               out: str | None = None, peers: bool = True) -> int:
    """Run ``suites``; write ``latest.md`` and ``latest.json`` to ``out``; return exit code."""
    import tempfile

    from . import machine, report

    rounds = rounds or (2 if smoke else 5)
    out_dir = Path(out) if out else (Path(tempfile.mkdtemp(prefix="bench-smoke-")) if smoke
                                     else REPO / "benchmarks" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    info = machine.machine_info()
    results, failed = [], []

    def write(pending: list[str]) -> None:
        """Write what is done so far (atomically), so an interrupted run still leaves results."""
        info["load_average_end"] = machine.load_average()
        info["total_wall_s"] = round(time.time() - started, 1)
        report.write(out_dir, {"smoke": smoke, "rounds": rounds, "peers": peers,
                               "machine": info, "suites": results, "pending": pending})

    with tempfile.TemporaryDirectory(prefix="bench-work-") as tmp:
        ctx = Context(smoke=smoke, rounds=rounds, work_dir=Path(tmp),
                      pool={} if smoke else None, skip_peers=not peers)
        try:
            _run_each(suites, ctx, results, failed, write)
        finally:
            for worker in (ctx.pool or {}).values():
                worker.close()
    write([])
    print(f"[bench] wrote {out_dir / 'latest.md'} and latest.json"
          + (f"; our side failed in: {failed}" if failed else ""), flush=True)
    return 1 if failed else 0


def _run_each(suites: list[str], ctx: Context, results: list, failed: list,
              write=None) -> None:
    import importlib

    from . import report
    for i, name in enumerate(suites):
        print(f"[bench] suite {name} ({'smoke' if ctx.smoke else 'full'}, {ctx.rounds} rounds)",
              flush=True)
        t0 = time.perf_counter()
        try:
            result = importlib.import_module(f"benchmarks.suites.{name}").run(ctx)
        except Exception as exc:  # noqa: BLE001 - a broken suite must not hide the others
            import traceback
            result = {"title": name, "rows": [], "error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc(limit=8)}
            print(f"  suite {name} FAILED: {result['error']}", flush=True)
        result.update(suite=name, wall_s=round(time.perf_counter() - t0, 1))
        results.append(result)
        if report.suite_failed(result):
            failed.append(name)
        if write is not None and i + 1 < len(suites):
            write(suites[i + 1:])
