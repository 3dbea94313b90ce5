"""Worker process: runs one side of a comparison, driven by JSON lines on stdin.

Started by the harness as ``<env python> -m benchmarks._worker`` in the repository root, in
the project's ``.venv`` or in a peer environment. Protocol (one JSON object per line):

- ``{"op": "setup", "target": "benchmarks.suites.unet:keras_train", "params": {...}}`` — imports
  the target factory and calls ``factory(**params)``, which returns a ``Bench`` (an object with
  ``step() -> dict`` and optional ``info`` and ``values``); one untimed warm-up ``step()``
  follows unless ``"warmup": false``. With ``"process": "cellrobust"`` (every side in the
  project's own environment) the process first gets the malloc policy cellrobust's command
  line sets for itself (:func:`cellrobust._allocator.retain_freed_memory`), so the library's
  rows run as ``predict``/``sweep``/``study`` do. Reply: ``{"ok": true, "info": {...},
  "values": [...]}``.
- ``{"op": "step"}`` — one timed call of ``step()``; reply ``{"ok": true, "seconds": s,
  "cpu_seconds": c, "units": n, "values": [...]}`` where ``units`` is the work done (patches,
  steps, pairs) and ``values`` the bench's values after the step, when it has any.
- ``{"op": "quit"}``.

Anything a library prints goes to stderr (fd 1 is redirected), so the protocol stays clean.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback


def _protocol_stream():
    """Duplicate the real stdout for replies, then point fd 1 at stderr."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    return proto


def _load(target: str):
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def _setup(message: dict) -> tuple[object, dict]:
    process = {}
    if message.get("process") == "cellrobust":
        from cellrobust._allocator import retain_freed_memory
        process = {"allocator": retain_freed_memory()}
    bench = _load(message["target"])(**message.get("params", {}))
    if message.get("warmup", True):
        bench.step()  # warm-up: imports, tracing, allocator, caches
    reply = {"ok": True, "info": {**process, **dict(getattr(bench, "info", {}) or {})}}
    values = getattr(bench, "values", None)
    if values is not None:
        reply["values"] = values() if callable(values) else values
    return bench, reply


def _step(bench) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    out = bench.step() or {}
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    reply = {"ok": True, "seconds": seconds, "cpu_seconds": cpu, "units": out.get("units", 1)}
    values = getattr(bench, "values", None)
    if values is not None:  # a bench whose steps produce values (e.g. one training run each)
        reply["values"] = values() if callable(values) else values
    return reply


def main() -> int:
    proto = _protocol_stream()
    bench = None
    for line in sys.stdin:
        message = json.loads(line)
        op = message.get("op")
        if op == "quit":
            break
        try:
            if op == "setup":
                bench, reply = _setup(message)
            elif op == "step":
                reply = _step(bench)
            else:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
        except BaseException as exc:  # noqa: BLE001 - report any failure to the harness, keep the protocol
            tb = traceback.format_exc(limit=6)
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": tb}
        proto.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
