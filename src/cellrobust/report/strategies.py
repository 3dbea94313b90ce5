""""Fix the data vs fix the model": each strategy segmenter against its plain model.

A strategy segmenter (:mod:`cellrobust.segmenters.strategies`) is paired with the plain model
it wraps: the spec with the same target and the same model options but no strategy option
(``pct=runs/a/best.pt,normalise=percentile`` with ``plain=runs/a/best.pt``; a checkpoint's own
``tta=true`` counts as the TTA strategy). Pairs come from the sweep's recorded specs
(``sweep.json``: ``segmenters: [{name, spec}]``) or are given explicitly.

Per pair and artefact: the trusted range of both and their difference, and mPC (mean over
severity levels >= 1, as :func:`cellrobust.robustness.scores`) of both and their difference,
each difference with a paired 95 % interval from the one frame bootstrap
(:mod:`cellrobust.robustness.bootstrap`: every replicate weighs the same frames for both
segmenters). A strategy *fixes* an artefact when the mPC difference's interval lies above 0
(with at least ``MIN_FRAMES`` frames) and the difference is at least ``MIN_EFFECT``, *hurts* it
when the interval lies below 0 and the loss is at least ``MIN_EFFECT``; a difference whose
interval excludes 0 but that is smaller than that is a *negligible change* (e.g. a denoiser that
leaves clean patches unchanged up to float rounding).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cellrobust import robustness as rb
from cellrobust.robustness.curves import clean_replicates, group_replicates
from cellrobust.report.style import number
from cellrobust.robustness.trust import _level as acceptance_level
from cellrobust.segmenters.spec import SegmenterSpec
from cellrobust.segmenters.strategies import STRATEGY_OPTIONS

__all__ = ["COLUMNS", "StrategySection", "compare_strategies", "figure_strategies",
           "paired_mpc", "read_specs", "strategies_view", "strategy_pairs", "strategy_report",
           "strategy_sentences"]

#: Options that make a spec a strategy of its plain model.
STRATEGY_KEYS = frozenset(STRATEGY_OPTIONS)
COLUMNS = ["strategy", "plain", "artefact", "unit", "trusted_plain", "trusted_strategy",
           "trusted_diff", "trusted_lo", "trusted_hi", "mpc_plain", "mpc_strategy", "mpc_diff",
           "mpc_lo", "mpc_hi", "n_frames", "verdict", "plain_reached_end",
           "strategy_reached_end"]


def read_specs(folder: str | Path) -> dict[str, str]:
    """``{name: spec}`` from ``sweep.json`` (else ``study.json``'s ``models``); {} if none."""
    folder = Path(folder)
    for name, key in (("sweep.json", "segmenters"), ("study.json", "models")):
        path = folder / name
        if not path.is_file():
            continue
        entries = json.loads(path.read_text()).get(key) or []
        if isinstance(entries, Mapping):
            entries = [{"name": n, "spec": (v or {}).get("spec")} for n, v in entries.items()]
        specs = {e["name"]: e["spec"] for e in entries if isinstance(e, Mapping)
                 and e.get("spec")}
        if specs:
            return specs
    return {}


def _key(spec: SegmenterSpec) -> tuple[str, tuple]:
    plain = sorted((k, repr(v)) for k, v in spec.options.items() if k not in STRATEGY_KEYS)
    return spec.target, tuple(plain)


def _is_strategy(spec: SegmenterSpec) -> bool:
    return any(k in STRATEGY_KEYS and v not in (False, None) for k, v in spec.options.items())


def strategy_pairs(specs: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(strategy name, plain name)`` for every strategy spec whose plain model (same target
    and kind, same model options, no strategy option) is among ``specs``."""
    parsed = {n: SegmenterSpec(n, s) for n, s in specs.items()}
    plain = {_key(p): n for n, p in parsed.items() if not _is_strategy(p)}
    kinds = {n: p.kind for n, p in parsed.items()}
    pairs = []
    for name, p in sorted(parsed.items()):
        base = plain.get(_key(p)) if _is_strategy(p) else None
        if base is not None and (None in (kinds[name], kinds[base])
                                 or kinds[name] == kinds[base]):
            pairs.append((name, base))
    return pairs


def _mpc(values: np.ndarray) -> np.ndarray:
    """mPC of a curve (levels, 1 + n_boot) sorted by severity index: mean of levels >= 1."""
    return values[1:].mean(axis=0) if len(values) > 1 else values[0]


def _curves(table, metric, boot, average):
    """Per (segmenter, artefact): severities, values (levels, 1 + n_boot), clean, n_frames."""
    rep = group_replicates(table, metric, boot, average=average)
    clean, both, keys = clean_replicates(rep), rep.both(), rep.keys
    out = {}
    for (seg, art), grp in keys[keys["artefact"] != rb.CLEAN].groupby(["segmenter", "artefact"]):
        grp = grp.sort_values("severity_index")
        out[(seg, art)] = (grp["severity"].to_numpy(np.float64), both[grp.index.to_numpy()],
                           clean[(seg, art)], int(grp["n_frames"].min()), grp["unit"].iloc[0])
    return out


def _trusted(curve, tolerance, floor) -> tuple[np.ndarray, bool]:
    """Trusted range (point and replicates) and whether the point never crossed (a lower
    bound, "≥")."""
    x, values, clean, _, _ = curve
    trusted, status = rb.crossing(x, values, acceptance_level(clean, tolerance, floor))
    return trusted, bool(status[0] == 1)


#: Smallest mPC difference (metric units: 0.01 Jaccard) called a fix or a harm.
MIN_EFFECT = 0.01


def _verdict(diff: float, lo: float, hi: float, n_frames: int, n_boot: int,
             min_effect: float = MIN_EFFECT) -> str:
    if n_frames < rb.MIN_FRAMES or n_boot == 0 or not np.isfinite(lo):
        return f"not assessed ({n_frames} frames)" if n_frames < rb.MIN_FRAMES else \
            "not assessed (no bootstrap)"
    if lo > 0 or hi < 0:
        if abs(diff) < min_effect:
            return f"negligible change (< {min_effect:g})"
        return "fixes" if lo > 0 else "hurts"
    return "no significant change"


def compare_strategies(table: pd.DataFrame, pairs: Iterable[tuple[str, str]], *,
                       metric: str = "jaccard", tolerance: float | None = 0.9,
                       floor: float | None = None, average: str = "micro",
                       n_boot: int = rb.DEFAULT_N_BOOT, ci: float = rb.DEFAULT_CI,
                       seed: int = 0, min_effect: float = MIN_EFFECT) -> pd.DataFrame:
    """Trusted range and mPC of each strategy against its plain model, per artefact.

    Parameters
    ----------
    table : DataFrame
        The tidy results table (:mod:`cellrobust.table`).
    pairs : iterable of (strategy, plain)
        Segmenter names (:func:`strategy_pairs`); pairs not in the table are skipped.
    metric, tolerance, floor, average, n_boot, ci, seed
        As :func:`cellrobust.robustness.trusted_range_table` (the same rule and replicates).
    min_effect : float, metric units
        Smallest mPC difference called "fixes" / "hurts" (default :data:`MIN_EFFECT`).

    Returns
    -------
    DataFrame
        :data:`COLUMNS`: trusted ranges in the artefact's unit, mPC in metric units, each
        difference (strategy - plain) with its paired interval (``*_lo``, ``*_hi``) and the
        ``verdict`` on mPC ("fixes", "hurts", "negligible change (< e)", "no significant
        change", "not assessed ...");
        ``*_reached_end``: the trusted range never crossed on the grid (a lower bound, "≥").
    """
    segs = set(table["segmenter"])
    pairs = [(a, b) for a, b in pairs if {a, b} <= segs]
    if not pairs:
        return pd.DataFrame(columns=COLUMNS)
    boot = rb.frame_bootstrap(table["sample"], n_boot=n_boot, seed=seed)
    used = table[table["segmenter"].isin({s for p in pairs for s in p})]
    curves = _curves(used, metric, boot, average)
    rows = []
    for a, b in pairs:
        for art in sorted({art for seg, art in curves if seg == b}):
            if (a, art) not in curves:
                continue
            (ta, end_a), (tb, end_b) = (_trusted(curves[(s, art)], tolerance, floor)
                                        for s in (a, b))
            ma, mb = _mpc(curves[(a, art)][1]), _mpc(curves[(b, art)][1])
            t_lo, t_hi = rb.interval((ta - tb)[1:], ci)
            m_lo, m_hi = rb.interval((ma - mb)[1:], ci)
            n_frames = min(curves[(a, art)][3], curves[(b, art)][3])
            rows.append([a, b, art, curves[(b, art)][4], tb[0], ta[0], ta[0] - tb[0],
                         float(t_lo), float(t_hi), mb[0], ma[0], ma[0] - mb[0], float(m_lo),
                         float(m_hi), n_frames,
                         _verdict(ma[0] - mb[0], float(m_lo), float(m_hi), n_frames,
                                  boot.n_boot, min_effect), end_b, end_a])
    return pd.DataFrame(rows, columns=COLUMNS)


def paired_mpc(table: pd.DataFrame, a: str, b: str, *, metric: str = "jaccard",
               average: str = "micro", n_boot: int = rb.DEFAULT_N_BOOT,
               ci: float = rb.DEFAULT_CI, seed: int = 0) -> pd.DataFrame:
    """mPC of segmenter ``a`` minus ``b`` per artefact and over all artefacts, paired.

    mPC is the mean over severity levels >= 1 (as :func:`cellrobust.robustness.scores`); the
    ``"mean"`` row averages the artefacts' mPC. Every interval comes from the same frame
    bootstrap replicates for both segmenters (:func:`cellrobust.robustness.frame_bootstrap`),
    so it is a paired interval.

    Returns
    -------
    DataFrame
        Columns ``artefact, mpc_a, mpc_b, diff, lo, hi, n_frames, significant`` (one row per
        artefact both were swept on, then ``"mean"``); empty when they share no artefact.
    """
    columns = ["artefact", "mpc_a", "mpc_b", "diff", "lo", "hi", "n_frames", "significant"]
    boot = rb.frame_bootstrap(table["sample"], n_boot=n_boot, seed=seed)
    curves = _curves(table[table["segmenter"].isin({a, b})], metric, boot, average)
    arts = sorted(art for seg, art in curves if seg == b and (a, art) in curves)
    if not arts:
        return pd.DataFrame(columns=columns)
    per = {art: (_mpc(curves[(a, art)][1]), _mpc(curves[(b, art)][1])) for art in arts}
    per["mean"] = tuple(np.mean([per[art][i] for art in arts], axis=0) for i in (0, 1))
    rows = []
    for art, (ma, mb) in per.items():
        lo, hi = rb.interval((ma - mb)[1:], ci)
        frames = min(min(curves[(s, x)][3] for s in (a, b)) for x in (arts if art == "mean"
                                                                        else [art]))
        assessed = frames >= rb.MIN_FRAMES and boot.n_boot > 0 and np.isfinite(lo)
        rows.append([art, ma[0], mb[0], ma[0] - mb[0], float(lo), float(hi), frames,
                     bool(assessed and (lo > 0 or hi < 0))])
    return pd.DataFrame(rows, columns=columns)


def strategy_sentences(comparison: pd.DataFrame, *, metric: str = "jaccard") -> list[str]:
    """One sentence per strategy: which artefacts it fixes and hurts (mPC interval)."""
    out = []
    for (a, b), grp in comparison.groupby(["strategy", "plain"], sort=True):
        fixes = grp.loc[grp["verdict"] == "fixes", "artefact"].tolist()
        hurts = grp.loc[grp["verdict"] == "hurts", "artefact"].tolist()
        parts = [f"fixes {', '.join(fixes)}" if fixes else "fixes no artefact"]
        if hurts:
            parts.append(f"hurts {', '.join(hurts)}")
        unassessed = grp["verdict"].str.startswith("not assessed").all()
        tail = (" (not assessed: too few frames or no bootstrap)" if unassessed else
                f" (mPC {metric} minus {b}'s, 95% CI excluding 0)")
        out.append(f"{a} against {b}: " + "; ".join(parts) + tail + ".")
    return out


def figure_strategies(comparison: pd.DataFrame, *, metric: str = "jaccard"):
    """Forest plot: mPC difference (strategy - plain) with its paired 95 % interval, one row
    per artefact, one colour per strategy; filled markers where the interval excludes 0.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    from cellrobust.report.style import segmenter_colours

    arts = sorted(set(comparison["artefact"]))
    strategies = sorted(set(comparison["strategy"]))
    colours = segmenter_colours(strategies)
    fig = Figure(figsize=(6.4, 0.9 + 0.32 * len(arts) * max(1, len(strategies))),
                 layout="constrained")
    ax = fig.subplots()
    step = 0.8 / max(1, len(strategies))
    for j, name in enumerate(strategies):
        part = comparison[comparison["strategy"] == name].set_index("artefact")
        label = f"{name} − {part['plain'].iloc[0]}"
        for i, art in enumerate(arts):
            if art not in part.index:
                continue
            r = part.loc[art]
            y = i - 0.4 + step * (j + 0.5)
            sig = r["verdict"] in ("fixes", "hurts")
            err = [[max(r["mpc_diff"] - r["mpc_lo"], 0)], [max(r["mpc_hi"] - r["mpc_diff"], 0)]] \
                if np.isfinite(r["mpc_lo"]) else None
            ax.errorbar(r["mpc_diff"], y, xerr=err, fmt="o", color=colours[name], capsize=2,
                        mfc=colours[name] if sig else "white",
                        label=label)
            label = None
    ax.axvline(0.0, color="0.4", lw=0.8, ls="--")
    ax.set_yticks(range(len(arts)), [a.replace("_", " ") for a in arts])
    ax.invert_yaxis()
    ax.set_xlabel(f"mPC {metric}: strategy minus plain model (95% CI over frames)")
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.set_title("Fix the data vs fix the model (filled: CI excludes 0)", fontsize=10)
    return fig


def strategies_view(comparison: pd.DataFrame) -> pd.DataFrame:
    """Reader-facing table: trusted ranges and mPC with the paired differences in words."""
    def diff(d, lo, hi):
        return f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]" if np.isfinite(lo) else f"{d:+.3g}"

    c = comparison
    return pd.DataFrame({
        "strategy": c["strategy"], "plain model": c["plain"], "artefact": c["artefact"],
        "trusted: plain → strategy": [
            f"{'≥ ' * pe}{number(p)} → {'≥ ' * se}{number(s)} {u}".strip()
            for p, s, u, pe, se in c[["trusted_plain", "trusted_strategy", "unit",
                                      "plain_reached_end", "strategy_reached_end"]]
            .itertuples(index=False)],
        "Δ trusted [95% CI]": [diff(*v) for v in c[["trusted_diff", "trusted_lo",
                                                    "trusted_hi"]].to_numpy(float)],
        "mPC: plain → strategy": [f"{p:.3f} → {s:.3f}" for p, s in
                                  c[["mpc_plain", "mpc_strategy"]].to_numpy(float)],
        "Δ mPC [95% CI]": [diff(*v) for v in c[["mpc_diff", "mpc_lo", "mpc_hi"]]
                           .to_numpy(float)],
        "verdict": c["verdict"],
    })


@dataclass(frozen=True)
class StrategySection:
    """What the report shows: the reader's table, the sentences and the figure."""

    table: pd.DataFrame
    sentences: tuple[str, ...]
    figure: object  # report.html.Figure


def strategy_report(table: pd.DataFrame, folder: str | Path, opts, *,
                    pairs: Iterable[tuple[str, str]] | None = None) -> StrategySection | None:
    """Compare, write ``strategies.csv`` and ``figures/strategies.*``; None without pairs.

    ``opts`` is the report's :class:`~cellrobust.report.build.ReportOptions` (metric, rule,
    averaging, bootstrap); ``pairs`` default: :func:`strategy_pairs` of :func:`read_specs`.
    """
    from cellrobust._io import atomic_path
    from cellrobust.report.html import Figure
    from cellrobust.report.style import save_figure

    folder = Path(folder)
    pairs = list(pairs) if pairs is not None else strategy_pairs(read_specs(folder))
    comparison = compare_strategies(table, pairs, metric=opts.metric, tolerance=opts.tolerance,
                                    floor=opts.floor, average=opts.average, n_boot=opts.n_boot,
                                    seed=opts.seed)
    if comparison.empty:
        return None
    with atomic_path(folder / "strategies.csv") as tmp:
        comparison.to_csv(tmp, index=False)
    fig = figure_strategies(comparison, metric=opts.metric)
    paths = save_figure(fig, folder / "figures" / "strategies",
                        ("png", *(f for f in opts.formats if f != "png")))
    svg = next((p.relative_to(folder) for p in paths if p.suffix == ".svg"), None)
    caption = ("Each strategy's mPC minus its plain model's, per artefact, with the paired 95% "
               "frame-bootstrap interval; filled: the interval excludes 0.")
    return StrategySection(strategies_view(comparison),
                           tuple(strategy_sentences(comparison, metric=opts.metric)),
                           Figure("Fix the data vs fix the model", paths[0], caption, svg))
