"""Uniform validation helpers and the package's exception types.

Every user-facing error names the argument or file, what was expected, what was received and,
where possible, how to fix it. Library messages never mention command-line flags; the CLI maps
these exceptions to one-line messages (exit 2 for :class:`InputError`, 1 for other
:class:`CellrobustError`).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from typing import Any


class CellrobustError(Exception):
    """Base class of every error cellrobust raises on purpose (a runtime failure)."""


class InputError(CellrobustError, ValueError):
    """An argument has an invalid value: a usage error (the CLI exits with status 2)."""


class DataError(CellrobustError):
    """A file or data set cannot be used: unreadable, inconsistent or empty (CLI exit 1)."""


def suggest(value: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Validate that ``value`` is one of ``choices``; return it.

    Raises
    ------
    InputError
        Listing every valid choice and suggesting the closest one.
    """
    options = list(choices)
    if value not in options:
        raise InputError(
            f"{name}: unknown value {value!r}{suggest(str(value), options)}; "
            f"valid values are: {', '.join(map(str, options))}"
        )
    return value


def check_range(
    name: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    unit: str = "",
) -> float:
    """Validate a finite number within ``[low, high]`` (inclusive by default); return it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number, got {value!r}") from None
    lo_ok = low is None or (number >= low if low_inclusive else number > low)
    hi_ok = high is None or (number <= high if high_inclusive else number < high)
    if not math.isfinite(number) or not (lo_ok and hi_ok):
        raise InputError(
            f"{name}: expected a value in {_interval(low, high, low_inclusive, high_inclusive)}"
            f"{' ' + unit if unit else ''}, got {value!r}"
        )
    return number


def _interval(low, high, low_inc, high_inc) -> str:
    left = "[" if low_inc and low is not None else "("
    right = "]" if high_inc and high is not None else ")"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"


def check_ndim(name: str, array: Any, ndims: Sequence[int], *, what: str = "") -> None:
    """Validate the dimensionality of an array-like, naming the expected layout."""
    ndim = getattr(array, "ndim", None)
    if ndim not in ndims:
        expected = " or ".join(f"{d}-D" for d in ndims)
        layout = f" ({what})" if what else ""
        shape = getattr(array, "shape", None)
        raise InputError(f"{name}: expected a {expected} array{layout}, got shape {shape}")


def is_count(value: Any) -> bool:
    """Whether ``value`` is a positive integer (a count of workers, threads...), not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def collect_errors(errors: list[str], owner: str) -> None:
    """Raise one :class:`InputError` listing every problem found in ``owner`` at once."""
    if errors:
        raise InputError(f"invalid {owner}: " + "; ".join(errors))


def parse_scalar(text: str) -> Any:
    """The value of a ``KEY=VALUE`` option, the one rule for every command and file.

    Integers and floats as Python reads them (``5e-4`` is a float, unlike YAML 1.1), then YAML
    for the rest (``true``/``false``, ``null``, ``[1, 2]``, quoted strings); anything else is
    the text itself.
    """
    import yaml

    text = str(text).strip()
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if value is None and text not in ("null", "~", "") else value


def parse_assignment(text: str, *, owner: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, parse_scalar(value))``; ``owner`` names the option in errors."""
    key, sep, value = str(text).partition("=")
    if not sep or not key.strip():
        raise InputError(f"{owner}: expected KEY=VALUE, got {text!r}")
    return key.strip(), parse_scalar(value)
