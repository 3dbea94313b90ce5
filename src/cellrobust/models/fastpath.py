"""The fastest correct U-Net inference path on this machine, chosen by a timed probe and cached.

Candidates (CPU): eager fp32 channels-last (the reference), eager bf16 autocast (only on CPUs
with native bf16: ``avx512_bf16`` or ``amx_bf16``), oneDNN Graph fusion (``graph``: the network
traced and frozen with TorchScript, its conv + ELU + concatenation chains fused by oneDNN's
graph compiler, in either precision; only where torch has oneDNN) and ``torch.compile``
(inductor) in either precision; the windows per forward pass (1, 2, 4, 8) that give the highest
eager throughput, which the graph and compiled paths then use as their one static batch. On
CUDA the reference path is used.

**Correctness gate.** A candidate is accepted only if its foreground (probability above the
segmenter's threshold) agrees with eager fp32 on at least :data:`AGREEMENT` = 99.9 % of the
probe's pixels. A cached choice is re-checked on the first batch of every process (one extra
eager fp32 pass); if it fails there, the reference path is used and the probe runs again.

**Graph tier.** Building a graph costs a trace and a few profiling runs (0.3-0.5 s for the
default U-Net on 288² windows, measured on a 2-core VM; the probe records it as ``build_s``).
A graph holds the weights it was traced with and is rebuilt when a parameter changes in place. The process that probes builds it anyway, so it uses the winner at once; a
later process that finds a ``graph`` plan in the cache starts on the best eager path recorded
beside it and builds the graph once the time the graph would have saved on the windows run so
far repays the measured build time (so ``predict`` on one image never pays for it).

**Compile tier.** ``backend="auto"`` starts on the best eager path and tries the compiled
paths (same gate, :data:`MARGIN` faster) once a window size has run :data:`COMPILE_AFTER_S`
seconds in one runner, so short jobs never pay for compilation; the outcome is cached too.

**Cache.** One probe per (model architecture, window size, torch version, CPU features, torch
threads, device); its result is a JSON file (atomic writes) at :func:`default_cache_path`:
``$CELLROBUST_CACHE_DIR/inference-paths.json``, else ``$XDG_CACHE_HOME/cellrobust/...``, else
``~/.cache/cellrobust/...``. ``FastPathConfig(cache=path)`` uses another file and
``cache="off"`` none (probe in every process). Compiled graphs are cached by inductor in
``TORCHINDUCTOR_CACHE_DIR`` (an environment variable the application sets before torch compiles
anything; :func:`compile_cache_dir` is the documented location under the same cache folder), so
compilation is paid once per machine and warm-started afterwards.

``FastPathConfig(backend="eager", precision="fp32")`` forces the reference path (no probe).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cellrobust._validation import InputError, check_choice, collect_errors

__all__ = ["AGREEMENT", "BACKENDS", "PRECISIONS", "FastPathConfig", "InferenceRunner",
           "compile_cache_dir", "cpu_features", "default_cache_path", "label_agreement",
           "native_bf16"]

BACKENDS = ("auto", "eager", "graph", "compile")
PRECISIONS = ("auto", "fp32", "bf16")
#: Minimum fraction of probe pixels whose foreground must equal eager fp32's.
AGREEMENT = 0.999
BATCH_CANDIDATES = (1, 2, 4, 8)
#: Pixels per forward pass a probed batch may hold: 8 windows of 512 x 512, the largest pass
#: probed while the default window was 512 px (so whole-frame windows add no memory peak).
MAX_BATCH_PIXELS = 8 * 512 * 512
#: ``backend="auto"`` tries compiling once a window size has run this many seconds eagerly
#: in one runner (compiling costs seconds; small jobs never pay it).
COMPILE_AFTER_S = 30.0
#: A path that changes the arithmetic (bf16, graph, compile) must be this much faster to be chosen.
MARGIN = 1.1
#: Bumped when a cached speed goes stale: 2 = the eager U-Net got :mod:`.layers`' ELU/dropout.
CACHE_FORMAT = 2
_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
          "amx_bf16")


@dataclass(frozen=True)
class FastPathConfig:
    """How inference picks its execution path (validated).

    Attributes
    ----------
    backend : {"auto", "eager", "graph", "compile"}
        ``auto`` probes eager and oneDNN graph fusion and (for real work, where a C++
        compiler exists) compile; the others probe only that backend's precisions.
    precision : {"auto", "fp32", "bf16"}
        ``auto`` tries bf16 autocast only on CPUs with native bf16.
    cache : str or None
        JSON file of probe results; None = :func:`default_cache_path`; ``"off"`` = no file.
    threshold : float
        Foreground threshold of the correctness gate (the segmenter's).
    """

    backend: str = "auto"
    precision: str = "auto"
    cache: str | None = None
    threshold: float = 0.5

    def __post_init__(self) -> None:
        errors = []
        for name, value, choices in (("backend", self.backend, BACKENDS),
                                     ("precision", self.precision, PRECISIONS)):
            try:
                check_choice(name, value, choices)
            except InputError as exc:
                errors.append(str(exc))
        if not 0.0 < float(self.threshold) < 1.0:
            errors.append(f"threshold: expected a value in (0, 1), got {self.threshold}")
        collect_errors(errors, "inference path options")

    @property
    def reference(self) -> bool:
        """True when the eager fp32 path is forced."""
        return self.backend == "eager" and self.precision == "fp32"


@dataclass(frozen=True)
class Plan:
    """One execution path: backend, precision, windows per pass, measured windows/s."""

    backend: str
    precision: str
    batch_size: int
    windows_per_s: float | None = None
    agreement: float | None = None
    source: str = "fixed"

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision,
                "batch_size": self.batch_size, "windows_per_s": self.windows_per_s,
                "agreement": self.agreement, "source": self.source}


def cpu_features() -> list[str]:
    """The CPU's SIMD/matrix flags that matter for inference (from /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in _FLAGS if f in have]
    except OSError:
        pass
    return []


def native_bf16() -> bool:
    """Whether this CPU runs bf16 natively (``avx512_bf16`` or ``amx_bf16``): the one rule
    behind bf16 inference candidates and the training loop's ``precision="auto"``."""
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_features()))


def _cache_root() -> Path:
    root = os.environ.get("CELLROBUST_CACHE_DIR")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "cellrobust"


def default_cache_path() -> Path:
    """Where probe results are kept (see the module docstring)."""
    return _cache_root() / "inference-paths.json"


def compile_cache_dir() -> Path:
    """The documented inductor cache folder (``TORCHINDUCTOR_CACHE_DIR``) under the cache root."""
    return _cache_root() / "inductor"


def label_agreement(prob: np.ndarray, reference: np.ndarray, threshold: float) -> float:
    """Fraction of pixels whose foreground (``prob > threshold``) equals the reference's."""
    return float(np.mean((prob > threshold) == (reference > threshold)))


class InferenceRunner:
    """Runs a U-Net's forward pass on the chosen path; plans once per window size.

    The runner holds compiled modules and plans for one model (an instance cache, no global
    state). :meth:`plan` is called by :func:`cellrobust.models.inference.predict_tiled` with
    the first windows of a call; :meth:`forward` returns logits as float32.
    """

    def __init__(self, model, config: FastPathConfig | None = None, *, device=None):
        import torch

        self.model = model
        self.config = config or FastPathConfig()
        self.device = torch.device(device) if device is not None else next(
            model.parameters()).device
        self._plans: dict[tuple[int, int], Plan] = {}
        self._compiled: dict[str, Callable] = {}
        self._graphs: dict[tuple, tuple[int, Callable]] = {}  # key -> (weights version, graph)
        self._eager_s: dict[tuple[int, int], float] = {}
        self._compile_tried: set[tuple[int, int]] = set()
        #: window size -> (graph plan from the cache, its build seconds, the eager start's and
        #: the fp32 reference's seconds per window)
        self._deferred: dict[tuple[int, int], tuple[Plan, float, float, float]] = {}

    # ----------------------------------------------------------------------- execution
    def forward(self, x, plan: Plan):
        """Logits (float32) of a batch ``x`` (B, 1, H, W) on ``plan``'s path."""
        import torch

        n = x.shape[0]
        static = plan.backend in ("compile", "graph")
        if static and n < plan.batch_size:  # one static shape: no recompile
            x = torch.cat([x, x.new_zeros((plan.batch_size - n, *x.shape[1:]))])
        if plan.backend == "graph":
            return self._graph_forward(x, plan.precision)[:n]
        x = x.contiguous(memory_format=torch.channels_last)
        net = self._compiled_net(plan.precision) if plan.backend == "compile" else self.model
        bf16 = plan.precision == "bf16"
        t0 = time.perf_counter()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = net(x).float()[:n]
        if plan.backend == "eager":
            key = tuple(x.shape[-2:])
            self._eager_s[key] = self._eager_s.get(key, 0.0) + time.perf_counter() - t0
        return out

    def _graph_forward(self, x, precision: str):
        """Logits of ``x`` through the oneDNN-fused TorchScript graph for its shape."""
        import torch

        # Canonical strides: a traced graph is specialised to its input's strides, and a
        # one-channel batch can come in several stride layouts that all count as contiguous.
        x = torch.empty_like(x, memory_format=torch.contiguous_format).copy_(x)
        key = (precision, tuple(x.shape))
        # A frozen graph holds the weights it was traced with: an in-place change to any
        # parameter (an optimizer step, load_state_dict) bumps its version and rebuilds it.
        version = sum(p._version for p in self.model.parameters())
        if key not in self._graphs or self._graphs[key][0] != version:
            self._graphs[key] = (version, _build_graph(self.model, x,
                                                       bf16=precision == "bf16"))
        with _onednn_fusion(), torch.no_grad(), _graph_autocast(precision == "bf16"):
            return self._graphs[key][1](x).float()

    def _compiled_net(self, precision: str):
        import torch

        if precision not in self._compiled:
            self._compiled[precision] = torch.compile(self.model, dynamic=False)
        return self._compiled[precision]

    # ----------------------------------------------------------------------- planning
    def plan(self, sample: np.ndarray, *, batch_size: int) -> Plan:
        """The path for windows shaped like ``sample`` (B, H, W normalised windows)."""
        key = tuple(sample.shape[-2:])
        if key not in self._plans:
            self._plans[key] = self._choose(sample, batch_size)
        elif self._due_for_graph(key, len(sample)):
            self._plans[key] = self._activate_graph(sample, key)
        elif self._due_for_compile(key):
            self._compile_tried.add(key)
            self._plans[key] = self._upgrade(sample, self._plans[key])
        return self._plans[key]

    @property
    def waiting(self) -> list[tuple[int, int]]:
        """Window sizes whose cached graph plan is not built yet (see "Graph tier")."""
        return sorted(self._deferred)

    def describe(self) -> dict[str, Any]:
        """Options and every plan made so far (for provenance)."""
        return {"backend": self.config.backend, "precision": self.config.precision,
                "gate_agreement": AGREEMENT, "cache": str(self._cache_file() or "off"),
                "compile_after_s": COMPILE_AFTER_S,
                "plans": {f"{h}x{w}": p.to_dict() for (h, w), p in self._plans.items()}}

    def _choose(self, sample: np.ndarray, batch_size: int) -> Plan:
        fixed = self._fixed(batch_size)
        if fixed is not None:
            return fixed
        key = self._key(sample.shape[-2:])
        cached = self._read_cache().get(key)
        if cached is not None:
            plan = Plan(cached["backend"], cached["precision"], int(cached["batch_size"]),
                        cached.get("windows_per_s"), cached.get("agreement"), "cache")
            fallback = cached.get("fallback")
            if plan.backend == "graph" and fallback and self.config.backend == "auto":
                start = Plan(**{**fallback, "source": "cache"})
                if self._recheck(start, sample):  # graph built later, when it pays
                    self._deferred[tuple(sample.shape[-2:])] = (
                        plan, float(cached.get("build_s") or 0.0),
                        1.0 / float(fallback["windows_per_s"]),
                        float(cached.get("reference_window_s") or 0.0))
                    return start
            elif self._recheck(plan, sample):
                return plan
        plan, record, extra = self._probe(sample, batch_size)
        self._write_cache(key, {**plan.to_dict(), **extra, "candidates": record})
        return plan

    def _fixed(self, batch_size: int) -> Plan | None:
        """The plan when nothing is left to choose (reference forced, CUDA, both explicit)."""
        cfg = self.config
        if cfg.reference or self.device.type != "cpu":
            return Plan("eager", "fp32", batch_size)
        return None

    def _precisions(self) -> list[str]:
        if self.config.precision != "auto":
            return [self.config.precision]
        return ["fp32", "bf16"] if native_bf16() else ["fp32"]

    def _candidates(self) -> list[tuple[str, str]]:
        backend = self.config.backend
        if backend in ("compile", "graph"):
            return [(backend, p) for p in self._precisions()]
        eager = [("eager", p) for p in self._precisions()]
        return eager + ([("graph", p) for p in self._precisions()] if _can_graph() else [])

    def _probe(self, sample: np.ndarray, batch_size: int) -> tuple[Plan, list[dict], dict]:
        """The fastest gated plan, every candidate's record, and what the cache keeps beside
        a graph winner (the best eager plan to start on, and the graph's build seconds)."""
        ref_plan = Plan("eager", "fp32", batch_size)
        ref, ref_s = self._timed(sample, ref_plan)
        record: list[dict] = []
        best, best_s, eager_best = None, None, None
        for backend, precision in self._candidates():
            sizes = [best.batch_size if best else batch_size] if backend != "eager" else \
                _batch_sizes(batch_size, len(sample), int(np.prod(sample.shape[-2:])))
            for b in sizes:
                plan = Plan(backend, precision, b)
                if plan == ref_plan:  # the reference itself, measured above
                    prob, seconds, build_s = ref, ref_s, 0.0
                else:
                    t0 = time.perf_counter()
                    try:
                        prob, seconds = self._timed(sample, plan)
                    except RuntimeError as exc:  # a fuser this CPU or build cannot run
                        if backend == "eager":
                            raise
                        record.append({**plan.to_dict(), "error": str(exc)[:300]})
                        continue
                    build_s = max(0.0, time.perf_counter() - t0 - 3 * seconds * len(sample))
                agree = label_agreement(prob, ref, self.config.threshold)
                record.append({**plan.to_dict(), "window_s": seconds, "agreement": agree,
                               "build_s": build_s})
                cost = seconds * (1.0 if (backend, precision) == ("eager", "fp32") else MARGIN)
                if agree >= AGREEMENT and (best_s is None or cost < best_s):
                    best, best_s = Plan(backend, precision, b, 1.0 / seconds, agree, "probe"), \
                        cost
                    if backend == "eager":
                        eager_best = best
        if not any(r["backend"] == "eager" and r["precision"] == "fp32"
                   and r["batch_size"] == batch_size for r in record):
            record.insert(0, {**ref_plan.to_dict(), "window_s": ref_s, "agreement": 1.0})
        best = best or Plan("eager", "fp32", batch_size, 1.0 / ref_s, 1.0, "probe")
        extra = {}
        if best.backend == "graph" and eager_best is not None:
            extra = {"fallback": eager_best.to_dict(), "reference_window_s": ref_s,
                     "build_s": next(r["build_s"] for r in record if r["backend"] == "graph"
                                     and r["precision"] == best.precision)}
        return best, record, extra

    def _due_for_graph(self, key: tuple[int, int], windows: int) -> bool:
        """A deferred graph plan is built once the time it would have saved on the work run
        so far repays the switch: its build plus the correctness re-check on this call's
        ``windows`` (one fp32 reference pass and one graph pass)."""
        if key not in self._deferred:
            return False
        plan, build_s, eager_window_s, ref_window_s = self._deferred[key]
        if not plan.windows_per_s:
            return False
        graph_window_s = 1.0 / plan.windows_per_s
        saving = 1.0 - graph_window_s / eager_window_s  # fraction of eager time
        switch_s = build_s + windows * (ref_window_s + graph_window_s)
        return saving > 0 and self._eager_s.get(key, 0.0) * saving >= switch_s

    def _activate_graph(self, sample: np.ndarray, key: tuple[int, int]) -> Plan:
        plan = self._deferred.pop(key)[0]
        return plan if self._recheck(plan, sample) else self._plans[key]

    def _due_for_compile(self, key: tuple[int, int]) -> bool:
        plan = self._plans[key]
        return (self.config.backend == "auto" and plan.backend == "eager"
                and key not in self._compile_tried and plan.source != "fixed"
                and self._eager_s.get(key, 0.0) >= COMPILE_AFTER_S and _can_compile())

    def _upgrade(self, sample: np.ndarray, current: Plan) -> Plan:
        """Try the compiled paths for a window size that has run long enough eagerly."""
        key = self._key(sample.shape[-2:])
        entry = self._read_cache().get(key, {})
        known = entry.get("compiled")
        if known is not None:  # measured before on this machine: no new probe
            plan = Plan(**{**known["plan"], "source": "cache"}) if known["plan"] else None
            return plan if plan is not None and self._recheck(plan, sample) else current
        ref, _ = self._timed(sample, Plan("eager", "fp32", current.batch_size), reps=0)
        _, base_s = self._timed(sample, current)
        best, best_s, record = None, base_s, []
        for precision in self._precisions():
            plan = Plan("compile", precision, current.batch_size)
            prob, seconds = self._timed(sample, plan)
            agree = label_agreement(prob, ref, self.config.threshold)
            record.append({**plan.to_dict(), "window_s": seconds, "agreement": agree})
            if agree >= AGREEMENT and seconds * MARGIN < best_s:
                best = Plan("compile", precision, plan.batch_size, 1.0 / seconds, agree, "probe")
                best_s = seconds * MARGIN
        chosen = best.to_dict() if best else None
        self._write_cache(key, {**entry, "compiled": {"plan": chosen, "candidates": record}})
        return best or current

    def _timed(self, sample: np.ndarray, plan: Plan, reps: int = 2) -> tuple[np.ndarray, float]:
        """Probabilities of ``sample`` on ``plan`` and the best seconds per window."""
        prob = self._run_all(sample, plan)  # warm-up (compiles on the compile backend)
        best = None
        for _ in range(reps):
            t0 = time.perf_counter()
            prob = self._run_all(sample, plan)
            elapsed = (time.perf_counter() - t0) / len(sample)
            best = elapsed if best is None else min(best, elapsed)
        return prob, best

    def _run_all(self, sample: np.ndarray, plan: Plan) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(sample), plan.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(sample[i:i + plan.batch_size],
                                                          np.float32)[:, None])
                out.append(torch.sigmoid(self.forward(x.to(self.device), plan))[:, 0].cpu())
        return torch.cat(out).numpy()

    def _recheck(self, plan: Plan, sample: np.ndarray) -> bool:
        """Whether ``plan`` still passes the gate on ``sample`` (False, too, when its graph or
        compiled module cannot be built in this process)."""
        if (plan.backend, plan.precision) == ("eager", "fp32"):
            return True
        ref = self._run_all(sample, Plan("eager", "fp32", plan.batch_size))
        try:
            prob = self._run_all(sample, plan)
        except RuntimeError:
            if plan.backend == "eager":
                raise
            return False
        return label_agreement(prob, ref, self.config.threshold) >= AGREEMENT

    # ----------------------------------------------------------------------- the cache
    def _key(self, shape) -> str:
        import torch

        arch = json.dumps(self.model.config.to_dict(), sort_keys=True, default=str)
        parts = {"arch": hashlib.sha256(arch.encode()).hexdigest()[:16],
                 "window": list(shape), "torch": torch.__version__, "cpu": cpu_features(),
                 "threads": torch.get_num_threads(), "device": self.device.type,
                 "backend": self.config.backend, "precision": self.config.precision}
        return json.dumps(parts, sort_keys=True)

    def _cache_file(self) -> Path | None:
        cache = self.config.cache
        if cache == "off" or os.environ.get("CELLROBUST_INFERENCE_CACHE") == "off":
            return None
        return Path(cache) if cache else default_cache_path()

    def _read_cache(self) -> dict:
        path = self._cache_file()
        try:
            doc = json.loads(path.read_text()) if path is not None else {}
        except (OSError, ValueError):
            return {}  # absent or unreadable: probe again (the file is only a cache)
        return doc.get("entries", {}) if doc.get("format") == CACHE_FORMAT else {}

    def _write_cache(self, key: str, entry: dict) -> None:
        from cellrobust._io import write_json

        path = self._cache_file()
        if path is None:
            return
        entries = {**self._read_cache(), key: {**entry, "measured_utc": _now()}}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, {"format": CACHE_FORMAT, "entries": entries})
        except OSError:
            pass  # a read-only cache folder only costs a probe next time


def _batch_sizes(batch_size: int, n: int, window_px: int = 0) -> list[int]:
    """Windows-per-pass candidates for eager paths: the given one first, then those of
    :data:`BATCH_CANDIDATES` up to ``n`` windows and :data:`MAX_BATCH_PIXELS` pixels a pass."""
    sizes = [batch_size] + [b for b in BATCH_CANDIDATES if b != batch_size
                            and b * window_px <= MAX_BATCH_PIXELS]
    return [b for b in sizes if b <= max(n, 1)] or [batch_size]


def _can_graph() -> bool:
    """oneDNN Graph fusion needs torch built with oneDNN (x86 and aarch64 builds are)."""
    import torch

    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.jit,
                                                                  "enable_onednn_fusion")


class _onednn_fusion:
    """Turn torch's oneDNN Graph fuser on for a block and restore the previous setting after
    (the switch is process-wide in torch; this keeps it scoped to our own calls)."""

    def __enter__(self):
        import torch

        self._was = torch.jit.onednn_fusion_enabled()
        torch.jit.enable_onednn_fusion(True)

    def __exit__(self, *exc):
        import torch

        torch.jit.enable_onednn_fusion(self._was)


def _graph_autocast(bf16: bool):
    import torch

    # TorchScript graphs cannot use autocast's weight cache.
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16, cache_enabled=False)


def _build_graph(model, x, *, bf16: bool) -> Callable:
    """Trace and freeze ``model`` for inputs shaped like ``x`` and run it until the profiling
    executor has fused it (three calls)."""
    import warnings

    import torch

    with _onednn_fusion(), torch.no_grad(), _graph_autocast(bf16), warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
        graph = torch.jit.freeze(torch.jit.trace(model, x, check_trace=False))
        for _ in range(3):
            graph(x)
    return graph


def _can_compile() -> bool:
    try:
        import torch._dynamo  # noqa: F401
    except ImportError:
        return False
    return shutil.which(os.environ.get("CXX", "g++")) is not None or shutil.which("cc") is not None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
