"""Write the results: ``latest.json`` (everything) and ``latest.md`` (the tables), atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def suite_failed(result: dict) -> bool:
    """True when the suite crashed or any of *our* sides failed (missing peers are fine)."""
    if result.get("error"):
        return True
    return any("error" in row["ours"] or "skipped" in row["ours"] for row in result["rows"])


def _fmt(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _ratio_cell(peer: dict) -> str:
    r = peer.get("ratio") or {}
    if not r:
        return "—"
    return f"**{r['median']:.2f}×** ({r['min']:.2f}–{r['max']:.2f})"


def _verdict(goal: float | None, peer: dict) -> str:
    r = peer.get("ratio") or {}
    if goal is None or not r:
        return "—"
    return f"≥ {goal:g}×: " + ("met" if r["median"] >= goal else "**MISSED**")


def _peer_cell(peer: dict) -> str:
    if peer.get("skipped"):
        return f"not run: {peer['skipped']}"
    if peer.get("error"):
        return "failed: " + peer["error"].splitlines()[0][:200]
    return _fmt(peer["summary"].get("median"))


def comparison_table(rows: list[dict]) -> list[str]:
    """One markdown line per (benchmark, peer): medians, ratio median (min–max), goal."""
    lines = [("| benchmark | unit | cellrobust | peer | peer result | ratio ours/peer, median "
             "(min–max) | goal | load 1 min before → after |"),
             "|---|---|---:|---|---:|---:|---|---|"]
    for row in rows:
        ours = row["ours"]
        ours_cell = (_fmt(ours["summary"].get("median")) if ours.get("summary")
                     else "failed: " + (ours.get("error") or ours.get("skipped", ""))
                     .splitlines()[0][:200])
        for peer in row["peers"] or [{"label": "—", "summary": {}}]:
            lines.append(f"| {row['name']} | {row['unit']} | {ours_cell} | {peer['label']} | "
                         f"{_peer_cell(peer)} | {_ratio_cell(peer)} | "
                         f"{_verdict(row.get('goal'), peer)} | {_load_cell(row)} |")
    return lines


def _load_cell(row: dict) -> str:
    before, after = row.get("load_before"), row.get("load_after")
    if not before or not after:
        return "—"
    return f"{before[0]:.2f} → {after[0]:.2f}"


def _rounds_text(doc: dict) -> str:
    """The interleaved rounds the rows actually ran (a suite may set its own count)."""
    counts = sorted({peer["ratio"]["n"] for suite in doc.get("suites", [])
                     for row in suite.get("rows", []) for peer in row.get("peers", [])
                     if peer.get("ratio", {}).get("n")})
    if not counts or counts == [doc["rounds"]]:
        return f"{doc['rounds']} interleaved rounds per comparison"
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return f"{span} interleaved rounds per comparison (default {doc['rounds']})"


def _machine_lines(doc: dict) -> list[str]:
    m = doc["machine"]
    cores = f"{m['logical_cores']} logical cores ({m['usable_cores']} usable)"
    lines = [(f"- Date: {m['date_utc']}; commit {m.get('git_commit') or '?'}; "
             f"{'SMOKE sizes (not results)' if doc['smoke'] else 'full sizes'}, "
             f"{_rounds_text(doc)}; total {m['total_wall_s']} s"),
             (f"- CPU: {m['cpu_model']}, {cores}, flags {', '.join(m['cpu_flags'])}; "
             f"{m['memory_gib']} GiB RAM; {m['os']}; Python {m['python']}"),
             f"- CPU features: {m.get('cpu_features') or '?'}; GPU: {m['gpu'] or 'none'}",
             (f"- Memory: transparent huge pages {m.get('transparent_hugepages') or '?'}; "
              f"cellrobust's processes run with malloc policy {_allocator(doc)} (as its command "
              "line sets it), peers with their defaults"),
             (f"- Load average (1/5/15 min) at start {m['load_average_start']}, "
             f"at end {m['load_average_end']} — the machine is shared, so absolute figures are "
             "noisy; the ratios come from interleaved rounds.")]
    return lines


def _allocator(doc: dict) -> str:
    """The malloc policy our sides ran with (the first one recorded), as ``key=value``."""
    for suite in doc.get("suites", []):
        for row in suite.get("rows", []):
            record = (row["ours"].get("info") or {}).get("allocator")
            if record:
                return ", ".join(f"{k}={v}" for k, v in record.items())
    return "?"


def _versions(result: dict) -> list[str]:
    seen = {}
    for row in result["rows"]:
        for side in [row["ours"], *row["peers"]]:
            for key, val in (side.get("info") or {}).get("versions", {}).items():
                seen[key] = val
    return [f"{k} {v}" for k, v in sorted(seen.items())]


def render(doc: dict) -> str:
    lines = ["# Benchmarks: cellrobust side by side with the tools users would pick instead",
             "", *(_machine_lines(doc)), "",
             *([f"**PARTIAL results: still running or not run: {', '.join(doc['pending'])}**",
                ""] if doc.get("pending") else []),
             ("Each row: both sides run the same work in separate processes, interleaved A B A B; "
             "the ratio is the median over rounds of throughput(ours)/throughput(peer) "
             "(> 1 means cellrobust is faster). Throughputs are medians over rounds."), ""]
    for result in doc["suites"]:
        lines += [f"## {result['suite']}: {result.get('title', '')}", ""]
        if result.get("error"):
            lines += [f"Suite failed: `{result['error']}`", ""]
        if result["rows"]:
            lines += comparison_table(result["rows"]) + [""]
        for row in result["rows"]:
            if row.get("values_identical") is not None:
                ok = "identical" if row["values_identical"] else "**DIFFERENT**"
                who = [s["label"] for s in [row["ours"], *row["peers"]]
                       if s.get("values") is not None]
                lines.append(f"- {row['name']}: values of {', '.join(who)} {ok} (to 1e-9)")
        lines += result.get("markdown", [])
        versions = _versions(result)
        if versions:
            lines.append("- Versions: " + ", ".join(versions))
        lines += [f"- {n}" for n in result.get("notes", [])]
        lines += [f"- Suite wall time: {result['wall_s']} s", ""]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, doc: dict) -> None:
    """Write ``latest.json`` and ``latest.md`` into ``out_dir`` (temp file + rename)."""
    _atomic_write(out_dir / "latest.json", json.dumps(doc, indent=1, default=str) + "\n")
    _atomic_write(out_dir / "latest.md", render(doc))
