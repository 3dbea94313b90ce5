"""What a finished (or running) study says: the trials table, the best trial, a figure, text.

Pure functions of an ``optuna.Study``; writing files is the tune stage's job.
"""

from __future__ import annotations

import json
import math
from typing import Any

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def trials_table(study: Any) -> list[dict[str, Any]]:
    """One row per trial: ``number, state, value``, ``param_*``, ``score_*``, ``pruned_at``,
    ``retry_of`` (the dead trial a retry repeats) and ``run_dir``; sorted by number."""
    rows = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        row = {"number": trial.number, "state": trial.state.name, "value": trial.value}
        row.update({f"param_{k}": v for k, v in trial.params.items()})
        row.update({f"score_{k}": v for k, v in trial.user_attrs.get("scores", {}).items()})
        row["pruned_at"] = trial.user_attrs.get("pruned_at")
        row["retry_of"] = trial.system_attrs.get("failed_trial")
        row["baseline"] = bool(trial.user_attrs.get("baseline", False))
        row["run_dir"] = trial.user_attrs.get("run_dir")
        rows.append(row)
    return rows


def best_trial(study: Any) -> Any | None:
    """The complete trial of highest value (lowest number on ties), or None."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def state_counts(study: Any) -> dict[str, int]:
    """Trials per state name."""
    counts = dict.fromkeys(STATES, 0)
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def importances(study: Any) -> dict[str, float]:
    """PED-ANOVA importance of each parameter (Watanabe et al., IJCAI 2023; needs no
    scikit-learn), ``{}`` with fewer than 2 complete trials or when none can be computed."""
    import warnings

    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(done) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna warns about small trial counts
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (RuntimeError, ValueError, ZeroDivisionError):  # e.g. every trial drew the same
        return {}


def figure(study: Any, *, score: str = "mpc") -> Any:
    """History (value per trial, best so far, pruned trials marked) and parameter importance,
    as a matplotlib ``Figure`` (no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=110)
    ax_hist, ax_imp = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    rows = trials_table(study)
    done = [(r["number"], r["value"]) for r in rows if r["state"] == "COMPLETE"]
    pruned = [r["number"] for r in rows if r["state"] == "PRUNED"]
    if done:
        xs, ys = zip(*done)
        ax_hist.plot(xs, ys, "o", ms=4, label="complete")
        best, running = [], -math.inf
        for y in ys:
            running = max(running, y)
            best.append(running)
        ax_hist.step(xs, best, where="post", label="best so far")
    for i, number in enumerate(pruned):
        ax_hist.axvline(number, color="0.8", lw=0.8, zorder=0,
                        label="pruned" if i == 0 else None)
    base = baseline_trial(study)
    if base is not None and base.value is not None:
        ax_hist.axhline(base.value, color="0.4", ls="--", lw=0.8,
                        label=f"baseline (trial {base.number})")
    ax_hist.set(xlabel="trial", ylabel=score, title="optimisation history")
    if ax_hist.get_legend_handles_labels()[0]:
        ax_hist.legend(frameon=False, fontsize=8)
    else:
        ax_hist.text(0.5, 0.5, "no finished trial yet", ha="center", va="center",
                     transform=ax_hist.transAxes)
    ax_hist.grid(alpha=0.3)
    imp = importances(study)
    names = list(imp)[::-1]
    ax_imp.barh(names, [imp[n] for n in names])
    ax_imp.set(xlabel="importance (PED-ANOVA)", title="parameter importance")
    if not imp:
        ax_imp.text(0.5, 0.5, "too few complete trials", ha="center", va="center",
                    transform=ax_imp.transAxes)
    fig.tight_layout()
    return fig


def baseline_trial(study: Any) -> Any | None:
    """The trial that ran the base config unchanged (queued by the tune stage), or None."""
    found = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("baseline")]
    return min(found, key=lambda t: t.number) if found else None


def _baseline_lines(study: Any, best: Any, score: str,
                    baseline: dict[str, Any] | None) -> list[str]:
    trial = baseline_trial(study)
    if trial is None:
        why = (baseline or {}).get("reason", "not queued")
        return [f"No baseline trial: {why}.", ""]
    if trial.value is None:
        return [f"Baseline (the base config unchanged): trial {trial.number}, "
                f"{trial.state.name.lower()}.", ""]
    if best.number == trial.number:
        others = [t for t in study.get_trials(deepcopy=False)
                  if t.value is not None and t.number != trial.number
                  and t.state.name == "COMPLETE"]
        runner_up = max(others, key=lambda t: (t.value, -t.number), default=None)
        text = (f"No trial beat the baseline (the base config unchanged): trial "
                f"{trial.number}, {score} = {trial.value:.4f}")
        if runner_up is not None:
            text += (f"; the best other trial, {runner_up.number}, scored "
                     f"{runner_up.value:.4f} ({runner_up.value - trial.value:+.4f})")
        return [text + ".", ""]
    return [f"Baseline (the base config unchanged): trial {trial.number}, {score} = "
            f"{trial.value:.4f}; the best trial differs by {best.value - trial.value:+.4f}. "
            "Both are scored on the validation crops that chose the best trial, so the "
            "difference is optimistic: confirm it on held-out frames (`cellrobust sweep` or "
            "`cellrobust study` of both `best.pt`, paired).", ""]


def markdown(study: Any, *, objective: dict[str, Any], command: str,
             baseline: dict[str, Any] | None = None) -> str:
    """A short ``tune.md`` summary: the objective, trial counts, the best trial, the baseline
    trial (the base config) and how to reproduce the best one."""
    counts = state_counts(study)
    lines = [f"# Tuning study `{study.study_name}`", "",
             f"Objective: maximise **{objective['score']}** of **{objective['metric']}** over "
             f"{', '.join(objective['artefacts']) or 'no artefacts'} at ladder levels "
             f"{objective['levels']} on the corrupted validation patches.", "",
             "Trials: " + ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n), ""]
    best = best_trial(study)
    if best is None:
        return "\n".join(lines + ["No trial has completed yet.", ""])
    scores = best.user_attrs.get("scores", {})
    lines += [f"Best trial: **{best.number}**, {objective['score']} = {best.value:.4f} "
              f"(clean {scores.get('clean', float('nan')):.4f}, worst "
              f"{scores.get('worst', float('nan')):.4f}).", ""]
    lines += _baseline_lines(study, best, objective["score"], baseline)
    lines += ["| parameter | value |", "|---|---|"]
    lines += [f"| `{k}` | {json.dumps(v)} |" for k, v in best.params.items()]
    imp = importances(study)
    if imp:
        lines += ["", "Importance (PED-ANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in imp.items())]
    lines += ["", "Reproduce the best trial (the same data):", "", "```bash", command, "```", ""]
    return "\n".join(lines)


__all__ = ["trials_table", "best_trial", "baseline_trial", "state_counts", "importances",
           "figure", "markdown"]
