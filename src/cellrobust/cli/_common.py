"""Small helpers shared by the CLI stage modules: common flags and their parsing rules."""

from __future__ import annotations

import argparse

#: Help text of every flag that takes a segmenter (one grammar for every command).
SEGMENTER_HELP = (
    "segmenter spec [NAME=][KIND:]TARGET[,KEY=VALUE...], repeatable. KIND: baseline "
    "(dog_otsu, nlm_otsu, otsu), unet (a cellrobust .pt), onnx, torchscript, bioimageio "
    "(rdf.yaml, folder or zip), cellpose, stardist, py (MODULE:FACTORY, needs --allow-code). "
    "E.g. mine=runs/a/best.pt  cp=cellpose:cyto3,diameter=13  dog=dog_otsu,sigma_low=4.5. "
    "'cellrobust models' lists every kind, its options and what it needs installed")
#: Most IoU thresholds a command accepts (each one is a column group of the results table).
MAX_THRESHOLDS = 100


def add_seed(parser: argparse.ArgumentParser, default: int = 0) -> None:
    """Add ``--seed`` (the root of every random stream of the command)."""
    parser.add_argument("--seed", type=int, default=default, help=f"random seed (default {default})")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """Add ``--quiet`` (no progress bars)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_overwrite(parser: argparse.ArgumentParser, what: str = "files in the output") -> None:
    """Add ``--overwrite`` (replace what the command would otherwise refuse to touch)."""
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace {what}; without it the command refuses to write over "
                        "inputs or files it did not write")


def add_allow_code(parser: argparse.ArgumentParser) -> None:
    """Add ``--allow-code`` (let ``py:`` segmenters import and run Python code)."""
    parser.add_argument("--allow-code", action="store_true",
                        help="allow py:MODULE:FACTORY segmenters (they run Python code); never "
                        "implied by a configuration file")


def parse_thresholds(text: str) -> tuple[float, ...]:
    """``"0.5:0.05:0.95"`` or ``"0.5,0.75"`` -> IoU thresholds in (0, 1], rounded to 1e-6.

    Raises
    ------
    InputError
        Unparsable text, a non-positive step, values outside (0, 1] or more than
        :data:`MAX_THRESHOLDS` of them.
    """
    from cellrobust._validation import InputError

    bad = InputError(f"thresholds: expected start:step:stop or a comma list of values in "
                     f"(0, 1], e.g. 0.5:0.1:0.9, got {text!r}")
    try:
        if ":" in text:
            start, step, stop = (float(x) for x in text.split(":"))
            if not step > 0 or stop < start:
                raise bad
            n = int(round((stop - start) / step)) + 1
            if n > MAX_THRESHOLDS:
                raise InputError(f"thresholds: {text!r} gives {n} thresholds; at most "
                                 f"{MAX_THRESHOLDS} are allowed, use a larger step")
            values = [start + i * step for i in range(n)]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise bad from None
    if not values or len(values) > MAX_THRESHOLDS or not all(0 < v <= 1 for v in values):
        raise bad
    return tuple(round(v, 6) for v in values)


def parse_options(items: list[str], *, owner: str) -> dict:
    """``["sigma_low=4.7", "method=skimage"]`` -> ``{"sigma_low": 4.7, "method": "skimage"}``
    (values by :func:`cellrobust._validation.parse_scalar`, the one rule)."""
    from cellrobust._validation import parse_assignment

    return dict(parse_assignment(item, owner=owner) for item in items)


def with_options(spec: str, items: list[str]) -> str:
    """A segmenter spec with ``KEY=VALUE`` items appended in the grammar's option syntax."""
    return ",".join([spec, *items]) if items else spec


def parse_workers(text: str | None) -> int | str | None:
    """``--workers``: ``"auto"``, a positive integer, or None (not given).

    Raises
    ------
    InputError
        Anything else (exit status 2, one line).
    """
    from cellrobust._validation import InputError
    from cellrobust.sweep.runner import AUTO

    if text is None:
        return None
    if str(text).strip().lower() == AUTO:
        return AUTO
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"--workers: expected a positive integer or 'auto', got {text!r}")
    return value


def csv_list(text: str) -> tuple[str, ...]:
    """``"a, b,c"`` -> ``("a", "b", "c")``."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def add_sweep_options(p: argparse.ArgumentParser) -> None:
    """Artefacts, severities, thresholds and execution flags of ``sweep`` and ``study``."""
    p.add_argument("--artefacts", type=csv_list, metavar="A,B",
                   help="artefacts to sweep, comma-separated ('cellrobust artefacts list')")
    p.add_argument("--severities", metavar="MODE",
                   help="'ladder' (levels 0-5), 'grid' (curve grid) or a named artefact preset "
                   "such as 'study'")
    p.add_argument("--thresholds", type=parse_thresholds, metavar="LIST",
                   help="IoU thresholds of instance matching: start:step:stop or a comma list "
                   "(default 0.5:0.1:0.9)")
    p.add_argument("--workers", metavar="N|auto",
                   help="local worker processes for the sweep ('auto': one per free core, "
                   "bounded by the cells and memory)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask distributed scheduler address (tcp://host:8786) to run cells on")
    p.add_argument("--batch-size", type=int, help="images per segmenter call")
    add_seed(p, default=0)
    add_quiet(p)
    add_allow_code(p)
