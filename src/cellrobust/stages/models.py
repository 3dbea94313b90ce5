"""``cellrobust models``: the segmenter kinds, their options and what each needs installed."""

from __future__ import annotations

__all__ = ["describe_kinds", "format_kinds"]


def describe_kinds() -> list[dict]:
    """One record per kind: name, summary, target, options, requirements and whether they are
    installed here, the extra that installs them, an example spec."""
    from cellrobust.segmenters import get_kind, kind_names, missing_requirements

    out = []
    for name in kind_names():
        kind = get_kind(name)
        missing = missing_requirements(kind)
        out.append({"kind": name, "summary": kind.summary, "target": kind.target,
                    "options": dict(kind.options) if kind.options is not None else None,
                    "requires": list(kind.requires), "missing": missing, "extra": kind.extra,
                    "runs_code": kind.runs_code, "example": kind.example})
    return out


def format_kinds(records: list[dict], *, options: bool = True) -> str:
    """The text ``cellrobust models`` prints."""
    lines = ["Segmenter spec: [NAME=][KIND:]TARGET[,KEY=VALUE...]  (KIND may be left out for "
             "a baseline name or a file/folder that says what it is)", ""]
    for r in records:
        state = "ready" if not r["missing"] else (
            f"needs {', '.join(r['missing'])}: pip install 'cellrobust[{r['extra']}]'"
            if r["extra"] else f"needs {', '.join(r['missing'])}")
        lines.append(f"{r['kind']:<12} {r['summary']}  [{state}]")
        lines.append(f"{'':<12} TARGET: {r['target']}   e.g. {r['example']}")
        if r["runs_code"]:
            lines.append(f"{'':<12} runs Python code: allowed only with --allow-code")
        if options and r["options"]:
            for key, text in r["options"].items():
                lines.append(f"{'':<14}{key}: {text}")
        elif options and r["options"] is None:
            lines.append(f"{'':<14}any KEY=VALUE is passed to the factory as a keyword")
    return "\n".join(lines)
