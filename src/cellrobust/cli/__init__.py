"""The ``cellrobust`` command line.

The CLI only translates flags into config objects and library exceptions into one-line
messages: exit status 2 for usage errors (:class:`~cellrobust.InputError`, bad flags), 1 for
runtime errors (:class:`~cellrobust.CellrobustError`, unreadable files). ``--debug`` shows the
traceback. Each stage lives in its own module with ``register(subparsers)``; heavy imports
happen inside the stage that needs them, so ``cellrobust --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cellrobust import __version__

# Modules under cellrobust.cli, each defining register(subparsers) -> None.
STAGE_MODULES: tuple[str, ...] = ("data", "artefacts", "corrupt", "study", "sweep", "report",
                                  "evaluate", "train", "tune", "predict", "export", "models",
                                  "diagnose")


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line and exit with status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"cellrobust: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every stage registered."""
    parser = _Parser(
        prog="cellrobust",
        description="Stress-test cell-segmentation models against microscopy artefacts "
        "and make them robust.",
    )
    parser.add_argument("--version", action="version", version=f"cellrobust {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", parser_class=_Parser)
    for name in STAGE_MODULES:
        importlib.import_module(f"cellrobust.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cellrobust`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    if getattr(args, "allow_code", False):
        _working_directory_importable()
    try:
        _configure_threads(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("cellrobust: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - translated to one line below
        if args.debug:
            raise
        return _report(exc)


def _configure_threads(args: argparse.Namespace) -> None:
    """Threads and OpenMP settings for the whole run, before any stage imports torch."""
    from cellrobust.cli._common import parse_workers
    from cellrobust.stages._runtime import configure_threads

    # --workers are processes sharing the cores only where the sweep runs (train's are data
    # loaders, whose threads the loop sets to one); "auto" workers set their own threads, and
    # this process keeps the free cores for what it runs itself (preflight, a one-cell sweep)
    sharing = getattr(args, "stage", None) in ("sweep", "study")
    if sharing:
        args.workers = parse_workers(args.workers)  # the one parse, before any stage runs
    workers = args.workers if sharing and isinstance(args.workers, int) else 1
    configure_threads(workers=workers, threads=getattr(args, "threads", None))


def _working_directory_importable() -> None:
    """Let ``py:`` modules be imported from the working directory, as ``python -m cellrobust``
    does; appended after the installed packages, so a stray local file cannot shadow a library.
    Only with ``--allow-code`` (the command line is the application's, not the library's)."""
    import os

    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)


def _report(exc: Exception) -> int:
    from cellrobust._validation import CellrobustError, InputError

    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, InputError):
        print(f"cellrobust: error: {message}", file=sys.stderr)
        return 2
    if isinstance(exc, (CellrobustError, OSError)):
        print(f"cellrobust: error: {message}", file=sys.stderr)
        return 1
    print(
        f"cellrobust: internal error: {type(exc).__name__}: {message} "
        "(run again with --debug for the traceback and report it)",
        file=sys.stderr,
    )
    return 1
