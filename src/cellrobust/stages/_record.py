"""What every stage writes next to its results: the resolved configuration and provenance.

One home for the record of a run (``config.json`` / ``study.json`` ...): the stage, the resolved
configuration, cellrobust and library versions, the machine, and for every segmenter its
provenance (kind, file SHA-256, options, library versions), so any result can be traced to the
exact models and settings that made it.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cellrobust import __version__

__all__ = ["jsonable", "model_records", "provenance", "save_figure"]


def jsonable(value: Any) -> Any:
    """Dataclasses, paths, tuples and mappings as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def model_records(segmenters: Mapping[str, Any], specs: Mapping[str, str] | None = None
                  ) -> dict:
    """``{name: {"spec": ..., kind, target, sha256, options, versions, ...}}``: each segmenter's
    provenance (:func:`cellrobust.segmenters.provenance_of`), with its spec when ``specs`` has
    it. The one record format of ``study.json`` ``models`` and ``config.json`` ``segmenters``,
    which the report's Models table reads."""
    from cellrobust.segmenters import provenance_of

    specs = specs or {}
    return {name: {**({"spec": specs[name]} if name in specs else {}),
                   **jsonable(provenance_of(seg))} for name, seg in segmenters.items()}


def provenance(stage: str, config: Any, *, segmenters: Sequence = (), **extra: Any) -> dict:
    """The record of one run of ``stage``.

    Parameters
    ----------
    stage : str
    config : dataclass
        The stage's resolved configuration.
    segmenters : sequence of Segmenter
        Their ``provenance()`` (or their class, for user objects) is recorded by name.
    **extra
        Further JSON-ready fields (image names, data descriptions, timings).
    """
    import numpy

    from cellrobust._allocator import allocator_record
    from cellrobust._threads import thread_record

    return {"stage": stage, "cellrobust": __version__, "python": platform.python_version(),
            "numpy": numpy.__version__, "machine": platform.platform(),
            "threads": thread_record(), "allocator": allocator_record(),
            "config": jsonable(config),
            "segmenters": model_records({getattr(s, "name", str(i)): s
                                         for i, s in enumerate(segmenters)}),
            **{k: jsonable(v) for k, v in extra.items()}}


def save_figure(fig, path: str | Path, *, dpi: int | None = None) -> Path:
    """Write a matplotlib ``Figure`` atomically in the format of ``path``'s suffix."""
    from cellrobust._io import atomic_path

    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format=target.suffix.lstrip(".") or "png", dpi=dpi)
    return target
