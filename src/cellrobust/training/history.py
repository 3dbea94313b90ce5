"""Training history: ``history.csv`` (one row per epoch) and the training-curve PNG."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cellrobust._io import atomic_path, write_text

COLUMNS = ("epoch", "train_loss", "val_loss", "val_jaccard", "val_jaccard_macro",
           "val_accuracy", "lr", "seconds", "steps")


def write_history(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write the rows (dicts keyed by :data:`COLUMNS`) as CSV atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in COLUMNS})
    return write_text(path, buffer.getvalue())


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def read_history(path: str | os.PathLike) -> list[dict[str, float]]:
    """Read ``history.csv`` back as a list of dicts of floats (``epoch``/``steps`` as int)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        parsed: dict[str, float] = {}
        for key, value in row.items():
            if value in ("", None):
                continue
            parsed[key] = int(value) if key in ("epoch", "steps") else float(value)
        out.append(parsed)
    return out


def plot_curves(rows: Sequence[dict[str, Any]], path: str | os.PathLike, *,
                monitor: str = "val_loss") -> Path:
    """Loss (train/validation) and validation Jaccard/accuracy against epoch, as a PNG."""
    from matplotlib.figure import Figure  # a Figure object: no pyplot state, no backend switch

    fig = Figure(figsize=(8, 3.2), dpi=110)
    ax_loss, ax_metric = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in rows]
    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        ax_loss.plot(epochs, [r.get(key) for r in rows], style, label=key.replace("_", " "))
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    for key in ("val_jaccard", "val_accuracy"):
        ax_metric.plot(epochs, [r.get(key) for r in rows], label=key.replace("_", " "))
    ax_metric.set(xlabel="epoch", ylabel="score", title=f"validation (best by {monitor})")
    for ax in (ax_loss, ax_metric):
        ax.legend(frameon=False, fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


__all__ = ["COLUMNS", "write_history", "read_history", "plot_curves"]
