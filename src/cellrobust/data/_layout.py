"""Small helpers shared by the readers: listing image files, frame numbers, option checks."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from cellrobust._io import IMAGE_SUFFIXES
from cellrobust._validation import DataError, InputError


def image_files(folder: Path, pattern: str | None = None) -> list[Path]:
    """Image files directly in ``folder`` (sorted; hidden files skipped), optionally matching
    the regular expression ``pattern`` on the file name."""
    if not folder.is_dir():
        return []
    regex = re.compile(pattern) if pattern else None
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        and (regex is None or regex.fullmatch(p.name))
    )


def numbered(files: Iterable[Path], pattern: str) -> dict[int, Path]:
    """``{frame number: file}`` for files whose name fully matches ``pattern`` (one int group)."""
    regex = re.compile(pattern)
    out: dict[int, Path] = {}
    for file in files:
        match = regex.fullmatch(file.name)
        if match:
            out[int(match.group(1))] = file
    return out


def reject_options(fmt: str, given: dict, allowed: Sequence[str]) -> None:
    """Raise :class:`InputError` for options that do not apply to the format ``fmt``."""
    defaults = {"split": None, "masks": None, "sequences": None, "channel": None,
                "trust_pickle": False}
    # masks="gt" (the ground truth) is what every layout holds: accepted everywhere
    bad = [k for k, v in given.items()
           if k not in allowed and v != defaults.get(k) and (k, v) != ("masks", "gt")]
    if bad:
        raise InputError(
            f"option(s) {', '.join(bad)} do not apply to the {fmt} layout "
            f"(it accepts: {', '.join(allowed) or 'no options'})"
        )


def unpaired_error(root: Path, what: str, files: Iterable[Path], expected: str) -> DataError:
    """A :class:`DataError` listing every unpaired file at once."""
    names = sorted(str(f.relative_to(root)) if f.is_relative_to(root) else str(f) for f in files)
    return DataError(
        f"{root}: {len(names)} {what}: {', '.join(names)}; expected {expected}"
    )
